package cmd

import "github.com/spf13/cobra"

func newAuditCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "audit",
		Short: "audit agent (not implemented yet)",
		RunE:  notImplemented("audit", "5"),
	}
}
