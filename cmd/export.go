package cmd

import "github.com/spf13/cobra"

func newExportCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "export agent (not implemented yet)",
		RunE:  notImplemented("export", "6"),
	}
}
