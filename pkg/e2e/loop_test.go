package e2e_test

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// The healing loop (issue 13) on the real engine: containers that keep failing, each with its policy
// shortened by labels (hemostat.backoff and hemostat.cooldown, ...), and `hemostat run` driving every incident
// until it ends. Every restart is checked twice: the ledger's action times (what the backoff is computed
// from) against the schedule, and the engine's restart events (what was really done) against the ledger. The
// table reports both as offsets from the container's first failure.

const (
	// loopBackoff is b, the first backoff step (label hemostat.backoff): longer than a restart and a failed
	// verification on an idle machine (loopProbe's settle window is 4 s), so the schedule is 0, b, 3b.
	loopBackoff = 6 * time.Second
	// gapEarly and gapLate bound when an action comes. Never before the backoff allows it (gapEarly: the
	// ledger keeps milliseconds); at most gapLate after both the backoff allows it and the incident is ready
	// for it (the previous action reported, the container failing again): the follow-up poll, a loaded
	// machine. On a loaded machine a restart alone can take 10 s, so the incident is often ready after the
	// backoff step.
	gapEarly = 50 * time.Millisecond
	gapLate  = 5 * time.Second
	// restartSlack bounds the time from an action's commit in the ledger to the engine's restart event.
	restartSlack = 20 * time.Second
	// loopTimeout bounds the wait for an incident's end.
	loopTimeout = 3 * time.Minute
	// loopPoll is how often the loop scenarios read Redis while they wait.
	loopPoll = 200 * time.Millisecond
)

// loopProbe is the healthcheck of containers whose verifications fail: a settle window (start period +
// interval x (retries + 1) + timeout, see respond.SettleWindow) of 4 s, a probe a second.
var loopProbe = docker.Healthcheck{Test: probe.Test, Interval: time.Second, Timeout: 2 * time.Second, Retries: 1}

// goodProbe is the healthcheck of containers that must also be healthy: a probe slowed down by a loaded
// machine neither fails a good start (the start period) nor turns it unhealthy (two failures in a row), and
// the settle window is 9 s.
var goodProbe = docker.Healthcheck{Test: probe.Test, Interval: time.Second, Timeout: 3 * time.Second, Retries: 2,
	StartPeriod: 3 * time.Second}

// unhealthyApp is a test app whose /health fails from the first probe on (on its bad starts, with -bad-starts).
func unhealthyApp(extra ...string) []string {
	return append([]string{"-health-addr", "127.0.0.1:8080", "-unhealthy-after", "1ns"}, extra...)
}

// loopLabels shorten a container's policy: backoff b, doubling without a cap within the scenario, plus the
// given label pairs.
func loopLabels(kv ...string) map[string]string {
	m := map[string]string{"hemostat.backoff": loopBackoff.String(), "hemostat.cooldown": "10m"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// loopScenario is a scenario that also reads the engine's events, for the restart times.
type loopScenario struct {
	*scenario
	engine *engineLog
}

func newLoopScenario(t *testing.T, name string, extra ...string) *loopScenario {
	t.Helper()
	s := newScenario(t, name, extra...)
	return &loopScenario{scenario: s, engine: recordEngine(t)}
}

// engineLog is the engine's container events since the first loop scenario started, recorded once for all
// of them: one subscription, filtered, instead of one per scenario, spares a loaded engine.
type engineLog struct {
	mu     sync.Mutex
	events []docker.Event
	err    error // why the stream ended early
	stop   func()
}

// engineActions are the events the loop scenarios read.
var engineActions = []string{"start", "restart", "kill", "stop", "die", "health_status"}

var (
	engineOnce sync.Once
	engine     *engineLog
	engineErr  error
)

// recordEngine returns the shared log of the engine's events, starting it on first use; stopEngineLog
// (TestMain) ends it.
func recordEngine(t *testing.T) *engineLog {
	t.Helper()
	engineOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		dc, err := docker.New(ctx, docker.Options{})
		if err != nil {
			cancel()
			engineErr = err
			return
		}
		l, done := followEngine(ctx, dc)
		l.stop = func() { cancel(); <-done; dc.Close() }
		engine = l
	})
	if engineErr != nil {
		t.Fatalf("engine events: %v", engineErr)
	}
	return engine
}

// followEngine records the engine's container events into a new log until ctx ends (or the stream
// breaks, kept in its err); done closes when it has stopped.
func followEngine(ctx context.Context, dc *docker.Client) (l *engineLog, done <-chan struct{}) {
	l = &engineLog{}
	evs, errs := dc.Events(ctx, docker.EventsOptions{Since: time.Now().Add(-time.Second), Actions: engineActions})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for e := range evs {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
		}
		if err := <-errs; err != nil && ctx.Err() == nil {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
		}
	}()
	return l, stopped
}

// stopEngineLog ends the shared log of the engine's events, if it was started.
func stopEngineLog() {
	if engine != nil {
		engine.stop()
	}
}

// times returns the times of a container's events of one action ("restart", "health_status: healthy").
func (l *engineLog) times(id, action string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, e := range l.events {
		if e.ID == id && e.Action == action {
			out = append(out, e.Time)
		}
	}
	return out
}

