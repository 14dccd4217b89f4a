package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// The timeouts allow for a loaded machine: the scenarios run in parallel with each other and the other
// packages' tests, and Docker's healthchecks and restarts slow down many times over.
const (
	detectTimeout    = time.Minute
	remediateTimeout = 90 * time.Second
)

var probe = &docker.Healthcheck{Test: []string{"CMD", "/app", "-probe", "http://127.0.0.1:8080/health"},
	Interval: 500 * time.Millisecond, Timeout: 2 * time.Second, Retries: 1}

func isSuccess(p *event.RemediationComplete) bool {
	return p.Action == event.ActionRestart && p.Result.Status == event.StatusSuccess
}

// crash: restarted, verified, one notification, one audit entry.
func TestCrash(t *testing.T) {
	s := newScenario(t, "crash")
	s.start()
	id, name := s.container(docker.CreateOptions{Cmd: []string{"-once", "-exit-code", "3", "-exit-after", "1s"}})
	a, detect := s.waitAlert(name, event.ClassCrashed, detectTimeout)
	if a.ExitCode != 3 || a.ContainerID != id {
		t.Errorf("alert = %+v, want exit code 3 of %s", a, id)
	}
	c, took := s.waitComplete(name, remediateTimeout, "verified restart", isSuccess)
	if !c.Verified {
		t.Errorf("restart not verified: %+v", c)
	}
	if st := s.state(id); st.State != "running" {
		t.Errorf("container is %s after the remediation, want running", st.State)
	}
	s.eventually(10*time.Second, "the remediated notification", func() bool { return len(s.notifications(name, "Remediated")) == 1 })
	entries := s.auditEntries(name)
	if len(entries) != 1 || entries[0].Action != event.ActionRestart || entries[0].Result != event.StatusSuccess {
		t.Errorf("audit = %+v, want one successful restart", entries)
	}
	if got := len(s.notifications(name, "Remediated")); got != 1 {
		t.Errorf("%d remediated notifications, want 1", got)
	}
	record(result{"crash", detect, took, s.allNotifications(name), len(entries)})
}

// crash loop under a restart policy: escalated to a human, paged once, never restarted by hemostat more
// than the breaker allows.
func TestCrashLoop(t *testing.T) {
	s := newScenario(t, "crashloop")
	s.start()
	_, name := s.container(docker.CreateOptions{Cmd: []string{"-exit-code", "1", "-exit-after", "300ms"}, RestartPolicy: "always"})
	_, detect := s.waitAlert(name, event.ClassCrashLoop, detectTimeout)
	c, took := s.waitComplete(name, remediateTimeout, "escalation", func(p *event.RemediationComplete) bool {
		return p.Result.Status == event.StatusEscalated
	})
	if c.Action != event.ActionNone {
		t.Errorf("escalation action = %q, want none", c.Action)
	}
	s.eventually(10*time.Second, "a page", func() bool { return len(s.notifications(name, "Needs a human")) >= 1 })
	executed := 0
	for _, e := range s.auditEntries(name) {
		if e.Decision == "executed" {
			executed++
		}
	}
	if executed > 3 {
		t.Errorf("%d actions executed on a crash loop, more than the breaker's 3", executed)
	}
	if got := len(s.notifications(name, "Needs a human")); got != 1 {
		t.Errorf("%d pages, want exactly 1", got)
	}
	record(result{"crash loop (restart policy always)", detect, took, s.allNotifications(name), len(s.auditEntries(name))})
}

// OOM kill: restarted once; on a repeat escalated with "raise the memory limit".
func TestOOMKill(t *testing.T) {
	s := newScenario(t, "oom")
	s.start()
	_, name := s.container(docker.CreateOptions{Cmd: []string{"-leak-mb-per-s", "20"}, MemoryBytes: 32 << 20})
	_, detect := s.waitAlert(name, event.ClassOOMKilled, detectTimeout)
	_, took := s.waitComplete(name, remediateTimeout, "restart", func(p *event.RemediationComplete) bool {
		return p.Action == event.ActionRestart
	})
	c, _ := s.waitComplete(name, 90*time.Second, "escalation of the repeat", func(p *event.RemediationComplete) bool {
		return p.Action == event.ActionNone
	})
	if !strings.Contains(c.Reason, "raise the memory limit") {
		t.Errorf("escalation reason = %q, want it to say raise the memory limit", c.Reason)
	}
	restarts := 0
	for _, e := range s.auditEntries(name) {
		if e.Action == event.ActionRestart && e.Decision == "executed" {
			restarts++
		}
	}
	if restarts != 1 {
		t.Errorf("%d restarts executed, want exactly 1", restarts)
	}
	record(result{"OOM kill, then a repeat", detect, took, s.allNotifications(name), len(s.auditEntries(name))})
}

