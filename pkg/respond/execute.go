package respond

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Result is the outcome of an executed action.
type Result struct {
	Status   string // success or failed
	Details  string
	Error    string
	Verified bool
}

// StopTimeout is the stop grace of a container: its hemostat.stop_timeout label (a duration or seconds),
// else the configured default.
func StopTimeout(cfg Config, labels map[string]string) time.Duration {
	v := strings.TrimSpace(labels[container.LabelStopTimeout])
	if v == "" {
		return cfg.StopTimeout
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	return cfg.StopTimeout
}

// SettleWindow is how long verification waits for a container to be running and healthy: derived from its
// healthcheck (start period + interval x (retries + 1) + timeout, Docker's defaults for zero values), capped
// by SettleMax; SettleDefault without a healthcheck.
func SettleWindow(cfg Config, hc *docker.Healthcheck) time.Duration {
	if hc == nil {
		return cfg.SettleDefault
	}
	interval, timeout, retries := hc.Interval, hc.Timeout, hc.Retries
	if interval <= 0 {
		interval = 30 * time.Second
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if retries <= 0 {
		retries = 3
	}
	w := hc.StartPeriod + interval*time.Duration(retries+1) + timeout
	return min(w, cfg.SettleMax)
}

// act performs the decided action on the engine and verifies it. The lease is renewed meanwhile.
func (r *Responder) act(ctx context.Context, req Request, tgt Target, keys schema.LedgerKeys, d Decision, token string) Result {
	stop := r.keepLease(ctx, keys, token)
	defer stop()
	id := tgt.State.ID
	grace := StopTimeout(r.cfg, tgt.State.Labels)
	actx, cancel := context.WithTimeout(ctx, r.cfg.ActionTimeout+grace)
	defer cancel()
	r.stats.Acted.Add(1)
	fail := func(what string, err error) Result {
		code := "failed"
		if errors.Is(err, docker.ErrNotApplicable) {
			code = "not_applicable"
		}
		return Result{Status: event.StatusFailed, Details: code + ": " + what, Error: err.Error()}
	}
	switch req.Action {
	case event.ActionRestart:
		if err := r.rt.RestartContainer(actx, id, grace); err != nil {
			return fail("restart", err)
		}
	case event.ActionStart:
		if err := r.rt.StartContainer(actx, id); err != nil {
			return fail("start", err)
		}
	case event.ActionStop:
		if err := r.rt.StopContainer(actx, id, grace); err != nil {
			return fail("stop", err)
		}
	case event.ActionExec:
		ectx, ecancel := context.WithTimeout(ctx, r.cfg.ExecTimeout)
		defer ecancel()
		res, err := r.rt.ExecCommand(ectx, id, d.Command, r.cfg.ExecOutputMax)
		if err != nil {
			return fail("exec "+strings.Join(d.Command, " "), err)
		}
		out := redact.New(tgt.State.Env).String(res.Output)
		if res.Truncated {
			out += " [truncated]"
		}
		details := fmt.Sprintf("exec %s: exit %d: %s", strings.Join(d.Command, " "), res.ExitCode, strings.TrimSpace(out))
		if res.ExitCode != 0 {
			return Result{Status: event.StatusFailed, Details: details, Error: fmt.Sprintf("exit code %d", res.ExitCode)}
		}
		return Result{Status: event.StatusSuccess, Details: details, Verified: true}
	case event.ActionScale:
		res, err := r.rt.ScaleService(actx, tgt.State.SwarmService, r.cfg.MaxReplicas)
		if err != nil {
			return fail("scale "+tgt.State.SwarmService, err)
		}
		return Result{Status: event.StatusSuccess, Verified: true,
			Details: fmt.Sprintf("scaled %s from %d to %d replicas", res.Service, res.From, res.To)}
	case event.ActionCleanup:
		ids, err := r.rt.CleanupReplicas(actx, id)
		if err != nil {
			return fail("cleanup", err)
		}
		short := make([]string, len(ids))
		for i, s := range ids {
			short[i] = s[:min(12, len(s))]
		}
		return Result{Status: event.StatusSuccess, Verified: true,
			Details: fmt.Sprintf("removed %d exited replicas of %s/%s %v", len(ids), tgt.State.ComposeProject, tgt.State.ComposeService, short)}
	default:
		return Result{Status: event.StatusFailed, Details: "failed: unknown action", Error: "unknown action " + req.Action}
	}
	var prev time.Time
	if req.Action == event.ActionRestart {
		prev = tgt.State.StartedAt // a restart must produce a new start; a start of a running container need not
	}
	return r.verify(ctx, req.Action, tgt, prev)
}

// verify waits, within the settle window, for the state the action should have produced: stopped after
// stop; after start and restart running (started after prevStarted, when known), healthy when the container
// has a healthcheck, and otherwise still running with the same start time after StableFor. A health still
// "starting" when the window ends is waited for, up to SettleMax: that is no verdict yet.
func (r *Responder) verify(ctx context.Context, action string, tgt Target, prevStarted time.Time) Result {
	id := tgt.State.ID
	switch action {
	case event.ActionStop:
		deadline := r.now().Add(r.cfg.SettleDefault)
		for {
			st, err := r.rt.ContainerState(ctx, id)
			if err == nil && !st.Running {
				return Result{Status: event.StatusSuccess, Verified: true, Details: "stopped (" + st.Status + ")"}
			}
			if r.now().After(deadline) || ctx.Err() != nil {
				return Result{Status: event.StatusFailed, Details: "failed: verification: still running", Error: "still running after stop"}
			}
			agent.Sleep(ctx, r.cfg.PollInterval)
		}
	case event.ActionRestart, event.ActionStart:
	default:
		return Result{Status: event.StatusSuccess, Verified: true}
	}
	hc := tgt.State.HealthConfig
	window := SettleWindow(r.cfg, hc)
	if hc == nil {
		window += r.cfg.StableFor
	}
	began := r.now()
	deadline := began.Add(window)
	// Docker's verdict may still be pending when the window ends: probes slowed down by a loaded machine
	// leave the health "starting" past the healthcheck's own timings. hemostat then waits for the verdict,
	// up to SettleMax, instead of calling a start that has not been judged yet a failure.
	pendingUntil := began.Add(max(window, r.cfg.SettleMax))
	waited := false // past the window for a pending verdict
	var stableSince time.Time
	var stableStart time.Time
	last := "not inspected"
	for {
		st, err := r.rt.ContainerState(ctx, id)
		now := r.now()
		pending := false
		switch {
		case err != nil:
			last = err.Error()
			stableSince = time.Time{}
		case !st.Running:
			last = fmt.Sprintf("%s (exit code %d)", st.Status, st.ExitCode)
			stableSince = time.Time{}
			if diedAgain(st, prevStarted) {
				// It started and died again, and no restart policy will bring it back: waiting out the
				// settle window would only delay the failure.
				return Result{Status: event.StatusFailed, Details: "failed: verification: exited again after the restart: " + last,
					Error: "verification failed: " + last}
			}
		case !prevStarted.IsZero() && !st.StartedAt.After(prevStarted):
			last = "not restarted yet"
		case hc != nil:
			last = "running, health " + st.Health
			pending = st.Health == "starting"
			if st.Health == "healthy" {
				return Result{Status: event.StatusSuccess, Verified: true, Details: fmt.Sprintf("%sed; running and healthy", action)}
			}
		default:
			if stableSince.IsZero() || !st.StartedAt.Equal(stableStart) {
				stableSince, stableStart = now, st.StartedAt
			}
			last = "running"
			if now.Sub(stableSince) >= r.cfg.StableFor {
				return Result{Status: event.StatusSuccess, Verified: true,
					Details: fmt.Sprintf("%sed; running for %s", action, r.cfg.StableFor)}
			}
		}
		if now.After(deadline) || ctx.Err() != nil {
			if pending && !now.After(pendingUntil) && ctx.Err() == nil {
				waited = true
				agent.Sleep(ctx, r.cfg.PollInterval)
				continue
			}
			if waited || pending {
				window = now.Sub(began).Round(time.Second)
			}
			return Result{Status: event.StatusFailed, Details: fmt.Sprintf("failed: verification: not running and healthy within %s: %s", window, last),
				Error: "verification failed: " + last}
		}
		agent.Sleep(ctx, r.cfg.PollInterval)
	}
}

// diedAgain reports a container that was started after prevStarted, is down again, and has no restart
// policy that would start it once more.
func diedAgain(st docker.TargetState, prevStarted time.Time) bool {
	if prevStarted.IsZero() || !st.StartedAt.After(prevStarted) {
		return false
	}
	if st.Status != "exited" && st.Status != "dead" {
		return false
	}
	return st.RestartPolicy == "" || st.RestartPolicy == "no"
}
