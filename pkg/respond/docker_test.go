package respond_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// engine is a responder harness over the real Docker engine (through a recording runtime) and real Redis.
type engine struct {
	*harness
	dk *docker.Client
}

func newEngine(t *testing.T, cfg respond.Config) *engine {
	t.Helper()
	dk := testenv.RequireDocker(t)
	h := newHarness(t, respond.Config{})
	cfg.PollInterval = 50 * time.Millisecond
	cfg.StableFor = 300 * time.Millisecond
	cfg.SettleDefault = 15 * time.Second
	cfg.StopTimeout = time.Second
	h.cfg = fastConfig(cfg)
	h.rec = &respondtest.Recorder{Inner: dk}
	return &engine{harness: h, dk: dk}
}

// healthy is a fast healthcheck. Its start period widens the verification's settle window (start period +
// interval × (retries+1) + timeout) so a loaded machine, where a probe exec takes seconds, still sees the
// container healthy in time; a quick machine is not slowed: verification ends at the first healthy status.
func healthy() *docker.Healthcheck {
	return &docker.Healthcheck{Test: []string{"CMD", "/app", "-probe", "http://127.0.0.1:8080/health"},
		Interval: 200 * time.Millisecond, Timeout: 5 * time.Second, Retries: 2, StartPeriod: 10 * time.Second} // a loaded engine execs slowly
}

func (e *engine) state(t *testing.T, id string) docker.TargetState {
	t.Helper()
	st, err := e.dk.ContainerState(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *engine) waitFor(t *testing.T, id string, cond func(docker.TargetState) bool) docker.TargetState {
	t.Helper()
	var st docker.TargetState
	eventually(t, 60*time.Second, func() bool { // a deadline: the loaded engine starts and probes slowly
		st = e.state(t, id)
		return cond(st)
	})
	return st
}

func TestCrashedContainerIsRestartedAndVerified(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{})
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app", Cmd: []string{"-health-addr", ":8080"}, Health: healthy()})
	e.waitFor(t, id, func(s docker.TargetState) bool { return s.Health == "healthy" })
	if err := e.dk.KillContainer(context.Background(), id, "SIGKILL"); err != nil { // the crash
		t.Fatal(err)
	}
	crashed := e.waitFor(t, id, func(s docker.TargetState) bool { return !s.Running })
	out := e.process(e.responder("r1"), request(t, name, event.ActionRestart, func(p *event.RemediationNeeded) { p.ContainerID = id }))
	if out.Status != event.StatusSuccess || !out.Verified {
		t.Fatalf("restart: %s verified=%v (%s, %s)", out.Status, out.Verified, out.Details, out.Error)
	}
	st := e.state(t, id)
	if !st.Running || st.Health != "healthy" || !st.StartedAt.After(crashed.StartedAt) {
		t.Errorf("after the restart: running %v health %q started %s", st.Running, st.Health, st.StartedAt)
	}
	recs, err := audit.NewTrail(e.st.Audit).Query(context.Background(), audit.Filter{Target: event.Target(host, name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Decision != respond.DecisionExecuted || recs[0].Result != event.StatusSuccess ||
		!recs[0].Verified || recs[0].ContainerID != id {
		t.Errorf("audit = %+v", recs)
	}
	// A second request within the backoff is denied with the time left, and the engine is not touched.
	again := e.process(e.responder("r1"), request(t, name, event.ActionRestart, func(p *event.RemediationNeeded) { p.ContainerID = id }))
	if again.Status != event.StatusDenied || again.Decision.RetryAfter <= 0 || e.rec.Count("restart") != 1 {
		t.Errorf("second request: %s retry %s restarts %d", again.Status, again.Decision.RetryAfter, e.rec.Count("restart"))
	}
}

func TestVerificationFailsForAContainerThatKeepsCrashing(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{})
	// It exits 50ms after each start; stable means running for 2s, which it never is, even on a loaded machine.
	e.cfg.SettleDefault, e.cfg.StableFor = 4*time.Second, 2*time.Second
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app", Cmd: []string{"-exit-code", "1", "-exit-after", "50ms"}})
	e.waitFor(t, id, func(s docker.TargetState) bool { return !s.Running })
	out := e.process(e.responder("r1"), request(t, name, event.ActionRestart))
	if out.Status != event.StatusFailed || out.Verified {
		t.Errorf("restart of a crashing container: %s verified=%v (%s)", out.Status, out.Verified, out.Details)
	}
}

func TestExecRunsOnlyDeclaredCommandsOnTheEngine(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{})
	probe := []string{"/app", "-probe", "http://127.0.0.1:8080/health"}
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app", Cmd: []string{"-health-addr", ":8080"}, Health: healthy(),
		Labels: map[string]string{"hemostat.exec": `[["/app","-probe","http://127.0.0.1:8080/health"]]`}})
	e.waitFor(t, id, func(s docker.TargetState) bool { return s.Health == "healthy" })
	r := e.responder("r1")
	denied := e.process(r, request(t, name, event.ActionExec, func(p *event.RemediationNeeded) {
		p.Command = []string{"/app", "-exit-code", "0", "-exit-after", "1ms"}
	}))
	ok := e.process(r, request(t, name, event.ActionExec, func(p *event.RemediationNeeded) { p.Command = probe }))
	if denied.Status != event.StatusDenied || denied.Decision.Step != respond.StepNotAllowed {
		t.Errorf("undeclared command: %s %s", denied.Status, denied.Details)
	}
	if ok.Status != event.StatusSuccess || !contains(ok.Details, "exit 0") {
		t.Errorf("declared command: %s %s", ok.Status, ok.Details)
	}
	if got := e.rec.Count("exec"); got != 1 {
		t.Errorf("exec calls = %d, want 1", got)
	}
}

