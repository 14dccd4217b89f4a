package dash

// DefaultOptions returns the settings zero fields take: the one definition of the dashboard's defaults,
// which the command line's flags take as theirs. Now and Location are left to New.
func DefaultOptions() Options {
	var o Options
	o.defaults()
	o.Now, o.Location = nil, nil
	return o
}