// engineTimes returns the times of a container's events of one action; it fails the test if the engine's
// event stream broke (events may be missing).
func (s *loopScenario) engineTimes(id, action string) []time.Time {
	s.t.Helper()
	s.engine.mu.Lock()
	err := s.engine.err
	s.engine.mu.Unlock()
	if err != nil {
		s.t.Fatalf("the engine's event stream ended: %v", err)
	}
	return s.engine.times(id, action)
}

// restarts returns the times of the engine's restart events of a container.
func (s *loopScenario) restarts(id string) []time.Time { return s.engineTimes(id, "restart") }

// touched returns the events of a container that only an action causes (restart, kill, stop).
func (s *loopScenario) touched(id string) []string {
	var out []string
	for _, a := range []string{"restart", "kill", "stop"} {
		for range s.engineTimes(id, a) {
			out = append(out, a)
		}
	}
	return out
}

// ledger reads a container's safety ledger.
func (s *loopScenario) ledger(name string) schema.Ledger {
	s.t.Helper()
	m, err := s.rdb.HGetAll(context.Background(), schema.LedgerKey(schema.Target(s.host, name))).Result()
	if err != nil {
		s.t.Fatalf("read the ledger of %s: %v", name, err)
	}
	l, err := schema.DecodeLedger(m)
	if err != nil {
		s.t.Fatalf("decode the ledger of %s: %v", name, err)
	}
	return l
}

// incident reads an incident's hash.
func (s *loopScenario) incident(name, class string) schema.Incident {
	s.t.Helper()
	key := event.IncidentKey(s.host, name, class)
	m, err := s.rdb.HGetAll(context.Background(), schema.IncidentKey(key)).Result()
	if err != nil {
		s.t.Fatalf("read incident %s: %v", key, err)
	}
	in, err := schema.DecodeIncident(key, m)
	if err != nil {
		s.t.Errorf("decode incident %s: %v", key, err)
	}
	return in
}

// wait polls cond every loopPoll until it holds, and fails the test after timeout.
func (s *loopScenario) wait(timeout time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(loopPoll)
	}
}

// never watches for an observation window and fails the test if cond comes to hold: the bounded window
// that proves nothing happens.
func (s *loopScenario) never(window time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		if cond() {
			s.t.Errorf("%s within the %s observation window", what, window)
			return
		}
		time.Sleep(loopPoll)
	}
}

// firstFailure is Docker's time of the failure the container's first health alert reports.
func (s *loopScenario) firstFailure(name string) time.Time {
	s.t.Helper()
	a := s.alerts(name)
	if len(a) == 0 {
		s.t.Fatalf("no health alert for %s", name)
	}
	return a[0].EventTime
}

// completeWhere returns the container's first remediation_complete that ok accepts, and when it was published.
func (s *loopScenario) completeWhere(name string, ok func(*event.RemediationComplete) bool) (*event.RemediationComplete, time.Time) {
	for _, c := range s.completes(name) {
		if ok(c.p) {
			return c.p, c.env.Timestamp
		}
	}
	return nil, time.Time{}
}

// recovered returns the container_recovered of a container's incident of class, nil until there is one.
func (s *loopScenario) recovered(name, class string) *event.ContainerRecovered {
	for _, env := range s.envelopes(event.StreamContainerRecovered) {
		if p, err := event.DecodeData[event.ContainerRecovered](env); err == nil && p.ContainerName == name && p.Class == class {
			return p
		}
	}
	return nil
}

// auditWhere returns the container's audit entries that ok accepts.
func (s *loopScenario) auditWhere(name string, ok func(audit.Entry) bool) []audit.Entry {
	var out []audit.Entry
	for _, e := range s.auditEntries(name) {
		if ok(e) {
			out = append(out, e)
		}
	}
	return out
}

func executed(e audit.Entry) bool { return e.Decision == "executed" }

func gaveUp(p *event.RemediationComplete) bool { return p.GaveUp }

// timeline is one container's actions as the scenario saw them: the ledger's actions (commit times, what
// the backoff is computed from), the engine's restart events, and when each action was reported (its audit
// entry, written after the verification).
type timeline struct {
	actions  []time.Time
	restarts []time.Time
	reported []time.Time
}

func (s *loopScenario) timeline(id, name string) timeline {
	var reported []time.Time
	for _, e := range s.auditWhere(name, executed) {
		reported = append(reported, e.Time)
	}
	return timeline{actions: s.ledger(name).AttemptTimes(), restarts: s.restarts(id), reported: reported}
}

