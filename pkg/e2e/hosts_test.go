package e2e_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/alert/alerttest"
	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/dash"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// Two hosts on one Redis (issue 17): host A is the machine's engine, host B a second dockerd in a network
// namespace of its own (testenv.StartDockerd). Each host runs its own monitor and responder with its own
// --host-name and DOCKER_HOST (A as one `hemostat run --agents monitor,respond`, B as two processes, so its
// responder can be stopped alone); one analyze, alert and export serve both. Containers of the same name
// run on both engines, so a request acted on by the wrong host would restart the wrong engine's container:
// each engine's restart events are recorded and counted.

const (
	hostA = "e2e-hosts-a"
	hostB = "e2e-hosts-b"
	// hostsPrefix is the names the monitors watch.
	hostsPrefix = "e2e-hosts-"
	// hostsBackoff is the breaker scenario's backoff step: the breaker opens at about 7 steps.
	hostsBackoff = 2 * time.Second
)

// agentProc is one hemostat subprocess.
type agentProc struct {
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	logs *testenv.SyncBuffer
}

func (p *agentProc) start(t *testing.T) {
	t.Helper()
	p.logs = &testenv.SyncBuffer{}
	p.cmd = exec.Command(binary, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
}

// stop interrupts the process and waits for a graceful exit.
func (p *agentProc) stop(t *testing.T) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGINT", p.name, err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 30s of SIGINT", p.name)
	}
	p.cmd = nil
}

// twoHosts is the deployment under test.
type twoHosts struct {
	*scenario                       // the shared Redis and Slack stand-in; its host is A
	b         *docker.Client        // host B's engine
	events    map[string]*engineLog // by host
	procs     map[string]*agentProc
}

func newTwoHosts(t *testing.T) *twoHosts {
	t.Helper()
	dc := testenv.RequireDocker(t)
	url := testenv.RequireRedis(t)
	engineB := testenv.StartDockerd(t, dc)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, name: "hosts", host: hostA, url: url, rdb: redis.NewClient(opt), dc: dc,
		slack: alerttest.NewSlack(t), logs: &testenv.SyncBuffer{}, started: time.Now()}
	t.Cleanup(func() { s.rdb.Close() })
	h := &twoHosts{scenario: s, b: engineB.Client, procs: map[string]*agentProc{},
		events: map[string]*engineLog{hostA: recordEngineOf(t, dc), hostB: recordEngineOf(t, engineB.Client)}}
	common := []string{"--redis-url", url, "--include", hostsPrefix + "*",
		"--interval", "500ms", "--reconcile-interval", "5s", "--consecutive", "2",
		"--recovery-hysteresis", "1s", "--backoff", "1s", "--cooldown", "5s", "--stable-for", "1s",
		"--settle", "10s", "--claim-idle", "3s", "--log-level", "debug"}
	add := func(name, host, agents, dockerHost string, extra ...string) {
		args := append([]string{"run", "--agents", agents, "--host-name", host, "--data-dir", t.TempDir()}, common...)
		p := &agentProc{name: name, args: append(args, extra...)}
		if dockerHost != "" {
			p.env = []string{"DOCKER_HOST=" + dockerHost}
		}
		h.procs[name] = p
	}
	add("a", hostA, "monitor,respond", "")
	add("b-monitor", hostB, "monitor", engineB.Host)
	add("b-respond", hostB, "respond", engineB.Host)
	add("shared", "e2e-hosts-shared", "analyze,alert,export", "",
		"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--slack-webhook-url", s.slack.WebhookURL("e2e-secret"))
	t.Cleanup(func() {
		for _, name := range []string{"a", "b-monitor", "b-respond", "shared"} {
			p := h.procs[name]
			if t.Failed() && p.logs != nil {
				t.Logf("%s logs:\n%s", name, lastLines(p.logs.String(), 80))
			}
			p.stop(t)
		}
	})
	for _, name := range []string{"a", "b-monitor", "b-respond", "shared"} {
		h.procs[name].start(t)
	}
	s.eventually(30*time.Second, "a monitor and a responder heartbeating on each host", func() bool {
		return h.alive("monitor", hostA) && h.alive("respond", hostA) && h.alive("monitor", hostB) && h.alive("respond", hostB)
	})
	return h
}

// alive reports whether an agent of a kind on a host has a heartbeat.
func (h *twoHosts) alive(kind, host string) bool {
	for _, a := range h.agents() {
		if a.Kind == kind && a.Host == host {
			return true
		}
	}
	return false
}

func (h *twoHosts) agents() []dash.Agent {
	snap, err := h.snapshot()
	if err != nil {
		return nil
	}
	return snap.Agents
}

