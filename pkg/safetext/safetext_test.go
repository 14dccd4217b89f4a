package safetext

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web-1", "web-1"},
		{"café ☕ 東京", "café ☕ 東京"},
		{"\x1b[2J\x1b[Hgone", `\x1b[2J\x1b[Hgone`},
		{"\x1b]0;pwned\x07title", `\x1b]0;pwned\x07title`},
		{"a\tb\nc\rd", "a b c d"},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b31m csi", `c1 \u009b31m csi`},
		{"admin\u202e\u2066txt.exe", `admin\u202e\u2066txt.exe`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"$(rm -rf /); `id` | nc", "$(rm -rf /); `id` | nc"}, // shell metacharacters are only text here
	}
	for _, tt := range tests {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzLine: whatever comes in, what goes out is valid UTF-8 without a control character, escape or bidi
// override, and clean text passes through untouched.
func FuzzLine(f *testing.F) {
	for _, s := range []string{"web-1", "\x1b[31m", "\u202e", "\xff", "\u009b", "é\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Line(%q) = %q: invalid UTF-8", s, out)
		}
		for _, r := range out {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r) {
				t.Fatalf("Line(%q) = %q keeps %U", s, out, r)
			}
		}
		if clean(s) && out != s {
			t.Fatalf("Line changed clean text %q to %q", s, out)
		}
		if Line(out) != out {
			t.Fatalf("Line is not idempotent on %q", s)
		}
	})
}

type inner struct {
	Name   string
	Labels map[string]string
}

type outer struct {
	Title   string
	When    time.Time
	Ptr     *inner
	List    []inner
	ByName  map[string]inner
	Any     any
	Raw     []byte
	private string
}

func TestDeep(t *testing.T) {
	evil := "x\x1b[2Jy"
	v := outer{
		Title: evil, When: time.Unix(1, 0),
		Ptr:    &inner{Name: evil, Labels: map[string]string{evil: evil, "ok": "fine"}},
		List:   []inner{{Name: "clean"}, {Name: evil}},
		ByName: map[string]inner{"k": {Name: evil}},
		Any:    inner{Name: evil},
		Raw:    []byte(evil),
	}
	v.private = evil
	Deep(&v)
	safe := `x\x1b[2Jy`
	want := outer{
		Title: safe, When: time.Unix(1, 0),
		Ptr:    &inner{Name: safe, Labels: map[string]string{safe: safe, "ok": "fine"}},
		List:   []inner{{Name: "clean"}, {Name: safe}},
		ByName: map[string]inner{"k": {Name: safe}},
		Any:    inner{Name: safe},
		Raw:    []byte(evil), // data, not text
	}
	want.private = evil
	if diff := cmp.Diff(want, v, cmp.AllowUnexported(outer{})); diff != "" {
		t.Errorf("Deep() mismatch (-want +got):\n%s", diff)
	}
}

func TestDeepLeavesCleanValuesAlone(t *testing.T) {
	v := outer{Title: "t", Ptr: &inner{Name: "n", Labels: map[string]string{"a": "b"}}, List: make([]inner, 100)}
	allocs := testing.AllocsPerRun(100, func() { Deep(&v) })
	if allocs > 2 { // the map iterator; nothing per string
		t.Errorf("Deep() of a clean value allocates %.0f times", allocs)
	}
}

func BenchmarkLineClean(b *testing.B) {
	s := strings.Repeat("restarted; running and healthy after 10s ", 4)
	b.ReportAllocs()
	for b.Loop() {
		_ = Line(s)
	}
}