// ready returns, for each action, when the incident was ready for the next one but for the backoff: the
// action reported, and the container failing again after its restart (the engine's failure event: a relapse).
func (s *loopScenario) ready(id string, tl timeline, failure string) []time.Time {
	out := make([]time.Time, len(tl.actions))
	for i := range tl.actions {
		if i < len(tl.reported) {
			out[i] = tl.reported[i]
		}
		if i < len(tl.restarts) {
			for _, f := range s.engineTimes(id, failure) {
				if f.After(tl.restarts[i]) {
					out[i] = later(out[i], f)
					break
				}
			}
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkSchedule checks actions against the backoff schedule want (offsets from the first action): action i
// comes no sooner than the backoff step after action i-1 allows, and no later than gapLate after both the
// step allows it and the incident was ready for it (ready[i-1]).
func checkSchedule(t *testing.T, what string, actions, ready []time.Time, want []time.Duration) {
	t.Helper()
	if len(actions) != len(want) {
		t.Errorf("%s: %d actions at %s, want %d at %s", what, len(actions), offsets(actions, firstOf(actions)), len(want), durations(want))
		return
	}
	for i := 1; i < len(actions); i++ {
		allowed := actions[i-1].Add(want[i] - want[i-1])
		if actions[i].Before(allowed.Add(-gapEarly)) {
			t.Errorf("%s: action %d came %s after action %d, before the backoff step of %s allowed it", what, i+1,
				actions[i].Sub(actions[i-1]).Round(time.Millisecond), i, want[i]-want[i-1])
		}
		if due := later(allowed, ready[i-1]); actions[i].After(due.Add(gapLate)) {
			t.Errorf("%s: action %d came %s after it was due (the backoff step of %s after action %d, and the incident ready %s after it), want within %s",
				what, i+1, actions[i].Sub(due).Round(time.Millisecond), want[i]-want[i-1], i, ready[i-1].Sub(actions[i-1]).Round(time.Millisecond), gapLate)
		}
	}
}

// checkRestarts checks that the engine restarted the container once per action of the ledger, each restart
// after its action was committed.
func checkRestarts(t *testing.T, what string, tl timeline) {
	t.Helper()
	if len(tl.restarts) != len(tl.actions) {
		t.Errorf("%s: the engine restarted it %d times (%s after the first action), the ledger records %d actions",
			what, len(tl.restarts), offsets(tl.restarts, firstOf(tl.actions)), len(tl.actions))
		return
	}
	for i := range tl.actions {
		if d := tl.restarts[i].Sub(tl.actions[i]); d < -gapEarly || d > restartSlack {
			t.Errorf("%s: restart %d came %s after its action, want 0 to %s", what, i+1, d.Round(time.Millisecond), restartSlack)
		}
	}
}

func firstOf(ts []time.Time) time.Time {
	if len(ts) == 0 {
		return time.Time{}
	}
	return ts[0]
}

// schedule is the backoff schedule of n actions with base b: 0, b, 3b, 7b, ...
func schedule(n int, b time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := 1; i < n; i++ {
		out[i] = out[i-1] + b<<(i-1)
	}
	return out
}

// offsets formats times as seconds after ref: "0.6, 5.7, 15.8 s".
func offsets(ts []time.Time, ref time.Time) string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%.1f", t.Sub(ref).Seconds())
	}
	return strings.Join(parts, ", ") + " s"
}

func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%g", d.Seconds())
	}
	return strings.Join(parts, ", ") + " s"
}

// spread formats durations as their range and median: "each once, 0.6 to 7.5 s (median 1.8 s)".
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return fmt.Sprintf("each once, %.1f to %.1f s (median %.1f s)", ds[0].Seconds(), ds[len(ds)-1].Seconds(), ds[len(ds)/2].Seconds())
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// loopRow is one row of the restart-times table.
type loopRow struct {
	scenario  string
	want      string // the schedule, in b
	decided   string // the ledger's action times (hemostat's decision to restart), after the first failure
	restarted string // the engine's restart events (the container running again), after the first failure
	ended     string
}

var (
	loopMu   sync.Mutex
	loopRows []loopRow
)

func recordLoop(r loopRow) {
	loopMu.Lock()
	defer loopMu.Unlock()
	loopRows = append(loopRows, r)
}