// unhealthy: restarted, but not during the start period.
func TestUnhealthy(t *testing.T) {
	s := newScenario(t, "unhealthy")
	s.start()
	hc := *probe
	hc.StartPeriod = 4 * time.Second
	began := time.Now()
	id, name := s.container(docker.CreateOptions{Health: &hc,
		Cmd: []string{"-once", "-health-addr", "127.0.0.1:8080", "-unhealthy-after", "500ms"}})
	a, detect := s.waitAlert(name, event.ClassUnhealthy, detectTimeout)
	if since := a.EventTime.Sub(began); since < hc.StartPeriod {
		t.Errorf("unhealthy reported %s after start, inside the %s start period", since, hc.StartPeriod)
	}
	c, took := s.waitComplete(name, remediateTimeout, "verified restart", isSuccess)
	if !c.Verified {
		t.Errorf("not verified: %+v", c)
	}
	s.eventually(20*time.Second, "healthy again", func() bool { return s.state(id).Health == "healthy" })
	record(result{"unhealthy (after a 4s start period)", detect, took, s.allNotifications(name), len(s.auditEntries(name))})
}

// CPU hog: detected over consecutive samples and restarted per policy.
func TestCPUHog(t *testing.T) {
	s := newScenario(t, "cpu")
	s.start()
	// A tenth of a core: the hog fills its limit even when the scenarios around it load the machine.
	_, name := s.container(docker.CreateOptions{Cmd: []string{"-once", "-cpu", "2"}, NanoCPUs: 1e8,
		Labels: map[string]string{"hemostat.cpu_threshold": "60"}})
	a, detect := s.waitAlert(name, event.ClassCPUSaturated, detectTimeout)
	if a.Metrics.CPUPercent < 60 {
		t.Errorf("cpu %% in the alert = %.1f, want over the label's 60", a.Metrics.CPUPercent)
	}
	_, took := s.waitComplete(name, remediateTimeout, "verified restart", isSuccess)
	record(result{"CPU hog", detect, took, s.allNotifications(name), len(s.auditEntries(name))})
}

// memory leak: steady growth toward the limit is predicted and handled before the OOM kill.
func TestMemoryLeak(t *testing.T) {
	s := newScenario(t, "leak", "--leak-min-samples", "6")
	s.start()
	_, name := s.container(docker.CreateOptions{Cmd: []string{"-once", "-leak-mb-per-s", "2"}, MemoryBytes: 256 << 20})
	_, detect := s.waitAlert(name, event.ClassMemoryLeak, 45*time.Second)
	_, took := s.waitComplete(name, remediateTimeout, "verified restart", isSuccess)
	record(result{"memory leak", detect, took, s.allNotifications(name), len(s.auditEntries(name))})
}

// docker stop by a user: nothing happens.
func TestUserStop(t *testing.T) {
	s := newScenario(t, "stop")
	s.start()
	stoppedID, stopped := s.container(docker.CreateOptions{})
	s.eventually(detectTimeout, "the container watched", func() bool {
		ok, _ := s.rdb.HExists(context.Background(), schema.ContainersKey(s.host), event.Target(s.host, stopped)).Result()
		return ok
	})
	ctx := context.Background()
	if err := s.dc.StopContainer(ctx, stoppedID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A sentinel that really crashes after the stop: once its alert is on the bus, anything the stop
	// had caused would be there too (events are handled in order).
	_, sentinel := s.container(docker.CreateOptions{Cmd: []string{"-exit-code", "2", "-exit-after", "200ms"}})
	s.waitAlert(sentinel, event.ClassCrashed, detectTimeout)
	if got := s.alerts(stopped); len(got) != 0 {
		t.Errorf("docker stop opened %d incidents: %+v", len(got), got[0])
	}
	if got := s.auditEntries(stopped); len(got) != 0 {
		t.Errorf("docker stop led to %d audit entries", len(got))
	}
	record(result{"docker stop by a user", 0, 0, s.allNotifications(stopped), len(s.auditEntries(stopped))})
}

// protected container: never touched.
func TestProtected(t *testing.T) {
	s := newScenario(t, "protected")
	s.start()
	id, name := s.container(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "500ms"},
		Labels: map[string]string{"hemostat.protected": "true"}})
	_, detect := s.waitAlert(name, event.ClassCrashed, detectTimeout)
	c, _ := s.waitComplete(name, remediateTimeout, "denial", func(p *event.RemediationComplete) bool { return p.Result.Status == event.StatusDenied })
	if !strings.Contains(c.Result.Details+c.Result.Error+c.Reason, "protected") {
		t.Errorf("denial = %+v, want protected", c.Result)
	}
	if n := count(s.dockerActions(id), "restart") + count(s.dockerActions(id), "start"); n != 1 {
		t.Errorf("protected container started %d times, want only the test's own start", n)
	}
	record(result{"protected container", detect, 0, s.allNotifications(name), len(s.auditEntries(name))})
}

