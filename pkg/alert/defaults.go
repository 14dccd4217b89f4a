package alert

import "time"

// DefaultRenotify is the window within which repeats of an incident state are counted, not sent.
const DefaultRenotify = time.Hour

// DefaultOptions returns the settings New gives zero fields: the one definition of the alerter's
// defaults, which the command line's flags take as theirs.
func DefaultOptions() Options { return Options{Renotify: DefaultRenotify} }