// churn: a container that crashes once, 2 s after its start, created every 2 to 4 s for 3 minutes and removed
// after 30 s. Every one is healed; nothing is held: healed containers do not count toward the blast radius.
// The longest scenario, it starts at once without waiting for a slot (atOnce).
func TestLoopChurn(t *testing.T) {
	// --max-concurrent 4: the hold under test is the unhealthy count, not the actions in flight.
	s := newLoopScenario(t, "churn", "--max-concurrent", "4")
	s.start()
	const (
		churnFor = 3 * time.Minute
		lifetime = 30 * time.Second
	)
	type churned struct {
		id, name string
		started  time.Time
		removed  bool
	}
	var (
		all      []*churned
		removals sync.WaitGroup // removals under way: off the pace loop, a removal takes seconds on a loaded machine
	)
	healed := map[string]bool{}
	refresh := func() {
		for _, env := range s.envelopes(event.StreamRemediationComplete) {
			if p, err := event.DecodeData[event.RemediationComplete](env); err == nil && isSuccess(p) && p.Verified {
				healed[p.Container] = true
			}
		}
	}
	// removeOld removes the containers started more than age ago (all of them with 0); each must be healed
	// by then.
	removeOld := func(age time.Duration) {
		refresh()
		for _, c := range all {
			if c.removed || time.Since(c.started) < age {
				continue
			}
			if !healed[c.name] {
				t.Errorf("%s not healed %s after its start", c.name, time.Since(c.started).Round(time.Second))
			}
			c.removed = true
			removals.Go(func() { // returns when the engine has removed it
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := s.dc.RemoveContainer(ctx, c.id); err != nil {
					t.Errorf("remove %s: %v", c.name, err)
				}
			})
		}
	}
	gaps := []time.Duration{2 * time.Second, 3 * time.Second, 4 * time.Second}
	began := time.Now()
	next := began
	for i := 0; time.Since(began) < churnFor; i++ {
		time.Sleep(time.Until(next)) // the churn's pace, not a synchronisation
		next = next.Add(gaps[i%len(gaps)])
		id, name := testenv.RunContainer(t, s.dc, docker.CreateOptions{Name: fmt.Sprintf("e2e-churn-%d", i),
			Cmd: []string{"-once", "-exit-code", "3", "-exit-after", "2s"}})
		all = append(all, &churned{id: id, name: name, started: time.Now()})
		removeOld(lifetime)
	}
	s.wait(time.Minute, "the last containers healed", func() bool {
		refresh()
		for _, c := range all {
			if !c.removed && !healed[c.name] {
				return false
			}
		}
		return true
	})

	var decided, took []time.Duration
	held := 0
	for _, c := range all {
		held += len(s.auditWhere(c.name, func(e audit.Entry) bool { return e.Decision == "held" }))
		ex := s.auditWhere(c.name, executed)
		if len(ex) != 1 || ex[0].Result != event.StatusSuccess {
			t.Errorf("%s: %d restarts executed, want exactly 1, successful", c.name, len(ex))
		}
		r, a := s.restarts(c.id), s.alerts(c.name)
		if len(r) != 1 {
			t.Errorf("%s: restarted %d times by the engine, want once", c.name, len(r))
		} else if l := s.ledger(c.name).AttemptTimes(); len(a) > 0 && len(l) == 1 {
			decided, took = append(decided, l[0].Sub(a[0].EventTime)), append(took, r[0].Sub(a[0].EventTime))
		}
	}
	if held != 0 {
		t.Errorf("%d requests held by the blast radius, want none: healed containers do not count", held)
	}
	// 60 on an idle machine; on a loaded one, creating and starting a container can take seconds, and fewer
	// fit in the 3 minutes.
	if len(all) < 20 {
		t.Errorf("only %d containers churned in %s", len(all), churnFor)
	}
	removeOld(0)
	removals.Wait()
	recordLoop(loopRow{"churn: a crash-once container every 2-4 s for 3 min", "once each", spread(decided), spread(took),
		fmt.Sprintf("%d containers, all healed, none held", len(all))})
}

// hemostat run killed (SIGKILL) during a backoff and started again: the schedule lives in Redis, so the next
// attempt still happens on time, and only once.
func TestLoopKilledDuringBackoff(t *testing.T) {
	s := newLoopScenario(t, "sigkill")
	s.start()
	// The second step, 2b = 20 s, outlasts a restart and its failed verification even on a loaded machine:
	// hemostat is killed once the second attempt is reported, inside that step.
	b := 10 * time.Second
	hc := loopProbe
	id, name := s.container(docker.CreateOptions{Health: &hc, Labels: loopLabels("hemostat.backoff", b.String()), Cmd: unhealthyApp()})
	second := func(p *event.RemediationComplete) bool {
		return p.Result.Status == event.StatusFailed && p.Attempts == 2
	}
	s.wait(loopTimeout, "the second restart's failed verification", func() bool { p, _ := s.completeWhere(name, second); return p != nil })
	p, _ := s.completeWhere(name, second)
	s.crashProcess()
	killedAt := time.Now()
	s.start()
	if !killedAt.Before(p.NextAt) {
		t.Fatalf("hemostat was killed at %v, after the next attempt was due (%v): not during the backoff", killedAt, p.NextAt)
	}
	third := func(p *event.RemediationComplete) bool { return p.Attempts == 3 }
	s.wait(loopTimeout, "the third restart's outcome", func() bool { p, _ := s.completeWhere(name, third); return p != nil })
	// A follow-up taken twice would act twice at the same step: nothing more may come for a while (the
	// next step is 4b away).
	s.never(b/2, "another restart", func() bool { return len(s.restarts(id)) > 3 || len(s.ledger(name).Attempts) > 3 })

	tl := s.timeline(id, name)
	checkSchedule(t, "killed during the backoff", tl.actions, s.ready(id, tl, "health_status: unhealthy"), schedule(3, b))
	checkRestarts(t, "killed during the backoff", tl)
	if got := s.auditWhere(name, executed); len(got) != 3 {
		t.Errorf("%d restarts executed in the audit trail, want 3", len(got))
	}
	outcomes := 0
	for _, c := range s.completes(name) {
		if c.p.Action == event.ActionRestart && c.p.Result.Status == event.StatusFailed {
			outcomes++
		}
	}
	if outcomes != 3 {
		t.Errorf("%d restart outcomes published, want 3: one per attempt", outcomes)
	}
	first := s.firstFailure(name)
	recordLoop(loopRow{"hemostat run SIGKILLed in the second backoff step", "0, b, 3b; b = 10 s", offsets(tl.actions, first), offsets(tl.restarts, first),
		fmt.Sprintf("killed at %s and started again; attempt 3 on time, once", seconds(killedAt.Sub(first)))})
}