// --dry-run: nothing touched, the audit predicts what would have been done.
func TestDryRun(t *testing.T) {
	s := newScenario(t, "dryrun", "--dry-run")
	s.start()
	id, name := s.container(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "500ms"}})
	_, detect := s.waitAlert(name, event.ClassCrashed, detectTimeout)
	c, _ := s.waitComplete(name, remediateTimeout, "dry run", func(p *event.RemediationComplete) bool { return p.Result.Status == event.StatusDryRun })
	if c.Action != event.ActionRestart || !c.DryRun {
		t.Errorf("dry run = %+v, want a simulated restart", c)
	}
	if st := s.state(id); st.State != "exited" {
		t.Errorf("container %s under --dry-run, want exited (untouched)", st.State)
	}
	if n := count(s.dockerActions(id), "start"); n != 1 {
		t.Errorf("container started %d times under --dry-run, want 1 (the test's own)", n)
	}
	// The dry run simulates the healing loop too: the shadow ledger's follow-ups (a second simulated restart
	// one backoff step later) may come before this check. Every entry is simulated, the first is the alert's.
	entries := s.auditEntries(name)
	if len(entries) == 0 || entries[0].FollowUp {
		t.Errorf("audit = %+v, want a dry-run restart for the alert first", entries)
	}
	for i, e := range entries {
		if !e.DryRun || e.Action != event.ActionRestart || e.Decision != "dry_run" {
			t.Errorf("audit entry %d = %+v, want a dry-run restart", i, e)
		}
	}
	record(result{"--dry-run", detect, 0, s.allNotifications(name), len(entries)})
}

// the process killed in the middle of a remediation and started again: no duplicate action, nothing lost.
func TestKilledMidRemediation(t *testing.T) {
	s := newScenario(t, "killed")
	s.start()
	// The good start must be judged healthy by a machine the parallel scenarios load: one probe slower than
	// its timeout must not turn it unhealthy (retries 2, timeout 3 s; a settle window of 4.5 s).
	hc := *probe
	hc.Timeout, hc.Retries = 3*time.Second, 2
	id, name := s.container(docker.CreateOptions{Health: &hc,
		Labels: map[string]string{"hemostat.stop_timeout": "4"},
		Cmd:    []string{"-once", "-ignore-sigterm", "-health-addr", "127.0.0.1:8080", "-unhealthy-after", "1s"}})
	_, detect := s.waitAlert(name, event.ClassUnhealthy, detectTimeout)
	ledger := schema.LedgerKey(schema.Target(s.host, name))
	s.eventually(remediateTimeout, "a remediation in flight", func() bool {
		v, _ := s.rdb.HGet(context.Background(), ledger, "inflight_event").Result()
		return v != ""
	})
	s.crashProcess() // SIGKILL while the restart waits for the 4s stop timeout
	s.start()
	c, took := s.waitComplete(name, 90*time.Second, "the remediation's outcome", func(p *event.RemediationComplete) bool {
		return p.Action == event.ActionRestart && p.Result.Status != event.StatusSkipped
	})
	if c.Result.Status != event.StatusSuccess {
		t.Errorf("outcome after the crash = %+v, want success", c.Result)
	}
	s.eventually(30*time.Second, "healthy again", func() bool { return s.state(id).Health == "healthy" })
	acts := s.dockerActions(id)
	if n := count(acts, "restart"); n > 1 {
		t.Errorf("container restarted %d times, want at most once: %v", n, acts)
	}
	n := 0
	for _, cc := range s.completes(name) {
		if cc.p.Action == event.ActionRestart && cc.p.Result.Status == event.StatusSuccess {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d successful restarts reported, want 1", n)
	}
	record(result{"killed mid-remediation, restarted", detect, took, s.allNotifications(name), len(s.auditEntries(name))})
}
