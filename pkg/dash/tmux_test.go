package dash

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// tmuxSession drives one program in a detached tmux session on a private server socket.
type tmuxSession struct {
	t      *testing.T
	socket string
	name   string
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-L", s.socket, "-f", "/dev/null"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...); err != nil {
		s.t.Fatalf("send-keys %v: %v: %s", keys, err, out)
	}
}

func (s *tmuxSession) text(text string) {
	s.t.Helper()
	if out, err := s.tmux("send-keys", "-t", s.name, "-l", text); err != nil {
		s.t.Fatalf("send-keys -l %q: %v: %s", text, err, out)
	}
}

func (s *tmuxSession) screen() string {
	out, err := s.tmux("capture-pane", "-p", "-t", s.name)
	if err != nil {
		return ""
	}
	return out
}

// waitFor polls the pane until cond holds, failing with the last screen after the deadline.
func (s *tmuxSession) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	var scr string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		scr = s.screen()
		if cond(scr) {
			return scr
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.t.Fatalf("waiting for %s; the screen shows:\n%s", what, scr)
	return ""
}

func (s *tmuxSession) waitText(want ...string) string {
	s.t.Helper()
	return s.waitFor(fmt.Sprintf("%q", want), func(scr string) bool {
		for _, w := range want {
			if !strings.Contains(scr, w) {
				return false
			}
		}
		return true
	})
}

// buildHemostat builds the hemostat binary (or uses $HEMOSTAT_BIN).
func buildHemostat(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("HEMOSTAT_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "hemostat")
	if err := testenv.GoBuild(context.Background(), ".", "github.com/hemostat/hemostat", bin, ""); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestTmuxDash runs `hemostat dash` in a real terminal (tmux) against real Redis seeded as the agents would
// write it, types keys, and asserts what a person would see. scripts/tmux-dash-test.sh runs it.
func TestTmuxDash(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the tmux run")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if testenv.InCI() {
			t.Fatal("tmux is not installed (apt-get install tmux)")
		}
		t.Skip("tmux is not installed")
	}
	bin := buildHemostat(t)
	t.Run("session", func(t *testing.T) { tmuxSessionTest(t, bin) })
	t.Run("colour", func(t *testing.T) { tmuxColourTest(t, bin) })
	t.Run("outage", func(t *testing.T) { tmuxOutageTest(t, bin) })
}