// always unhealthy: restarted at 0, b and 3b, each verification failing; the breaker allows no 4th, so
// at the next step (7b) hemostat gives up, once and loudly, and touches the container no more.
func TestLoopAlwaysUnhealthy(t *testing.T) {
	s := newLoopScenario(t, "always")
	s.start()
	b := loopBackoff
	hc := loopProbe
	id, name := s.container(docker.CreateOptions{Health: &hc, Labels: loopLabels(), Cmd: unhealthyApp()})
	s.wait(loopTimeout, "gave up", func() bool { p, _ := s.completeWhere(name, gaveUp); return p != nil })
	gave, gaveAt := s.completeWhere(name, gaveUp)
	s.never(2*b, "a restart after it gave up", func() bool { return len(s.restarts(id)) > 3 })

	tl := s.timeline(id, name)
	ready := s.ready(id, tl, "health_status: unhealthy")
	checkSchedule(t, "always unhealthy", tl.actions, ready, schedule(3, b))
	checkRestarts(t, "always unhealthy", tl)
	if len(tl.actions) == 3 {
		// The 4th step is when the breaker opens: it allows no 4th action within the hour.
		checkSchedule(t, "gave up", []time.Time{tl.actions[2], gaveAt}, ready[2:], schedule(2, 4*b))
	}
	if gave.Attempts != 3 || len(gave.Errors) != 3 || gave.BreakerUntil.IsZero() {
		t.Errorf("gave up with attempts %d, errors %q, breaker until %v; want 3 attempts, 3 errors and the cool-off's end",
			gave.Attempts, gave.Errors, gave.BreakerUntil)
	}
	if got := s.notifications(name, "Gave up on "+name+" after 3 attempts"); len(got) != 1 {
		t.Errorf("%d gave-up notifications, want exactly 1", len(got))
	}
	failed := s.auditWhere(name, func(e audit.Entry) bool { return executed(e) && e.Result == event.StatusFailed })
	if len(failed) != 3 {
		t.Errorf("%d failed restarts in the audit trail, want 3", len(failed))
	}
	if got := s.auditWhere(name, func(e audit.Entry) bool { return e.GaveUp }); len(got) != 1 {
		t.Errorf("%d audit entries that gave up, want 1", len(got))
	}
	first := s.firstFailure(name)
	recordLoop(loopRow{"always unhealthy", "0, b, 3b, gave up at 7b; b = 6 s", offsets(tl.actions, first), offsets(tl.restarts, first),
		fmt.Sprintf("gave up at %s, 1 notification", seconds(gaveAt.Sub(first)))})
}

// unhealthy 3 s after every start: each restart verifies, then the condition comes back; every relapse
// continues the one incident, the backoff keeps growing, and at the third relapse the breaker opens.
func TestLoopRelapse(t *testing.T) {
	// The hysteresis outlasts the healthy spell, so the incident stays open across relapses. The spell (6 s)
	// leaves room for a probe that a loaded machine slows down to answer "healthy" first.
	s := newLoopScenario(t, "relapse", "--recovery-hysteresis", "20s")
	s.start()
	b := loopBackoff
	hc := goodProbe
	id, name := s.container(docker.CreateOptions{Health: &hc, Labels: loopLabels(),
		Cmd: []string{"-health-addr", "127.0.0.1:8080", "-unhealthy-after", "6s"}})
	s.wait(loopTimeout, "gave up", func() bool { p, _ := s.completeWhere(name, gaveUp); return p != nil })
	_, gaveAt := s.completeWhere(name, gaveUp)
	s.never(2*b, "a restart after it gave up", func() bool { return len(s.restarts(id)) > 3 })

	tl := s.timeline(id, name)
	ready := s.ready(id, tl, "health_status: unhealthy")
	checkSchedule(t, "relapsing", tl.actions, ready, schedule(3, b))
	checkRestarts(t, "relapsing", tl)
	if len(tl.actions) == 3 {
		// The third relapse meets the breaker at once: no backoff to wait out.
		checkSchedule(t, "gave up", []time.Time{tl.actions[2], gaveAt}, ready[2:], schedule(2, 0))
	}
	if got := s.alerts(name); len(got) != 1 {
		t.Errorf("%d health alerts, want 1: every relapse continues the incident", len(got))
	}
	in := s.incident(name, event.ClassUnhealthy)
	if in.State != schema.StateOpen || in.Relapses != 3 || in.Attempts != 3 || !in.GaveUp() {
		t.Errorf("incident: state %s, relapses %d, attempts %d, gave up %v; want open, 3 relapses, 3 attempts, gave up",
			in.State, in.Relapses, in.Attempts, in.GaveUp())
	}
	var relapses []string
	for _, c := range s.completes(name) {
		if c.p.Result.Status == event.StatusSuccess {
			relapses = append(relapses, c.p.Relapse)
		}
	}
	if len(relapses) != 3 {
		t.Errorf("%d verified restarts, want 3", len(relapses))
	}
	for i, r := range relapses {
		want := fmt.Sprintf("after restart %d", i)
		if (i == 0 && r != "") || (i > 0 && !strings.Contains(r, want)) {
			t.Errorf("restart %d answers the relapse %q, want %q", i+1, r, want)
		}
	}
	if got := s.notifications(name, "Gave up on "+name+" after 3 attempts"); len(got) != 1 {
		t.Errorf("%d gave-up notifications, want exactly 1", len(got))
	}
	if got := s.notifications(name, "Remediated: "+name); len(got) != 3 {
		t.Errorf("%d remediated notifications, want 3 (a relapse is news)", len(got))
	}
	first := s.firstFailure(name)
	recordLoop(loopRow{"unhealthy 6 s after every start", "0, b, 3b, gave up at relapse 3; b = 6 s", offsets(tl.actions, first), offsets(tl.restarts, first),
		fmt.Sprintf("gave up at %s; one incident, 3 relapses", seconds(gaveAt.Sub(first)))})
}

