package schema_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// keyLiteral is a Redis key of hemostat spelled out: "hemostat:" followed by a name (not a message such as
// "hemostat: no Redis").
var keyLiteral = regexp.MustCompile(`^hemostat:[a-z{*]`)

// hashMethods are the go-redis hash commands: a string literal among their arguments is a field name.
var hashMethods = map[string]bool{"HSet": true, "HGet": true, "HMGet": true, "HDel": true, "HIncrBy": true,
	"HIncrByFloat": true, "HSetNX": true, "HExists": true, "HMSet": true}

// TestSchemaIsDefinedOnce keeps every key and hash field defined in this package alone: outside it, no
// non-test Go file spells a key ("hemostat:...") or reads or writes a hash field by a string literal
// (x["field"] where field is a schema field, in a file that talks to Redis or a store package, a literal
// argument of a go-redis hash command, or a quoted field among a Lua hash command's arguments, in Go or in a .lua file). Streams are
// the wire protocol and are named in pkg/event; pkg/docker and pkg/cgroup index Docker's and the kernel's
// maps, never Redis's.
func TestSchemaIsDefinedOnce(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	fields := schemaFields(t, ".")
	if len(fields) < 40 {
		t.Fatalf("found only %d field names in the schema: the scan is broken", len(fields))
	}
	exempt := []string{"pkg/store/schema/", "pkg/event/", "pkg/docker/", "pkg/cgroup/"}
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".lua") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, f := range luaFields(string(b), fields) {
				bad = append(bad, rel+": Lua script with the field "+strconv.Quote(f)+": template it from the schema's constant")
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		for _, e := range exempt {
			if strings.HasPrefix(rel, e) {
				return nil
			}
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		redisFile := false // the file can hold a raw hash: it talks to Redis or to a store package
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/redis/go-redis") || strings.HasPrefix(p, "github.com/hemostat/hemostat/pkg/store") {
				redisFile = true
			}
		}
		report := func(n ast.Node, format string, args ...any) {
			bad = append(bad, fset.Position(n.Pos()).String()+": "+fmt.Sprintf(format, args...))
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.Field:
				return false // struct tags are JSON names, not Redis fields
			case *ast.ImportSpec:
				return false
			case *ast.BasicLit:
				if s, ok := stringLit(x); ok && keyLiteral.MatchString(s) {
					report(x, "key %q spelled out: name it in pkg/store/schema", s)
				}
				if s, ok := stringLit(x); ok && strings.Contains(s, "redis.call") {
					for _, f := range luaFields(s, fields) {
						report(x, "Lua script with the field %q: splice in the schema's constant", f)
					}
				}
			case *ast.IndexExpr:
				if lit, ok := x.Index.(*ast.BasicLit); ok && redisFile {
					if s, ok := stringLit(lit); ok && fields[s] {
						report(x, "hash field %q read by a literal: decode the record with pkg/store/schema", s)
					}
				}
			case *ast.CallExpr:
				sel, ok := x.Fun.(*ast.SelectorExpr)
				if !ok || !hashMethods[sel.Sel.Name] {
					return true
				}
				for _, a := range x.Args {
					if lit, ok := a.(*ast.BasicLit); ok {
						if s, ok := stringLit(lit); ok {
							report(x, "%s with the literal %q: encode the record with pkg/store/schema", sel.Sel.Name, s)
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// luaQuoted is a string in a Lua script, quoted either way; luaHashCall starts a hash command.
var (
	luaQuoted   = regexp.MustCompile(`'([^'\n]*)'|"([^"\n]*)"`)
	luaHashCall = regexp.MustCompile(`redis\.p?call\(\s*['"]H[A-Z]+['"]`)
)

// luaFields returns the schema's field names a Lua script quotes in the arguments of a hash command
// (redis.call('HGET', KEYS[1], 'field')): they must be spliced in from the schema's constants or passed as
// arguments, never spelled. Other quoted strings (JSON members of a decoded value) are not hash fields.
func luaFields(script string, fields map[string]bool) []string {
	var out []string
	for _, loc := range luaHashCall.FindAllStringIndex(script, -1) {
		depth, end := 1, loc[1]
		for ; end < len(script) && depth > 0; end++ {
			switch script[end] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		for _, m := range luaQuoted.FindAllStringSubmatch(script[loc[1]:end], -1) {
			if f := m[1] + m[2]; fields[f] {
				out = append(out, f)
			}
		}
	}
	return out
}

// schemaFields returns the values of the string constants of the schema package whose names say they are
// hash or stream fields.
func schemaFields(t *testing.T, dir string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Field") && !strings.HasSuffix(id.Name, "Field") {
						continue
					}
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
							if s, ok := stringLit(lit); ok {
								out[s] = true
							}
						}
					}
				}
			}
		}
	}
	return out
}

func stringLit(l *ast.BasicLit) (string, bool) {
	if l.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(l.Value)
	return s, err == nil
}
