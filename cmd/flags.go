package cmd

import (
	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/bus"
)

// addBusFlags adds the consumer flags every agent that reads the bus shares.
func addBusFlags(c *cobra.Command, o *bus.Options) {
	f := c.Flags()
	f.DurationVar(&o.ClaimIdle, "claim-idle", 30e9, "reclaim entries another instance left pending longer than this")
	f.Int64Var(&o.MaxDeliveries, "max-deliveries", 5, "move an entry delivered more than this many times to the dead letter stream")
	f.Int64Var(&o.MaxLen, "stream-max-len", 100000, "approximate cap on the length of each stream")
}
