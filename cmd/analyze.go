package cmd

import "github.com/spf13/cobra"

func newAnalyzeCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "analyze",
		Short: "analyze agent (not implemented yet)",
		RunE:  notImplemented("analyze", "4"),
	}
}