// crashes 2 s after every start, without a restart policy: restarted on the backoff schedule until it is
// classed crash_loop (three exits within the loop window) or the breaker opens; then one escalation.
func TestLoopCrashEveryStart(t *testing.T) {
	s := newLoopScenario(t, "crashes", "--recovery-hysteresis", "10s")
	s.start()
	b := loopBackoff
	id, name := s.container(docker.CreateOptions{Labels: loopLabels(), Cmd: []string{"-exit-code", "3", "-exit-after", "2s"}})
	escalated := func(p *event.RemediationComplete) bool { return p.GaveUp || p.Action == event.ActionNone }
	s.wait(loopTimeout, "an escalation", func() bool { p, _ := s.completeWhere(name, escalated); return p != nil })
	esc, escAt := s.completeWhere(name, escalated)
	n := len(s.restarts(id))
	s.never(2*b, "a restart after the escalation", func() bool { return len(s.restarts(id)) > n })

	tl := s.timeline(id, name)
	if len(tl.actions) < 2 || len(tl.actions) > 3 {
		t.Fatalf("%d restarts before the escalation, want 2 (crash_loop) or 3 (breaker)", len(tl.actions))
	}
	checkSchedule(t, "crashing", tl.actions, s.ready(id, tl, "die"), schedule(len(tl.actions), b))
	checkRestarts(t, "crashing", tl)
	if esc.Action == event.ActionNone && esc.Class != event.ClassCrashLoop {
		t.Errorf("escalated %s, want crash_loop", esc.Class)
	}
	pages := len(s.notifications(name, "Needs a human")) + len(s.notifications(name, "Gave up"))
	if pages != 1 {
		t.Errorf("%d escalation notifications, want exactly 1", pages)
	}
	first := s.firstFailure(name)
	how := "gave up"
	if esc.Action == event.ActionNone {
		how = "escalated as " + esc.Class
	}
	recordLoop(loopRow{"crashes 2 s after every start, no restart policy", "0, b; b = 6 s", offsets(tl.actions, first), offsets(tl.restarts, first),
		fmt.Sprintf("%s at %s, 1 notification", how, seconds(escAt.Sub(first)))})
}

// recovers after the second restart: the incident ends recovered after 2 attempts. The app then exits
// once, long after it turned healthy (label hemostat.healthy_reset): the backoff starts again, so that crash
// is restarted at once, at backoff step 1, instead of waiting for the 2b step the backoff had reached.
func TestLoopRecovers(t *testing.T) {
	s := newLoopScenario(t, "recovers", "--recovery-hysteresis", "4s")
	s.start()
	// b is longer than a failed verification's 9 s settle window (goodProbe), and 2b longer than a restart on a
	// loaded machine and the 12 s the good start runs before it exits.
	b := 15 * time.Second
	hc := goodProbe
	id, name := s.container(docker.CreateOptions{Health: &hc,
		Labels: loopLabels("hemostat.backoff", b.String(), "hemostat.healthy_reset", "2s"),
		Cmd:    unhealthyApp("-bad-starts", "2", "-exit-code", "3", "-exit-again-after", "12s")})
	s.wait(loopTimeout, "recovered", func() bool { return s.recovered(name, event.ClassUnhealthy) != nil })
	rec := s.recovered(name, event.ClassUnhealthy)
	s.wait(loopTimeout, "the crash after the recovery healed", func() bool { return s.recovered(name, event.ClassCrashed) != nil })

	tl := s.timeline(id, name)
	l := s.ledger(name)
	if len(tl.actions) != 3 {
		t.Fatalf("%d actions, want 3 (2 for the unhealthy incident, 1 for the crash)", len(tl.actions))
	}
	ready := s.ready(id, tl, "health_status: unhealthy")
	checkSchedule(t, "unhealthy until the second restart", tl.actions[:2], ready[:2], schedule(2, b))
	checkRestarts(t, "recovers", tl)
	if rec.Attempts != 2 {
		t.Errorf("recovered after %d attempts, want 2", rec.Attempts)
	}
	if got := s.notifications(name, "Recovered: "+name+" after 2 attempts"); len(got) != 1 {
		t.Errorf("%d 'recovered after 2 attempts' notifications, want 1", len(got))
	}
	alerts := s.alerts(name)
	if len(alerts) != 2 || alerts[1].Class != event.ClassCrashed {
		t.Fatalf("%d health alerts, want 2: unhealthy, then crashed", len(alerts))
	}
	crash := alerts[1].EventTime
	// The backoff reset: the crash's restart is at backoff step 1 (it would be at step 3), it was not denied,
	// and it came at once, not when the 2b step after the second restart allowed.
	if l.BackoffStep != 1 {
		t.Errorf("backoff step %d after the crash's restart, want 1 (the backoff reset)", l.BackoffStep)
	}
	if got := s.auditWhere(name, func(e audit.Entry) bool { return e.Decision == "denied" }); len(got) != 0 {
		t.Errorf("%d denials, want none: the crash came after the healthy reset (%s)", len(got), got[0].Details)
	}
	if d := tl.actions[2].Sub(crash); d > gapLate {
		t.Errorf("the crash was restarted %s after it, want within %s", d.Round(time.Millisecond), gapLate)
	}
	if got := s.notifications(name, "Recovered: "+name+" after 1 attempt"); len(got) != 1 {
		t.Errorf("%d 'recovered after 1 attempt' notifications for the crash, want 1", len(got))
	}
	first := s.firstFailure(name)
	recordLoop(loopRow{"recovers after the 2nd restart, then crashes once", "0, b; the crash at once (reset); b = 15 s",
		offsets(tl.actions, first), offsets(tl.restarts, first), fmt.Sprintf("recovered after 2 attempts; crash at %s, restarted %s after it (the 2b step: %s)",
			seconds(crash.Sub(first)), seconds(tl.restarts[2].Sub(crash)), seconds(tl.actions[1].Add(2*b).Sub(first)))})
}

