package cmd

import "github.com/spf13/cobra"

func newRespondCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "respond",
		Short: "respond agent (not implemented yet)",
		RunE:  notImplemented("respond", "5"),
	}
}
