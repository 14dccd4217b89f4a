// Command gendocs writes hemostat's man pages (section 1, gzipped, one per command) from the command tree
// with cobra's doc generator. The release runs it before packaging: go run ./scripts/gendocs -dir manpages
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/hemostat/hemostat/cmd"
)

func main() {
	dir := flag.String("dir", "manpages", "directory to write <command>.1.gz into (emptied first)")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := cmd.NewRootCmd(cmd.NewDeps(os.Stdin, os.Stdout, os.Stderr))
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Title: "HEMOSTAT", Section: "1", Source: "hemostat " + cmd.Build().Version,
		Manual: "hemostat manual", Date: sourceDate()}
	return walk(root, hdr, dir)
}

// walk writes the page of c and of every command under it that a user can run or read about.
func walk(c *cobra.Command, hdr *doc.GenManHeader, dir string) error {
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := walk(sub, hdr, dir); err != nil {
			return err
		}
	}
	h := *hdr
	var page bytes.Buffer
	if err := doc.GenMan(c, &h, &page); err != nil {
		return fmt.Errorf("%s: %w", c.CommandPath(), err)
	}
	name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1.gz"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.ModTime = *hdr.Date // reproducible archives
	if _, err := zw.Write(page.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), gz.Bytes(), 0o644)
}

// sourceDate is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func sourceDate() *time.Time {
	t := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			t = time.Unix(sec, 0).UTC()
		}
	}
	return &t
}
