package export

import "time"

// DefaultListen is the address of /metrics and /healthz when none is given.
const DefaultListen = ":9090"

const defaultReadTimeout = 3 * time.Second

// DefaultOptions returns the settings of an exporter started from the command line: New gives zero
// fields the same values, except Runtime, which a zero Options leaves off.
func DefaultOptions() Options {
	return Options{Listen: DefaultListen, ReadTimeout: defaultReadTimeout, Runtime: true}
}
