package bus

// DefaultOptions returns the settings zero fields take: the one definition of the bus's defaults, which
// the command line's flags take as theirs. Logger is left nil (the caller's logger then applies).
func DefaultOptions() Options {
	var o Options
	o.defaults()
	o.Logger = nil
	return o
}