// three containers unhealthy at once with --max-concurrent 1: healed one after the other, the others held
// and looked at again until the slot frees; none is dropped.
func TestLoopThreeAtOnce(t *testing.T) {
	s := newLoopScenario(t, "three", "--max-concurrent", "1", "--hold-retry", "1s")
	s.start()
	ids, names := make([]string, 3), make([]string, 3)
	for i := range ids {
		hc := goodProbe
		// A long backoff: should a loaded machine fail a verification, the monitor sees the container
		// recover long before a second restart would be allowed.
		ids[i], names[i] = testenv.CreateContainer(t, s.dc, docker.CreateOptions{Name: fmt.Sprintf("e2e-three-%d", i),
			Health: &hc, Labels: loopLabels("hemostat.backoff", "1m"), Cmd: unhealthyApp("-once")})
	}
	for i, id := range ids {
		if err := s.dc.StartContainer(context.Background(), id); err != nil {
			t.Fatalf("start %s: %v", names[i], err)
		}
	}
	s.wait(loopTimeout, "all three recovered", func() bool {
		for _, name := range names {
			if s.recovered(name, event.ClassUnhealthy) == nil {
				return false
			}
		}
		return true
	})

	type healed struct {
		name                    string
		action, reported, start time.Time // committed, reported, the engine's restart event
	}
	var order []healed
	for i, name := range names {
		tl := s.timeline(ids[i], name)
		checkRestarts(t, name, tl)
		if len(tl.actions) != 1 || len(tl.restarts) != 1 || len(tl.reported) != 1 {
			t.Fatalf("%s: %d actions, %d restarts, %d reported; want one restart", name, len(tl.actions), len(tl.restarts), len(tl.reported))
		}
		order = append(order, healed{name, tl.actions[0], tl.reported[0], tl.restarts[0]})
	}
	slices.SortFunc(order, func(a, b healed) int { return a.action.Compare(b.action) })
	for i := 1; i < len(order); i++ {
		// The host's slot is given back just before the outcome is reported.
		if order[i].action.Before(order[i-1].reported.Add(-500 * time.Millisecond)) {
			t.Errorf("%s was restarted %s before %s's restart was reported: two actions at once under --max-concurrent 1",
				order[i].name, order[i-1].reported.Sub(order[i].action).Round(time.Millisecond), order[i-1].name)
		}
	}
	held := 0
	for _, name := range names {
		held += len(s.auditWhere(name, func(e audit.Entry) bool { return e.Decision == "held" }))
	}
	if held == 0 {
		t.Errorf("no request was held: the three were not unhealthy at once")
	}
	first := s.firstFailure(order[0].name)
	var decided, restarted []time.Time
	for _, h := range order {
		decided, restarted = append(decided, h.action), append(restarted, h.start)
	}
	recordLoop(loopRow{"three unhealthy at once, --max-concurrent 1", "one after the other", offsets(decided, first),
		offsets(restarted, first), fmt.Sprintf("all 3 recovered; %d holds looked at again", held)})
}

