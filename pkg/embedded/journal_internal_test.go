package embedded

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
)

// TestOneRewriteAtATime: while a rewrite runs no second one starts (it would share the rewrite's file and
// its buffer of appended records), and the rewritten file holds the records appended meanwhile and after.
func TestOneRewriteAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	j, err := openJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	set := func(v int) []byte { return encodeRecord([][]string{{"SET", "k", fmt.Sprint(v)}}) }
	for i := range 10 {
		if err := j.append(set(i)); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := j.startRewrite(1 << 20); f != nil || err != nil {
		t.Fatalf("a rewrite started below the threshold: %v, %v", f, err)
	}
	f, err := j.startRewrite(0)
	if f == nil || err != nil {
		t.Fatalf("no rewrite started: %v", err)
	}
	must(t, j.append(set(10))) // while the rewrite runs
	if g, err := j.startRewrite(0); g != nil || err != nil {
		t.Fatalf("a second rewrite started while one runs: %v, %v", g, err)
	}
	must(t, j.append(set(11)))
	if _, err := f.Write(set(9)); err != nil { // the live state the rewrite read
		t.Fatal(err)
	}
	if _, err := j.finishRewrite(f, nil); err != nil {
		t.Fatal(err)
	}
	must(t, j.append(set(12))) // after: into the new file
	var got []string
	_, err = replayJournal(path, slog.New(slog.DiscardHandler), func(cmds [][]string) error {
		got = append(got, cmds[0][2])
		return nil
	})
	must(t, err)
	if want := []string{"9", "10", "11", "12"}; !slices.Equal(got, want) {
		t.Errorf("the rewritten journal holds the values %v, want %v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