// snapshot reads what `hemostat dash` shows, through its own source.
func (h *twoHosts) snapshot() (dash.Snapshot, error) {
	st, err := store.Open(conn.Options{URL: h.url, PoolSize: 2})
	if err != nil {
		return dash.Snapshot{}, err
	}
	defer st.Close()
	src := dash.NewRedisSource(dash.Sources{Containers: st.Containers, Ledgers: st.Ledger, Incidents: st.Incidents,
		Agents: st.Agents, Audit: st.Audit, Events: st.Notify, Streams: bus.New(st.Conn, bus.Options{})})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return src.Snapshot(ctx)
}

// engine returns a host's engine.
func (h *twoHosts) engine(host string) *docker.Client {
	if host == hostB {
		return h.b
	}
	return h.dc
}

// container creates a container of exactly this name on a host's engine (no unique suffix: the same name
// runs on both hosts), removed at cleanup; start says whether to start it now.
func (h *twoHosts) container(host, name string, start bool, o docker.CreateOptions) string {
	h.t.Helper()
	dc := h.engine(host)
	o.Name = name
	o.Image = testenv.TestImage(h.t, h.dc) // copied to B under the same reference
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	o.Labels["hemostat.test"] = "1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := dc.Create(ctx, o)
	if err != nil {
		h.t.Fatalf("create %s on %s: %v", name, host, err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dc.RemoveContainer(ctx, id); err != nil {
			h.t.Logf("remove %s on %s: %v", name, host, err)
		}
	})
	if start {
		h.startContainer(host, id)
	}
	return id
}

func (h *twoHosts) startContainer(host, id string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.engine(host).StartContainer(ctx, id); err != nil {
		h.t.Fatalf("start %s on %s: %v", id, host, err)
	}
}

// restarts counts a host engine's restart events of a container.
func (h *twoHosts) restarts(host, id string) int { return len(h.events[host].times(id, "restart")) }

// completesOn returns a container's remediation_complete events published for a host.
func (h *twoHosts) completesOn(host, name string) []*event.RemediationComplete {
	var out []*event.RemediationComplete
	for _, c := range h.completes(name) {
		if c.env.Host == host {
			out = append(out, c.p)
		}
	}
	return out
}