// after gave up, `hemostat respond reset <name>`: the breaker closes, the backoff clears, and since the
// container still fails, the reconciliation resumes at once.
func TestLoopReset(t *testing.T) {
	s := newLoopScenario(t, "reset")
	s.start()
	b := loopBackoff
	hc := loopProbe
	id, name := s.container(docker.CreateOptions{Health: &hc, Labels: loopLabels("hemostat.max_actions_per_hour", "2"), Cmd: unhealthyApp()})
	s.wait(loopTimeout, "gave up", func() bool { p, _ := s.completeWhere(name, gaveUp); return p != nil })
	tl := s.timeline(id, name)
	checkSchedule(t, "before the reset", tl.actions, s.ready(id, tl, "health_status: unhealthy"), schedule(2, b))
	s.never(b, "a restart after it gave up", func() bool { return len(s.restarts(id)) > 2 })

	reset := exec.Command(binary, "respond", "reset", name, "--redis-url", s.url, "--host-name", s.host)
	resetAt := time.Now()
	if out, err := reset.CombinedOutput(); err != nil {
		t.Fatalf("hemostat respond reset: %v\n%s", err, out)
	}
	s.wait(30*time.Second, "an action after the reset", func() bool { return len(s.ledger(name).Attempts) > 0 })
	after := s.ledger(name).AttemptTimes()[0]
	if d := after.Sub(resetAt); d > gapLate {
		t.Errorf("restart 3 came %s after the reset, want within %s", d.Round(time.Millisecond), gapLate)
	}
	s.wait(restartSlack, "the engine's restart after the reset", func() bool { return len(s.restarts(id)) > 2 })
	if got := s.auditWhere(name, func(e audit.Entry) bool { return e.Decision == "reset" }); len(got) != 1 || !strings.HasPrefix(got[0].Actor, "human:") {
		t.Errorf("reset audit entries %+v, want one by a human", got)
	}
	if got := s.notifications(name, "Gave up on "+name); len(got) != 1 {
		t.Errorf("%d gave-up notifications before the reset's restart, want 1", len(got))
	}
	restarts := s.restarts(id)[:3]
	first := s.firstFailure(name)
	recordLoop(loopRow{"gave up (2 an hour), then respond reset", "0, b, gave up at 3b, reset: at once; b = 6 s",
		offsets(append(tl.actions, after), first), offsets(restarts, first),
		fmt.Sprintf("reset at %s; restart 3 committed %s later", seconds(resetAt.Sub(first)), seconds(after.Sub(resetAt)))})
}

// --watch labeled: a healthy labelled container and an unhealthy unlabelled one are never touched, while a
// labelled one that crashes is healed.
func TestLoopWatchLabeled(t *testing.T) {
	s := newLoopScenario(t, "labeled", "--watch", "labeled")
	s.start()
	// A lenient healthcheck: a probe slowed down by a loaded machine must not make it unhealthy.
	lenient := docker.Healthcheck{Test: probe.Test, Interval: time.Second, Timeout: 5 * time.Second, Retries: 3, StartPeriod: 3 * time.Second}
	healthyID, healthy := s.container(docker.CreateOptions{Health: &lenient, Labels: map[string]string{"hemostat.enable": "true"},
		Cmd: []string{"-health-addr", "127.0.0.1:8080"}})
	hc := loopProbe
	unlabelledID, unlabelled := s.container(docker.CreateOptions{Health: &hc, Cmd: unhealthyApp()})
	_, sentinel := s.container(docker.CreateOptions{Labels: map[string]string{"hemostat.enable": "true"},
		Cmd: []string{"-once", "-exit-code", "3", "-exit-after", "1s"}})
	s.waitComplete(sentinel, remediateTimeout, "the labelled crash healed", isSuccess)
	s.wait(time.Minute, "the unlabelled container unhealthy", func() bool { return s.state(unlabelledID).Health == "unhealthy" })
	s.wait(time.Minute, "the labelled container healthy", func() bool { return s.state(healthyID).Health == "healthy" })
	// A reconcile (every 5 s) would see the unlabelled container unhealthy if it were watched.
	s.never(6*time.Second, "the unlabelled container touched", func() bool {
		return len(s.alerts(unlabelled)) > 0 || len(s.auditEntries(unlabelled)) > 0 || len(s.touched(unlabelledID)) > 0
	})
	for _, c := range []struct{ id, name string }{{healthyID, healthy}, {unlabelledID, unlabelled}} {
		if n := len(s.alerts(c.name)) + len(s.auditEntries(c.name)) + s.allNotifications(c.name); n != 0 {
			t.Errorf("%s: %d alerts, audit entries and notifications, want none", c.name, n)
		}
		if got := s.touched(c.id); len(got) != 0 {
			t.Errorf("%s was touched: %v", c.name, got)
		}
	}
	recordLoop(loopRow{"--watch labeled", "never", "none", "none",
		"the unlabelled unhealthy and the labelled healthy container untouched; the labelled crash healed"})
}

// writeLoopTable writes the restart-times table of the loop scenarios.
func writeLoopTable(w io.Writer) {
	loopMu.Lock()
	defer loopMu.Unlock()
	if len(loopRows) == 0 {
		return
	}
	slices.SortFunc(loopRows, func(a, b loopRow) int { return strings.Compare(a.scenario, b.scenario) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| healing loop scenario\t| schedule\t| restarts decided (ledger)\t| restarted (engine events)\t| ended\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|---\t|")
	for _, r := range loopRows {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t| %s\t|\n", r.scenario, r.want, r.decided, r.restarted, r.ended)
	}
	fmt.Fprintln(w, "\nRestart times are seconds after the container's first failure (Docker's event time); b is the label hemostat.backoff.")
	tw.Flush()
}