func TestThreeRespondersRestartTheEngineOnce(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{})
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app"})
	before := e.state(t, id)
	env := request(t, name, event.ActionRestart)
	var wg sync.WaitGroup
	for _, inst := range []string{"r1", "r2", "r3"} {
		r := e.responder(inst)
		wg.Go(func() { processUntilAcked(t, r, env, 20*time.Millisecond) })
	}
	wg.Wait()
	if got := e.rec.Count("restart"); got != 1 {
		t.Errorf("restart calls = %d, want 1", got)
	}
	if after := e.state(t, id); !after.StartedAt.After(before.StartedAt) {
		t.Errorf("the container was not restarted")
	}
	if got := len(e.completes()); got != 1 {
		t.Errorf("completes = %d, want 1", got)
	}
}

func TestDryRunAndProtectedNeverWriteToTheEngine(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{DryRun: true})
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app"})
	pid, pname := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app", Labels: map[string]string{"hemostat.protected": "true"}})
	before, pbefore := e.state(t, id), e.state(t, pid)
	r := e.responder("r1")
	for _, action := range []string{event.ActionRestart, event.ActionStop, event.ActionStart} {
		e.clk.Add(2 * time.Hour) // past any backoff or breaker
		if o := e.process(r, request(t, name, action)); o.Status != event.StatusDryRun {
			t.Errorf("dry-run %s: %s %s", action, o.Status, o.Details)
		}
	}
	e.cfg.DryRun = false
	real := e.responder("r2")
	for _, action := range []string{event.ActionRestart, event.ActionStop} {
		if o := e.process(real, request(t, pname, action)); o.Status != event.StatusDenied {
			t.Errorf("protected %s: %s %s", action, o.Status, o.Details)
		}
	}
	if w := e.rec.Writes(); len(w) != 0 {
		t.Errorf("engine writes: %+v", w)
	}
	if after := e.state(t, id); !after.StartedAt.Equal(before.StartedAt) || !after.Running {
		t.Errorf("dry-run touched the container")
	}
	if after := e.state(t, pid); !after.StartedAt.Equal(pbefore.StartedAt) || !after.Running {
		t.Errorf("the protected container was touched")
	}
}

func TestKilledResponderDoesNotRestartTheEngineAgain(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{LeaseTTL: 300 * time.Millisecond})
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app"})
	env := request(t, name, event.ActionRestart)
	crash := true
	e.rec.AfterWrite = func(respondtest.Call) {
		if crash {
			crash = false
			panic("killed after the restart, before the ack")
		}
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = e.responder("r1").Process(context.Background(), env)
	}()
	restarted := e.state(t, id)
	r2 := e.responder("r2")
	out := redeliver(t, r2, env, 10*time.Second)
	if !out.Resumed || out.Status != event.StatusSuccess {
		t.Errorf("redelivery: resumed=%v %s (%s)", out.Resumed, out.Status, out.Details)
	}
	if got := e.rec.Count("restart"); got != 1 {
		t.Errorf("restart calls = %d, want 1", got)
	}
	if st := e.state(t, id); !st.StartedAt.Equal(restarted.StartedAt) {
		t.Errorf("the container was restarted again after the redelivery")
	}
}
