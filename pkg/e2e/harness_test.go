package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/alert/alerttest"
	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/testenv"
)

var binary string // the hemostat binary under test, built once in TestMain

// Scenarios run scenariosAtOnce at a time, taking turns through slots, and those named in atOnce besides,
// without waiting for a slot: the 3-minute churn starts at once, and the others take turns beside it. The
// scenarios mostly wait (on timers, backoff steps and the engine), so this is more than GOMAXPROCS, -parallel's
// default; and go test starts parallel tests in no set order, so the churn could otherwise start last.
const scenariosAtOnce = 3

var (
	slots  = make(chan struct{}, scenariosAtOnce)
	atOnce = map[string]bool{"churn": true}
)

// admit waits for a slot for the scenario, given back at its cleanup (after its containers are removed and
// hemostat stopped: cleanups run last registered first).
func admit(t *testing.T, name string) {
	if atOnce[name] {
		return
	}
	slots <- struct{}{}
	t.Cleanup(func() { <-slots })
}

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(64)) // the slots limit them
	}
	dir, err := os.MkdirTemp("", "hemostat-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hemostat")
	if err := testenv.GoBuild(context.Background(), "../..", ".", binary, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stopEngineLog()
	printTable()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one row of the table the suite prints.
type result struct {
	scenario      string
	detected      time.Duration
	remediated    time.Duration
	notifications int
	audit         int
}

var (
	resultsMu sync.Mutex
	results   []result
)

func record(r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results = append(results, r)
}

func printTable() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 && len(loopRows) == 0 && len(hostRows) == 0 {
		return
	}
	sort.Slice(results, func(i, j int) bool { return results[i].scenario < results[j].scenario })
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "| scenario\t| detected in\t| remediated in\t| notifications\t| audit entries\t|")
	fmt.Fprintln(w, "|---\t|---\t|---\t|---\t|---\t|")
	dur := func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		if d < 10*time.Second {
			return fmt.Sprintf("%.1f ms", float64(d)/1e6)
		}
		return d.Round(100 * time.Millisecond).String()
	}
	for _, r := range results {
		fmt.Fprintf(w, "| %s\t| %s\t| %s\t| %d\t| %d\t|\n", r.scenario, dur(r.detected), dur(r.remediated), r.notifications, r.audit)
	}
	w.Flush()
	b.WriteString("\n")
	writeLoopTable(&b)
	writeHostTable(&b)
	fmt.Print("\nend-to-end scenarios (hemostat run as a subprocess, real Redis and Docker):\n" + b.String())
	if f := os.Getenv("HEMOSTAT_E2E_TABLE"); f != "" {
		_ = os.WriteFile(f, b.Bytes(), 0o644)
	}
}

// scenario is one `hemostat run` with its own Redis database, Slack stand-in and containers.
type scenario struct {
	t       *testing.T
	name    string
	host    string
	url     string
	rdb     *redis.Client
	dc      *docker.Client
	slack   *alerttest.Slack
	dataDir string
	args    []string
	env     []string // added to the environment of hemostat run
	proc    *exec.Cmd
	logs    *testenv.SyncBuffer
	started time.Time
}

func newScenario(t *testing.T, name string, extra ...string) *scenario {
	t.Helper()
	t.Parallel()
	admit(t, name)
	dc := testenv.RequireDocker(t)
	url := testenv.RequireRedis(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, name: name, host: "e2e-" + name, url: url, rdb: redis.NewClient(opt), dc: dc,
		slack: alerttest.NewSlack(t), dataDir: t.TempDir(), logs: &testenv.SyncBuffer{}}
	t.Cleanup(func() { s.rdb.Close() })
	s.args = append([]string{"run",
		"--redis-url", url, "--host-name", s.host, "--include", "e2e-" + name + "-*",
		"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--data-dir", s.dataDir,
		"--slack-webhook-url", s.slack.WebhookURL("e2e-secret"),
		"--interval", "500ms", "--reconcile-interval", "5s", "--consecutive", "2",
		"--recovery-hysteresis", "1s", "--backoff", "1s", "--cooldown", "5s", "--stable-for", "1s",
		"--settle", "10s", "--claim-idle", "3s", "--log-level", "debug",
	}, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hemostat run logs:\n%s", lastLines(s.logs.String(), 200))
		}
	})
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start launches `hemostat run` and waits until every agent has a heartbeat.
func (s *scenario) start() {
	s.t.Helper()
	cmd := exec.Command(binary, s.args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start hemostat run: %v", err)
	}
	s.proc = cmd
	s.started = time.Now()
	s.t.Cleanup(func() { s.stop() })
	s.eventually(30*time.Second, "all five agents heartbeating", func() bool {
		keys, _ := s.rdb.Keys(context.Background(), "hemostat:agents:*").Result()
		return len(keys) >= 5
	})
}

// stop interrupts `hemostat run` and waits for a graceful exit.
func (s *scenario) stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- s.proc.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("hemostat run exited with %v after SIGINT", err)
		}
	case <-time.After(30 * time.Second):
		_ = s.proc.Process.Kill()
		s.t.Errorf("hemostat run did not stop within 30s of SIGINT")
		<-done
	}
	s.proc = nil
}

