package cmd

import "github.com/spf13/cobra"

func newMonitorCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "monitor",
		Short: "monitor agent (not implemented yet)",
		RunE:  notImplemented("monitor", "3"),
	}
}
