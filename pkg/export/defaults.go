package export

import "time"

// DefaultListen is the exporter's default address. Port 4366 ("HEMO" on a phone keypad) is on neither
// list of Prometheus's default port allocations: not in the 9090-9999 band (9090 is Prometheus itself;
// the exporter band 9100-9999 is fully allocated) and not among the exporters outside it.
const DefaultListen = ":4366"

const defaultReadTimeout = 3 * time.Second

// DefaultOptions returns the settings of an exporter started from the command line: New gives zero
// fields the same values, except Runtime, which a zero Options leaves off.
func DefaultOptions() Options {
	return Options{Listen: DefaultListen, ReadTimeout: defaultReadTimeout, Runtime: true}
}
