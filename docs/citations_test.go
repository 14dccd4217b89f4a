// Package docs_test keeps the repository's citations honest: a comment or a document that points a reader
// at a document points at one in this repository.
package docs_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = ".."

var (
	// mdPath is a document named by its path: README.md, docs/architecture.md, examples/prometheus/README.md.
	mdPath = regexp.MustCompile(`(?:\.\./|[A-Za-z0-9_-]+/)*[A-Za-z0-9_.-]+\.md\b`)
	// urlRe is a web address: what it names is not in the repository, and it says so.
	urlRe = regexp.MustCompile(`[a-z]+://\S+`)
	// outside is a path out of the repository that a reader of the repository cannot follow.
	outside = regexp.MustCompile(`/work/|\.\./shared\b`)
)

// textFiles are the files read whole; of Go files only the comments are read.
func textFile(name string) bool {
	switch filepath.Ext(name) {
	case ".md", ".yaml", ".yml", ".sh", ".env", ".service", ".lua", ".txtar":
		return true
	}
	return name == "Dockerfile"
}

// TestCitedDocumentsExist: every *.md a Go comment or a document cites exists, relative to the repository
// root or to the citing file, and nothing cites a path outside the repository.
func TestCitedDocumentsExist(t *testing.T) {
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "dist" || d.Name() == "manpages") {
				return filepath.SkipDir
			}
			return nil
		}
		var texts []string
		switch {
		case strings.HasSuffix(path, ".go"):
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, g := range f.Comments {
				texts = append(texts, g.Text())
			}
		case textFile(d.Name()):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			texts = append(texts, string(b))
		default:
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		for _, text := range texts {
			text = urlRe.ReplaceAllString(text, "")
			if m := outside.FindString(text); m != "" {
				t.Errorf("%s cites %q, outside the repository: write it down in docs/ or cite the code", rel, m)
			}
			for _, cite := range mdPath.FindAllString(text, -1) {
				checked++
				if !exists(filepath.Join(root, cite)) && !exists(filepath.Join(filepath.Dir(path), cite)) {
					t.Errorf("%s cites %s, which is not in the repository", rel, cite)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d citations: the scan is broken", checked)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
