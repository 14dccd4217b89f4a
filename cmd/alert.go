package cmd

import "github.com/spf13/cobra"

func newAlertCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "alert",
		Short: "alert agent (not implemented yet)",
		RunE:  notImplemented("alert", "6"),
	}
}
