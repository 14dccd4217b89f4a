package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/embedded"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
	"time"
)

func runDeps(t *testing.T, url string) (*Deps, *bytes.Buffer) {
	t.Helper()
	var errb bytes.Buffer
	d := NewDeps(strings.NewReader(""), &bytes.Buffer{}, &errb)
	d.Global = GlobalOptions{Redis: RedisOptions{URL: url}, HostName: "h", LogLevel: "info", LogFormat: "text"}
	if err := d.init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.closeAll)
	return d, &errb
}

func TestRunServesTheEmbeddedStoreWhenNoRedisAnswers(t *testing.T) {
	for _, tc := range []struct {
		kind embedded.Kind
		file string // what the store keeps in the data dir
	}{
		{embedded.RedisServer, "appendonlydir"},
		{embedded.InProcess, embedded.JournalFile},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			if tc.kind == embedded.RedisServer {
				testenv.RequireRedisServer(t)
			}
			t.Setenv("HEMOSTAT_REDIS_URL", "")
			dead := fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t))
			d, errb := runDeps(t, dead)
			c := &cobra.Command{}
			c.Flags().String("redis-url", dead, "") // the default, not set by the user
			dir := t.TempDir()
			opts := &runOptions{Embedded: string(tc.kind), EmbeddedAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), DataDir: dir}
			ctx := context.Background()
			if err := ensureStore(ctx, c, d, opts); err != nil {
				t.Fatalf("ensureStore: %v", err)
			}
			if want := fmt.Sprintf("serving an embedded store (%s) on %s", tc.kind, opts.EmbeddedAddr); !strings.Contains(errb.String(), want) {
				t.Errorf("no one-line notice of the embedded store: %q, want %q", errb.String(), want)
			}
			if d.Global.Redis.URL == dead {
				t.Fatal("still pointed at the dead address")
			}
			st, err := d.Store(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Agents.Heartbeat(ctx, schema.Agent{Kind: "monitor", Instance: "i1"}, time.Now(), time.Minute); err != nil {
				t.Fatalf("the embedded store does not answer: %v", err)
			}
			d.closeAll() // stops the store
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Errorf("no %s in the data dir after the stop: %v", tc.file, err)
			}
		})
	}
}

// TestRunEmbeddedStartErrorNamesTheDataDir: a data dir that cannot be made fails the start, naming it.
func TestRunEmbeddedStartErrorNamesTheDataDir(t *testing.T) {
	t.Setenv("HEMOSTAT_REDIS_URL", "")
	dead := fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t))
	d, _ := runDeps(t, dead)
	c := &cobra.Command{}
	c.Flags().String("redis-url", dead, "")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "state") // under a file: cannot be made, even by root
	err := ensureStore(context.Background(), c, d, &runOptions{Embedded: "in-process", EmbeddedAddr: "127.0.0.1:0", DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want an error naming %s", err, dir)
	}
}

func TestRunFailsWhenTheConfiguredRedisIsAway(t *testing.T) {
	dead := fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t))
	d, _ := runDeps(t, dead)
	c := &cobra.Command{}
	c.Flags().String("redis-url", "", "")
	if err := c.Flags().Set("redis-url", dead); err != nil {
		t.Fatal(err)
	}
	err := ensureStore(context.Background(), c, d, &runOptions{EmbeddedAddr: "127.0.0.1:0", DataDir: t.TempDir()})
	if !errors.Is(err, conn.ErrUnavailable) || exitCode(err) != ExitUnavailable {
		t.Fatalf("got %v (exit %d), want an unavailable Redis (exit 3)", err, exitCode(err))
	}
	if !strings.Contains(err.Error(), strings.TrimPrefix(dead, "redis://")[:15]) {
		t.Errorf("the error does not say what was tried: %v", err)
	}
}

func TestRunMergesSharedFlags(t *testing.T) {
	d, _ := runDeps(t, "redis://127.0.0.1:1/0")
	run := newRunCmd(d)
	if err := run.Flags().Set("claim-idle", "7s"); err != nil {
		t.Fatal(err)
	}
	// --claim-idle belongs to several agents: setting it on run sets it on each of them.
	agents := 0
	for _, name := range []string{"analyze", "respond", "alert", "export", "monitor"} {
		var sub *cobra.Command
		for _, c := range []*cobra.Command{newMonitorCmd(d, nil), newAnalyzeCmd(d, nil), newRespondCmd(d, nil), newAlertCmd(d, nil), newExportCmd(d, nil)} {
			if c.Name() == name {
				sub = c
			}
		}
		if sub.Flags().Lookup("claim-idle") != nil {
			agents++
		}
	}
	if agents < 2 {
		t.Fatalf("--claim-idle is on %d agents; the test needs a shared flag", agents)
	}
	f := run.Flags().Lookup("claim-idle")
	fo, ok := f.Value.(*fanout)
	if !ok {
		t.Fatalf("--claim-idle on run is a %T, want a fan-out to %d agents", f.Value, agents)
	}
	if len(fo.flags) != agents {
		t.Errorf("fan-out reaches %d flags, want %d", len(fo.flags), agents)
	}
	for _, fl := range fo.flags {
		if fl.Value.String() != "7s" || !fl.Changed {
			t.Errorf("an agent's --claim-idle = %s (changed %v), want 7s", fl.Value.String(), fl.Changed)
		}
	}
}

func TestRunRejectsAnUnknownAgent(t *testing.T) {
	d, _ := runDeps(t, "redis://127.0.0.1:1/0")
	run := newRunCmd(d)
	run.SetContext(context.Background())
	err := runRun(run, d, &runOptions{Agents: []string{"monitor", "bogus"}}, map[string]*cobra.Command{"monitor": newMonitorCmd(d, nil)})
	if exitCode(err) != ExitUsage || !strings.Contains(err.Error(), `"bogus"`) {
		t.Fatalf("got %v (exit %d), want a usage error naming the agent", err, exitCode(err))
	}
}