// tmuxOutageTest starts the dashboard while Redis is down, then brings Redis up, down and up again: the
// screen says what is happening and the program never exits on its own.
func tmuxOutageTest(t *testing.T, bin string) {
	srv := testenv.StartRedis(t)
	newFixture(time.Now().UTC().Truncate(time.Millisecond)).seed(t, srv.URL())
	srv.Stop()
	s := &tmuxSession{t: t, socket: fmt.Sprintf("hemostat-dash-outage-%d", os.Getpid()), name: "dash"}
	exitFile := filepath.Join(t.TempDir(), "exit")
	shell := fmt.Sprintf("%q dash --redis-url %q --refresh 200ms 2>%q.err; echo $? > %q", bin, srv.URL(), exitFile, exitFile)
	if out, err := s.tmux("new-session", "-d", "-s", s.name, "-x", "80", "-y", "24", shell); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = s.tmux("kill-server") })

	s.waitText("Redis is unreachable at 127.0.0.1:", "Retrying every 200ms")
	srv.Start()
	s.waitText("● connected", "web-1", "Open incidents (2)")
	srv.Stop()
	s.waitText("✗ unreachable", "data from", "web-1") // the last data stays on screen
	srv.Start()
	s.waitText("● connected", "web-1")
	s.keys("q")
	s.waitFor("the program to exit", func(string) bool {
		b, err := os.ReadFile(exitFile)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	if b, _ := os.ReadFile(exitFile); strings.TrimSpace(string(b)) != "0" {
		stderr, _ := os.ReadFile(exitFile + ".err")
		t.Errorf("exit code %q; stderr:\n%s", strings.TrimSpace(string(b)), stderr)
	}
	if stderr, _ := os.ReadFile(exitFile + ".err"); len(stderr) > 0 {
		t.Errorf("stderr while it owned the terminal (the driver's logs must not reach it):\n%s", stderr)
	}
}

// tmuxSessionTest walks through every view at 120x40 with NO_COLOR set.
func tmuxSessionTest(t *testing.T, bin string) {
	url := testenv.RequireRedis(t)
	f := newFixture(time.Now().UTC().Truncate(time.Millisecond))
	f.seed(t, url)

	s := &tmuxSession{t: t, socket: fmt.Sprintf("hemostat-dash-test-%d", os.Getpid()), name: "dash"}
	exitFile := filepath.Join(t.TempDir(), "exit")
	shell := fmt.Sprintf("%q dash --redis-url %q --refresh 300ms 2>%q.err; echo $? > %q", bin, url, exitFile, exitFile)
	if out, err := s.tmux("new-session", "-d", "-s", s.name, "-x", "120", "-y", "40", "-e", "NO_COLOR=1", shell); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = s.tmux("kill-server") })

	// Overview: the container rows, KPIs, open incidents.
	scr := s.waitText("web-1", "worker-1", "api-1", "Open incidents (2)", "node-a/web-1/unhealthy", "agents 3/4 (no alert)")
	if !strings.Contains(scr, "● connected") {
		t.Errorf("the header does not say connected:\n%s", scr)
	}
	// NO_COLOR: attributes (bold, reverse) but no colour reach the terminal.
	styled, err := s.tmux("capture-pane", "-p", "-e", "-t", s.name)
	if err != nil {
		t.Fatal(err)
	}
	for _, sgr := range []string{"[31m", "[32m", "[33m", "[36m", "38;", "48;", "[91m"} {
		if strings.Contains(styled, sgr) {
			t.Errorf("NO_COLOR is set, yet the screen has the colour sequence %q:\n%q", sgr, styled)
			break
		}
	}
	if !strings.Contains(styled, "\x1b[") {
		t.Errorf("no attributes at all: is capture-pane -e working?\n%q", styled)
	}

	// The filter narrows the table.
	s.text("/web")
	s.waitFor("the filter to narrow the table to web-1", func(scr string) bool {
		return strings.Contains(scr, "filter: web") && strings.Contains(scr, "› web-1") && !strings.Contains(scr, "api-1")
	})

	// Detail: why hemostat did or did not act.
	s.keys("Enter")
	s.keys("Enter")
	s.waitText("› node-a/web-1", "Why", "cooling down", "the analyzer chose restart", "next attempt in", "Ledger (respond)", "attempts within 1h: 2 of 3")

	// Back, clear the filter: every row is there again.
	s.keys("Escape")
	s.waitText("[Overview]", "filter: web")
	s.keys("Escape")
	s.waitFor("the filter to clear", func(scr string) bool {
		return strings.Contains(scr, "api-1") && !strings.Contains(scr, "filter: web")
	})

	// Events: the backfill, then a live event as an agent publishes it.
	s.keys("Tab")
	s.waitText("[Events]", "remediation_complete", "container_recovered")
	live, err := event.New("monitor", "node-a", "node-a/api-1/crashed", "", &event.ContainerUnhealthy{
		ContainerID: "c0ffee", ContainerName: "api-1", Class: event.ClassCrashed, ExitCode: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, url, live)
	s.waitText("node-a/api-1/crashed", `"container_id": "c0ffee"`)

	// History: the audit trail with the full reason of the selected entry.
	s.keys("Tab")
	s.waitText("[History]", "container: any", "circuit_open", "reason: health check failing 3 times in a row")

	// Quit: the program exits cleanly and gives the terminal back.
	quitAt := time.Now()
	s.keys("q")
	s.waitFor("the program to exit", func(string) bool {
		b, err := os.ReadFile(exitFile)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	t.Logf("exited %s after q", time.Since(quitAt).Round(time.Millisecond))
	b, _ := os.ReadFile(exitFile)
	if code := strings.TrimSpace(string(b)); code != "0" {
		stderr, _ := os.ReadFile(exitFile + ".err")
		t.Errorf("hemostat dash exited with %s; stderr:\n%s", code, stderr)
	}
	if stderr, _ := os.ReadFile(exitFile + ".err"); len(stderr) > 0 {
		t.Errorf("hemostat dash wrote to stderr while it owned the terminal:\n%s", stderr)
	}
}

// tmuxColourTest: without NO_COLOR the same screen has colour, so the NO_COLOR check above can fail.
func tmuxColourTest(t *testing.T, bin string) {
	url := testenv.RequireRedis(t)
	newFixture(time.Now().UTC().Truncate(time.Millisecond)).seed(t, url)
	s := &tmuxSession{t: t, socket: fmt.Sprintf("hemostat-dash-colour-%d", os.Getpid()), name: "dash"}
	shell := fmt.Sprintf("%q dash --redis-url %q", bin, url)
	if out, err := s.tmux("new-session", "-d", "-s", s.name, "-x", "100", "-y", "30", "-e", "NO_COLOR=", "-e", "TERM=xterm-256color", shell); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = s.tmux("kill-server") })
	s.waitText("web-1", "Open incidents (2)")
	styled, err := s.tmux("capture-pane", "-p", "-e", "-t", s.name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(styled, "38;") && !strings.Contains(styled, "[31m") && !strings.Contains(styled, "[32m") {
		t.Errorf("no colour without NO_COLOR:\n%q", styled)
	}
	s.keys("q")
}
