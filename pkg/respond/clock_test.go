package respond_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTimeComesOnlyFromTheClock: the responder reads the time only through Options.Now, so a test's clock
// (and the dry run's prediction) sees every decision at the time it was taken. No non-test file of the
// package calls time.Now, time.Since or time.Until; Options.Now defaults to time.Now by reference.
func TestTimeComesOnlyFromTheClock(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	scanned := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		scanned++
		timePkg := "time"
		for _, imp := range f.Imports {
			if imp.Path.Value == `"time"` && imp.Name != nil {
				timePkg = imp.Name.Name
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == timePkg {
				switch sel.Sel.Name {
				case "Now", "Since", "Until":
					t.Errorf("%s: time.%s(): take the time from the responder's clock (r.now())", fset.Position(call.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	if scanned < 5 {
		t.Fatalf("scanned only %d files: the scan is broken", scanned)
	}
}
