package cmd

import "github.com/spf13/cobra"

func newRunCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "run agent (not implemented yet)",
		RunE:  notImplemented("run", "7"),
	}
}