// waitCompleteOn waits for a remediation_complete of a host's container that ok accepts.
func (h *twoHosts) waitCompleteOn(host, name, what string, ok func(*event.RemediationComplete) bool) *event.RemediationComplete {
	h.t.Helper()
	var found *event.RemediationComplete
	h.eventually(remediateTimeout, what+" of "+host+"/"+name, func() bool {
		for _, p := range h.completesOn(host, name) {
			if ok(p) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// executedOn counts the executed actions in the audit trail for a container, by host.
func (h *twoHosts) executedOn(name string) map[string]int {
	out := map[string]int{}
	for _, e := range h.auditEntries(name) {
		if e.Decision == "executed" {
			out[e.Host]++
		}
	}
	return out
}

func (h *twoHosts) ledgerOf(host, name string) schema.Ledger {
	h.t.Helper()
	m, err := h.rdb.HGetAll(context.Background(), schema.LedgerKey(schema.Target(host, name))).Result()
	if err != nil {
		h.t.Fatalf("read the ledger of %s/%s: %v", host, name, err)
	}
	l, err := schema.DecodeLedger(m)
	if err != nil {
		h.t.Fatalf("decode the ledger of %s/%s: %v", host, name, err)
	}
	return l
}

// requested reports whether analyze asked for a remediation of a host's container.
func (h *twoHosts) requested(host, name string) bool {
	for _, env := range h.envelopes(event.RemediationNeededStream(host)) {
		if p, err := event.DecodeData[event.RemediationNeeded](env); err == nil && env.Host == host && p.Container == name {
			return true
		}
	}
	return false
}

// hemostat runs the binary (a CLI command) against the test Redis and returns its exit code and output.
func (h *twoHosts) hemostat(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	cmd := exec.Command(binary, append(args, "--redis-url", h.url)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		h.t.Fatalf("hemostat %v: %v", args, err)
	}
	return 0, out.String(), errb.String()
}

// recordEngineOf records one engine's container events until the test ends.
func recordEngineOf(t *testing.T, dc *docker.Client) *engineLog {
	ctx, cancel := context.WithCancel(context.Background())
	l, done := followEngine(ctx, dc)
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// TestTwoHosts runs the deployment on two real engines through three phases: a crash on each host and a
// breaker opening on one host while the same name fails on the other (together), then host B's responder
// down while B's container crashes, and last what dash and audit show of both hosts.
func TestTwoHosts(t *testing.T) {
	t.Parallel()
	admit(t, "hosts")
	h := newTwoHosts(t)
	start := time.Now()
	crash := hostsPrefix + "crash"
	brk := hostsPrefix + "breaker"
	wait := hostsPrefix + "wait"

	// Phase 1. The same crash on each host; B's breaker container fails every verification until the
	// breaker opens, then A's container of the same name fails once.
	crashCmd := []string{"-once", "-exit-code", "3", "-exit-after", "1s"}
	crashID := map[string]string{
		hostA: h.container(hostA, crash, true, docker.CreateOptions{Cmd: crashCmd}),
		hostB: h.container(hostB, crash, true, docker.CreateOptions{Cmd: crashCmd}),
	}
	labels := map[string]string{"hemostat.backoff": hostsBackoff.String(), "hemostat.cooldown": "10m"}
	bad := loopProbe
	brkB := h.container(hostB, brk, true, docker.CreateOptions{Health: &bad, Labels: labels, Cmd: unhealthyApp()})
	good := goodProbe
	brkA := h.container(hostA, brk, false, docker.CreateOptions{Health: &good, Labels: labels, Cmd: unhealthyApp("-bad-starts", "1")})

	healed := map[string]time.Duration{}
	for _, host := range []string{hostA, hostB} {
		c := h.waitCompleteOn(host, crash, "a verified restart", isSuccess)
		if !c.Verified {
			t.Errorf("%s/%s: restart not verified: %+v", host, crash, c)
		}
		healed[host] = time.Since(start)
	}
	h.eventually(remediateTimeout, "the breaker of "+hostB+"/"+brk+" open", func() bool {
		return slices.ContainsFunc(h.completesOn(hostB, brk), gaveUp)
	})
	brkOpened := time.Since(start)
	h.startContainer(hostA, brkA) // fails once, after B's breaker opened
	h.waitCompleteOn(hostA, brk, "a verified restart despite B's open breaker", isSuccess)
	brkHealedA := time.Since(start) - brkOpened

	for _, host := range []string{hostA, hostB} {
		other := hostB
		if host == hostB {
			other = hostA
		}
		if n := h.restarts(host, crashID[host]); n != 1 {
			t.Errorf("%s's engine restarted %s %d times, want 1", host, crash, n)
		}
		if n := h.restarts(other, crashID[host]); n != 0 {
			t.Errorf("%s's engine restarted %s's %s %d times", other, host, crash, n)
		}
	}
	if got, want := h.executedOn(crash), map[string]int{hostA: 1, hostB: 1}; !mapsEqual(got, want) {
		t.Errorf("executed restarts of %s by host = %v, want %v", crash, got, want)
	}
	la, lb := h.ledgerOf(hostA, brk), h.ledgerOf(hostB, brk)
	if lb.Breaker != schema.BreakerOpen || len(lb.Attempts) != 3 {
		t.Errorf("%s/%s ledger: breaker %s, %d attempts; want open after 3", hostB, brk, lb.Breaker, len(lb.Attempts))
	}
	if la.Breaker == schema.BreakerOpen || len(la.Attempts) != 1 || la.BackoffStep > 1 {
		t.Errorf("%s/%s ledger: breaker %s, %d attempts, backoff step %d; want its own: closed, 1 attempt, the first step",
			hostA, brk, la.Breaker, len(la.Attempts), la.BackoffStep)
	}
	if n := h.restarts(hostA, brkA); n != 1 {
		t.Errorf("%s's engine restarted %s %d times, want 1", hostA, brk, n)
	}
	if n := h.restarts(hostB, brkB); n != 3 {
		t.Errorf("%s's engine restarted %s %d times, want 3 (the breaker's limit)", hostB, brk, n)
	}

	// Phase 2. B's responder is down: B's request waits, A (which sees every request in its own group)
	// takes none, although a container of the same name runs on A.
	waitA := h.container(hostA, wait, true, docker.CreateOptions{})
	h.procs["b-respond"].stop(t)
	h.eventually(10*time.Second, "B's responder gone from the heartbeats", func() bool { return !h.alive("respond", hostB) })
	waitB := h.container(hostB, wait, true, docker.CreateOptions{Cmd: crashCmd})
	h.eventually(detectTimeout, "a remediation request for "+hostB+"/"+wait, func() bool { return h.requested(hostB, wait) })
	requestedAt := time.Now()
	deadline := time.Now().Add(8 * time.Second) // A's responder reads its group at once; this is ample
	for time.Now().Before(deadline) {
		if len(h.completesOn(hostA, wait))+len(h.completesOn(hostB, wait)) > 0 || h.restarts(hostA, waitA)+h.restarts(hostB, waitB) > 0 {
			t.Fatalf("a request for %s/%s was acted on while its responder was down", hostB, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.procs["b-respond"].start(t)
	h.waitCompleteOn(hostB, wait, "a verified restart once B's responder is back", isSuccess)
	waited := time.Since(requestedAt)
	if n := h.restarts(hostB, waitB); n != 1 {
		t.Errorf("%s's engine restarted %s %d times, want 1", hostB, wait, n)
	}
	if n := h.restarts(hostA, waitA); n != 0 {
		t.Errorf("%s's engine restarted its %s %d times, want 0: the request was B's", hostA, wait, n)
	}
	if got, want := h.executedOn(wait), map[string]int{hostB: 1}; !mapsEqual(got, want) {
		t.Errorf("executed restarts of %s by host = %v, want %v", wait, got, want)
	}

	// Phase 3. The dash shows both hosts: their containers, their agents, and a screen with both names.
	snap, err := h.snapshot()
	if err != nil {
		t.Fatalf("dash snapshot: %v", err)
	}
	hosts := map[string]bool{}
	for _, c := range snap.Containers {
		if c.Name == crash {
			hosts[c.Host] = true
		}
	}
	if !hosts[hostA] || !hosts[hostB] {
		t.Errorf("dash snapshot has %s on %v, want both hosts", crash, hosts)
	}
	if !h.alive("monitor", hostA) || !h.alive("monitor", hostB) || !h.alive("respond", hostB) {
		t.Errorf("dash agents: %+v, want a monitor on each host and B's responder back", snap.Agents)
	}
	screen := renderDash(t, snap)
	for _, host := range []string{hostA, hostB} {
		if !strings.Contains(screen, host) {
			t.Errorf("the dash's overview does not show host %s:\n%s", host, screen)
		}
	}

	// `hemostat audit`: host/name picks one, a bare name on both hosts is a usage error naming both.
	code, out, errs := h.hemostat("audit", hostB+"/"+crash, "-o", "json", "--host-name", hostA)
	if code != 0 || !strings.Contains(out, `"host": "`+hostB+`"`) || strings.Contains(out, `"host": "`+hostA+`"`) {
		t.Errorf("audit %s/%s: exit %d, %s%s; want B's entries only", hostB, crash, code, out, errs)
	}
	code, _, errs = h.hemostat("audit", crash, "--host-name", hostA)
	if want := hostA + "/" + crash + ", " + hostB + "/" + crash; code != 2 || !strings.Contains(errs, want) {
		t.Errorf("audit %s on two hosts: exit %d, stderr %q; want 2 and %q", crash, code, errs, want)
	}

	hostRows = append(hostRows,
		hostRow{"crash on A", "healed by A's responder", healed[hostA]},
		hostRow{"crash on B (second engine)", "healed by B's responder", healed[hostB]},
		hostRow{"B's breaker opens (3 failed verifications, b = 2 s)", "A's container of the same name untouched", brkOpened},
		hostRow{"A's container fails after B's breaker opened", "restarted once and verified by A", brkHealedA},
		hostRow{"B's crash while B's responder is down (8 s)", "waited, then healed by B once back", waited},
	)
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// renderDash draws the dash's overview of a snapshot at 160x50, colour off.
func renderDash(t *testing.T, snap dash.Snapshot) string {
	t.Helper()
	o := dash.DefaultOptions()
	o.Color = false
	m := dash.New(context.Background(), staticSource{snap}, nil, o)
	var tm tea.Model = m
	tm, _ = tm.Update(tea.WindowSizeMsg{Width: 160, Height: 50})
	cmd := tm.(dash.Model).Init()
	var msgs []tea.Msg
	var run func(tea.Cmd)
	run = func(c tea.Cmd) { // the first read; timers are left out
		if c == nil {
			return
		}
		done := make(chan tea.Msg, 1) // each command its own: one that times out may still answer later
		go func() { done <- c() }()
		select {
		case msg := <-done:
			if b, ok := msg.(tea.BatchMsg); ok {
				for _, c := range b {
					run(c)
				}
				return
			}
			msgs = append(msgs, msg)
		case <-time.After(time.Second):
		}
	}
	run(cmd)
	for _, msg := range msgs {
		tm, _ = tm.Update(msg)
	}
	return tm.(dash.Model).Render()
}

// staticSource serves one snapshot to the dash's model.
type staticSource struct{ snap dash.Snapshot }

func (s staticSource) Snapshot(context.Context) (dash.Snapshot, error) { return s.snap, nil }
func (s staticSource) ContainerAudit(context.Context, string, string, int) ([]audit.Entry, error) {
	return nil, nil
}
func (s staticSource) Follow(ctx context.Context, _ chan<- dash.EventBatch) error {
	<-ctx.Done()
	return nil
}

// hostRow is one row of the two-host table.
type hostRow struct {
	what, outcome string
	took          time.Duration
}

var hostRows []hostRow

// writeHostTable writes the two-host table, if TestTwoHosts ran.
func writeHostTable(w io.Writer) {
	if len(hostRows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| two hosts\t| outcome\t| after\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|")
	for _, r := range hostRows {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t|\n", r.what, r.outcome, r.took.Round(100*time.Millisecond))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
