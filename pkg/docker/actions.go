package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
)

// ErrNotApplicable is returned by an action that does not apply to the target, such as scaling a
// container that is not part of a swarm service or cleaning up after one that is not a compose replica.
var ErrNotApplicable = errors.New("not applicable")

// Compose and swarm labels the remediation actions read.
const (
	labelComposeProject = "com.docker.compose.project"
	labelComposeService = "com.docker.compose.service"
	labelSwarmService   = "com.docker.swarm.service.name"
)

// TargetState is what the responder needs to know about a container before and after it acts.
type TargetState struct {
	ID             string
	Name           string // without the leading slash
	Image          string
	Status         string // created, running, restarting, paused, exited, dead
	Running        bool
	Health         string       // healthy, unhealthy, starting, or "" without a healthcheck
	HealthConfig   *Healthcheck // nil without a healthcheck
	ExitCode       int
	RestartCount   int
	RestartPolicy  string // no, always, unless-stopped, on-failure ("" is no)
	StartedAt      time.Time
	Labels         map[string]string
	ComposeProject string
	ComposeService string
	SwarmService   string
	Env            []string // KEY=VALUE, for redacting exec output
}

// ContainerState inspects a container by id or name. A missing container is ErrNotFound.
func (c *Client) ContainerState(ctx context.Context, ref string) (TargetState, error) {
	info, err := c.api.ContainerInspect(ctx, ref)
	if err != nil {
		return TargetState{}, classify("inspect "+ref, err)
	}
	s := TargetState{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/"), Image: info.Image}
	if info.Config != nil {
		s.Image = info.Config.Image
		s.Labels = info.Config.Labels
		s.Env = info.Config.Env
		s.HealthConfig = healthcheckOf(info.Config.Healthcheck)
	}
	if st := info.State; st != nil {
		s.Status = st.Status
		s.Running = st.Running
		s.ExitCode = st.ExitCode
		if st.Health != nil {
			s.Health = st.Health.Status
		}
		if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && t.Year() > 1 {
			s.StartedAt = t
		}
	}
	s.RestartCount = info.RestartCount
	if info.HostConfig != nil {
		s.RestartPolicy = string(info.HostConfig.RestartPolicy.Name)
	}
	s.ComposeProject = s.Labels[labelComposeProject]
	s.ComposeService = s.Labels[labelComposeService]
	s.SwarmService = s.Labels[labelSwarmService]
	return s, nil
}

// RestartContainer stops a container (SIGKILL after timeout) and starts it again; a stopped container is
// just started.
func (c *Client) RestartContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Seconds())
	return classify("restart "+id, c.api.ContainerRestart(ctx, id, container.StopOptions{Timeout: &secs}))
}

// ExecResult is the outcome of a command run inside a container.
type ExecResult struct {
	ExitCode  int
	Output    string // stdout then stderr, truncated
	Truncated bool
}

