package cmd

import "github.com/spf13/cobra"

func newDashCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "dash",
		Short: "dash agent (not implemented yet)",
		RunE:  notImplemented("dash", "8"),
	}
}
