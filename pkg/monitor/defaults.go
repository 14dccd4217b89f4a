package monitor

// DefaultOptions returns the settings New gives zero fields: the one definition of the monitor's defaults,
// which the command line's flags take as theirs. Host, Output, Logger and SamplerName have no default.
func DefaultOptions() Options {
	var o Options
	o.defaults()
	o.Logger = nil
	return o
}