// ExecCommand runs cmd inside a running container without a shell (the argv is passed as is) and waits for
// it, up to the context's deadline. Output beyond maxOutput bytes is dropped (default 4 KiB).
func (c *Client) ExecCommand(ctx context.Context, id string, cmd []string, maxOutput int) (ExecResult, error) {
	if len(cmd) == 0 {
		return ExecResult{}, fmt.Errorf("exec in %s: empty command", id)
	}
	if maxOutput <= 0 {
		maxOutput = 4096
	}
	created, err := c.api.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return ExecResult{}, classify("exec in "+id, err)
	}
	att, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, classify("exec attach "+id, err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, func() { att.Close() }) // unblocks the copy when the deadline passes
	defer stop()
	out := &capped{max: maxOutput}
	if _, err := stdcopy.StdCopy(out, out, att.Reader); err != nil && ctx.Err() == nil {
		return ExecResult{}, fmt.Errorf("exec output %s: %w", id, err)
	}
	if ctx.Err() != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	var ins container.ExecInspect
	for {
		ins, err = c.api.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return ExecResult{}, classify("exec inspect "+id, err)
		}
		if !ins.Running {
			break
		}
		select {
		case <-ctx.Done():
			return ExecResult{}, fmt.Errorf("exec in %s: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return ExecResult{ExitCode: ins.ExitCode, Output: out.buf.String(), Truncated: out.dropped}, nil
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped bool
}

func (w *capped) Write(p []byte) (int, error) {
	room := w.max - w.buf.Len()
	if room < len(p) {
		w.dropped = true
		if room > 0 {
			w.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return w.buf.Write(p)
}

var _ io.Writer = (*capped)(nil)

// ScaleResult says how a swarm service was scaled.
type ScaleResult struct {
	Service string
	From    uint64
	To      uint64
}

// ScaleService adds one replica to a replicated swarm service, up to maxReplicas. Outside a swarm, or for a
// service that is not replicated, it returns ErrNotApplicable; at the cap it returns ErrConflict.
func (c *Client) ScaleService(ctx context.Context, service string, maxReplicas uint64) (ScaleResult, error) {
	if service == "" {
		return ScaleResult{}, fmt.Errorf("scale: %w: the container is not part of a swarm service", ErrNotApplicable)
	}
	svc, _, err := c.api.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{})
	if err != nil {
		if isNotSwarm(err) {
			return ScaleResult{}, fmt.Errorf("scale %s: %w: this engine is not a swarm manager", service, ErrNotApplicable)
		}
		return ScaleResult{}, classify("scale "+service, err)
	}
	rep := svc.Spec.Mode.Replicated
	if rep == nil || rep.Replicas == nil {
		return ScaleResult{}, fmt.Errorf("scale %s: %w: the service is not replicated", service, ErrNotApplicable)
	}
	res := ScaleResult{Service: service, From: *rep.Replicas}
	if res.From >= maxReplicas {
		return res, fmt.Errorf("scale %s: %w: already at %d replicas (max %d)", service, ErrConflict, res.From, maxReplicas)
	}
	res.To = res.From + 1
	spec := svc.Spec
	spec.Mode.Replicated.Replicas = &res.To
	if _, err := c.api.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		return res, classify("scale "+service, err)
	}
	return res, nil
}

func isNotSwarm(err error) bool {
	s := err.Error()
	return strings.Contains(s, "not a swarm manager") || strings.Contains(s, "swarm mode") ||
		strings.Contains(s, "This node is not")
}

// CleanupReplicas removes the exited replicas of the target's own compose service (same project, same
// service, never the target itself) with their anonymous volumes, and returns the removed ids. Named
// volumes, images, networks and every other container are left alone. A target without compose labels is
// ErrNotApplicable.
func (c *Client) CleanupReplicas(ctx context.Context, id string) ([]string, error) {
	t, err := c.ContainerState(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.ComposeProject == "" || t.ComposeService == "" {
		return nil, fmt.Errorf("cleanup %s: %w: not a compose service replica", t.Name, ErrNotApplicable)
	}
	f := filters.NewArgs(
		filters.Arg("label", labelComposeProject+"="+t.ComposeProject),
		filters.Arg("label", labelComposeService+"="+t.ComposeService),
		filters.Arg("status", "exited"),
	)
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, classify("cleanup list", err)
	}
	var removed []string
	for _, s := range list {
		// Double-check what the filter promised: same project and service, exited, not the target.
		if s.ID == t.ID || s.State != "exited" || s.Labels[labelComposeProject] != t.ComposeProject ||
			s.Labels[labelComposeService] != t.ComposeService {
			continue
		}
		err := c.api.ContainerRemove(ctx, s.ID, container.RemoveOptions{RemoveVolumes: true})
		if err != nil && !isNotFound(classify("", err)) {
			return removed, classify("cleanup remove "+s.ID, err)
		}
		removed = append(removed, s.ID)
	}
	return removed, nil
}

// healthcheckOf is the container's healthcheck, nil when it has none (or it is disabled with NONE).
func healthcheckOf(hc *container.HealthConfig) *Healthcheck {
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return nil
	}
	return &Healthcheck{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout, StartPeriod: hc.StartPeriod, Retries: hc.Retries}
}
