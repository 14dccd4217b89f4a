package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestManPages generates the pages into a temporary directory and checks one per command.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"hemostat.1.gz", "hemostat-run.1.gz", "hemostat-respond-reset.1.gz", "hemostat-doctor.1.gz", "hemostat-environment.1.gz"} {
		f, err := os.Open(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no man page %s: %v", page, err)
			continue
		}
		var head bytes.Buffer
		zr, err := gzip.NewReader(f)
		if err == nil {
			_, err = io.CopyN(&head, zr, 64)
		}
		f.Close()
		if err != nil || !bytes.Contains(head.Bytes(), []byte(`.TH "HEMOSTAT" "1"`)) {
			t.Errorf("%s: not a section 1 man page (%v): %q", page, err, head.String())
		}
	}
}
