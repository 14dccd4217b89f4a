package cmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/hemostat/hemostat/pkg/analyze"
	"github.com/hemostat/hemostat/pkg/docker"
)

// dockerInspector gives the analyzer's LLM context (inspect summary, log tail) from the local engine.
type dockerInspector struct{ c *docker.Client }

// Inspect implements analyze.Inspector.
func (i dockerInspector) Inspect(ctx context.Context, id string) (analyze.InspectSummary, error) {
	d, err := i.c.Inspect(ctx, id)
	if err != nil {
		return analyze.InspectSummary{}, err
	}
	policy := d.RestartPolicy
	if policy == "on-failure" && d.MaxRetries > 0 {
		policy = fmt.Sprintf("on-failure:%d", d.MaxRetries)
	}
	s := analyze.InspectSummary{
		Image: d.Image, Status: d.State, ExitCode: d.ExitCode, OOMKilled: d.OOMKilled, Error: d.Error,
		RestartCount: d.RestartCount, RestartPolicy: policy, MemoryLimitBytes: d.MemoryLimit, CPULimit: d.CPULimit(),
		HealthStatus: d.Health, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt, Labels: d.Labels, Env: d.Env,
	}
	if hc := d.Healthcheck; hc != nil {
		s.Healthcheck = fmt.Sprintf("%s every %s, timeout %s, %d retries, start period %s",
			strings.Join(hc.Test, " "), hc.Interval, hc.Timeout, hc.Retries, hc.StartPeriod)
	}
	return s, nil
}

// Logs implements analyze.Inspector.
func (i dockerInspector) Logs(ctx context.Context, id string, lines int) ([]string, error) {
	ls, err := i.c.Logs(ctx, id, lines)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ls))
	for j, l := range ls {
		out[j] = l.Stream + ": " + l.Text
	}
	return out, nil
}

// analyzeInspector connects to the local engine when the LLM is on; without Docker the LLM simply gets
// no inspect summary or logs (the rules need neither).
func analyzeInspector(ctx context.Context, d *Deps, llmOn bool) analyze.Inspector {
	if !llmOn {
		return nil
	}
	c, err := d.Docker(ctx)
	if err != nil {
		d.Logger.Warn("no Docker engine: the LLM gets no inspect summary or logs", "err", err)
		return nil
	}
	return dockerInspector{c}
}
