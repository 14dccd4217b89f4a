package embedded

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
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

// TestFailedAppendLeavesNoTornRecord: a record that fails part way on a full disk is cut off again, so
// the records appended once there is room again replay after the earlier ones, none dropped.
func TestFailedAppendLeavesNoTornRecord(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	path := filepath.Join(dir, JournalFile)
	j, err := openJournal(path, 0)
	must(t, err)
	defer j.close()
	set := func(v string) []byte { return encodeRecord([][]string{{"SET", "k", v}}) }
	must(t, j.append(set("before")))
	fill := filepath.Join(dir, "fill")
	_ = os.WriteFile(fill, bytes.Repeat([]byte{1}, 60*1024), 0o600) // stops part way: the disk is full
	big := set(string(bytes.Repeat([]byte{'x'}, 32*1024)))
	if err := j.append(big); err == nil {
		t.Fatal("an append on a full disk succeeded")
	}
	if st, err := os.Stat(path); err != nil || st.Size() != j.size {
		t.Fatalf("journal after the failed append: %d bytes (%v), want the %d before it", st.Size(), err, j.size)
	}
	must(t, os.Remove(fill))
	must(t, j.append(set("after")))
	var got []string
	_, err = replayJournal(path, slog.New(slog.DiscardHandler), func(cmds [][]string) error {
		got = append(got, cmds[0][2])
		return nil
	})
	must(t, err)
	if want := []string{"before", "after"}; !slices.Equal(got, want) {
		t.Errorf("replayed values %v, want %v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
