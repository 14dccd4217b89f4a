package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/itchyny/gojq"
	"github.com/spf13/pflag"
)

// Output formats: the same names on every command that prints data. text or table is the default, json
// is indented (an array for a list, one object after another for a stream), jsonl one object per line.
const (
	formatText  = "text"
	formatTable = "table"
	formatJSON  = "json"
	formatJSONL = "jsonl"
)

// addOutputFlag adds -o/--output with fixed formats, the first being the default. It belongs to one
// invocation: no environment twin.
func addOutputFlag(fs *pflag.FlagSet, p *string, formats ...string) {
	choiceVar(fs, p, "output", "o", formats[0], "output format: "+orList(formats), formats...)
	perInvocation(fs, "output")
}

// writeJSON prints v indented (json) or on one line (jsonl).
func writeJSON(w io.Writer, format string, v any) error {
	enc := json.NewEncoder(w)
	if format == formatJSON {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// jsonFilter is --jq, as gh has it: a jq expression (gojq) applied to the JSON a command would print.
// Its string interpolation ("\(.time) \(.container)") does what gh's --template does. There is no
// --template: text/template calls methods by name, which keeps every exported method of every linked
// type in the binary and made it 55 MB larger.
type jsonFilter struct {
	JQ string

	code *gojq.Code
}

// addJSONFilterFlags adds --jq.
func addJSONFilterFlags(fs *pflag.FlagSet, f *jsonFilter) {
	fs.StringVarP(&f.JQ, "jq", "q", "", "filter and format the JSON output with a jq expression (strings print raw)")
	perInvocation(fs, "jq")
}

// active reports whether --jq was given.
func (f *jsonFilter) active() bool { return f.JQ != "" }

// compile checks the expression: a bad one is a usage error.
func (f *jsonFilter) compile() error {
	if f.JQ == "" {
		return nil
	}
	q, err := gojq.Parse(f.JQ)
	if err == nil {
		f.code, err = gojq.Compile(q)
	}
	if err != nil {
		return UsageError("--jq %q: %v", f.JQ, err)
	}
	return nil
}

// write applies the filter to v as JSON would carry it and prints each result on a line, strings raw.
func (f *jsonFilter) write(ctx context.Context, w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var in any
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	it := f.code.RunWithContext(ctx, in)
	for {
		out, ok := it.Next()
		if !ok {
			return nil
		}
		if err, ok := out.(error); ok {
			if h, ok := err.(*gojq.HaltError); ok && h.Value() == nil {
				return nil
			}
			return fmt.Errorf("--jq: %w", err)
		}
		if s, ok := out.(string); ok {
			_, err = fmt.Fprintln(w, s)
		} else {
			var line []byte
			if line, err = json.Marshal(out); err == nil {
				_, err = fmt.Fprintf(w, "%s\n", line)
			}
		}
		if err != nil {
			return err
		}
	}
}

// indentWriter turns JSON lines into indented JSON objects, one after another: -o json of a stream.
type indentWriter struct {
	w       io.Writer
	partial []byte
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	iw.partial = append(iw.partial, p...)
	for {
		i := bytes.IndexByte(iw.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := iw.partial[:i]
		var b bytes.Buffer
		if err := json.Indent(&b, line, "", "  "); err != nil {
			b.Reset()
			b.Write(line) // not JSON: as it came
		}
		b.WriteByte('\n')
		iw.partial = iw.partial[i+1:]
		if _, err := iw.w.Write(b.Bytes()); err != nil {
			return len(p), err
		}
	}
}