// crashProcess kills `hemostat run` with SIGKILL, as a crash would.
func (s *scenario) crashProcess() {
	_ = s.proc.Process.Kill()
	_ = s.proc.Wait()
	s.proc = nil
}

func (s *scenario) eventually(timeout time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// container runs a test container whose name the scenario's monitor watches.
func (s *scenario) container(o docker.CreateOptions) (id, name string) {
	s.t.Helper()
	o.Name = "e2e-" + s.name
	return testenv.RunContainer(s.t, s.dc, o)
}

// envelopes returns the decoded envelopes of a stream, oldest first.
func (s *scenario) envelopes(stream string) []event.Envelope {
	msgs, err := s.rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		return nil
	}
	var out []event.Envelope
	for _, m := range msgs {
		raw, _ := m.Values[event.Field].(string)
		if env, err := event.Decode([]byte(raw)); err == nil {
			out = append(out, env)
		}
	}
	return out
}

func (s *scenario) alerts(container string) []*event.ContainerUnhealthy {
	var out []*event.ContainerUnhealthy
	for _, env := range s.envelopes(event.StreamHealthAlert) {
		if p, err := event.DecodeData[event.ContainerUnhealthy](env); err == nil && p.ContainerName == container {
			out = append(out, p)
		}
	}
	return out
}

type complete struct {
	env event.Envelope
	p   *event.RemediationComplete
}

func (s *scenario) completes(container string) []complete {
	var out []complete
	for _, env := range s.envelopes(event.StreamRemediationComplete) {
		if p, err := event.DecodeData[event.RemediationComplete](env); err == nil && p.Container == container {
			out = append(out, complete{env, p})
		}
	}
	return out
}

// waitAlert waits for a health alert of the class and returns it with its time to detect.
func (s *scenario) waitAlert(container, class string, timeout time.Duration) (*event.ContainerUnhealthy, time.Duration) {
	s.t.Helper()
	var found *event.ContainerUnhealthy
	var detect time.Duration
	s.eventually(timeout, class+" alert for "+container, func() bool {
		for _, env := range s.envelopes(event.StreamHealthAlert) {
			p, err := event.DecodeData[event.ContainerUnhealthy](env)
			if err == nil && p.ContainerName == container && p.Class == class {
				found, detect = p, env.Timestamp.Sub(p.EventTime)
				return true
			}
		}
		return false
	})
	return found, detect
}

// waitComplete waits for a remediation_complete matching the predicate; it returns it and the time to
// remediate (from Docker's event time of the detection).
func (s *scenario) waitComplete(container string, timeout time.Duration, what string, ok func(*event.RemediationComplete) bool) (*event.RemediationComplete, time.Duration) {
	s.t.Helper()
	var found complete
	s.eventually(timeout, what+" for "+container, func() bool {
		for _, c := range s.completes(container) {
			if ok(c.p) {
				found = c
				return true
			}
		}
		return false
	})
	var took time.Duration
	if !found.p.EventTime.IsZero() {
		took = found.env.Timestamp.Sub(found.p.EventTime)
	}
	return found.p, took
}

// auditEntries returns the audit trail's entries for a container.
func (s *scenario) auditEntries(container string) []audit.Entry {
	msgs, err := s.rdb.XRange(context.Background(), event.StreamAudit, "-", "+").Result()
	if err != nil {
		return nil
	}
	var out []audit.Entry
	for _, m := range msgs {
		raw, _ := m.Values["entry"].(string)
		var e audit.Entry
		if json.Unmarshal([]byte(raw), &e) == nil && e.Container == container {
			out = append(out, e)
		}
	}
	return out
}

// notifications returns the Slack messages that name the container and start with prefix.
func (s *scenario) notifications(container, prefix string) []alerttest.Message {
	var out []alerttest.Message
	for _, m := range s.slack.Messages() {
		if strings.Contains(m.Text, container) && strings.HasPrefix(m.Text, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func (s *scenario) allNotifications(container string) int {
	return len(s.notifications(container, ""))
}

// state returns the container's state and restart-relevant facts through the CLI-free Docker client.
func (s *scenario) state(id string) docker.Details {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := s.dc.Inspect(ctx, id)
	if err != nil {
		s.t.Fatalf("inspect %s: %v", id, err)
	}
	return d
}

// dockerActions lists the engine's events for a container since the scenario started (start, die,
// restart, ...), to count what was really done to it.
func (s *scenario) dockerActions(id string) []string {
	s.t.Helper()
	out, err := exec.Command("docker", "events", "--since", fmt.Sprint(s.started.Add(-time.Minute).Unix()),
		"--until", fmt.Sprint(time.Now().Unix()+1), "--filter", "container="+id, "--format", "{{.Action}}").Output()
	if err != nil {
		s.t.Fatalf("docker events: %v", err)
	}
	return strings.Fields(string(out))
}

func count(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}
