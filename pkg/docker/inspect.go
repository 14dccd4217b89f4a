package docker

import (
	"context"
	"strings"
	"time"
)

// Details is one container as inspect shows it, in hemostat's terms.
type Details struct {
	ID            string
	Name          string // without the leading slash
	Image         string // the image reference the container was created from
	State         string // created, running, restarting, paused, exited, removing, dead
	ExitCode      int
	OOMKilled     bool
	Error         string
	RestartCount  int
	Health        string // healthy, unhealthy, starting, or "" without a healthcheck
	FailingStreak int
	Healthcheck   *Healthcheck // nil without a healthcheck
	NanoCPUs      int64
	CPUQuota      int64
	CPUPeriod     int64
	MemoryLimit   int64
	Labels        map[string]string
	Env           []string
	RestartPolicy string
	MaxRetries    int
	Created       time.Time
	StartedAt     time.Time
	FinishedAt    time.Time
	Pid           int
}

// CPULimit is the container's CPU limit in cores, 0 when it has none.
func (d Details) CPULimit() float64 {
	switch {
	case d.NanoCPUs > 0:
		return float64(d.NanoCPUs) / 1e9
	case d.CPUQuota > 0 && d.CPUPeriod > 0:
		return float64(d.CPUQuota) / float64(d.CPUPeriod)
	case d.CPUQuota > 0:
		return float64(d.CPUQuota) / 100000 // the kernel's default period
	}
	return 0
}

// Inspect returns a container's details; an unknown container is an ErrNotFound error.
func (c *Client) Inspect(ctx context.Context, id string) (Details, error) {
	r, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return Details{}, classify("inspect "+id, err)
	}
	d := Details{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), RestartCount: r.RestartCount}
	d.Created = parseTime(r.Created)
	if r.Config != nil {
		d.Image = r.Config.Image
		d.Labels = r.Config.Labels
		d.Env = r.Config.Env
		d.Healthcheck = healthcheckOf(r.Config.Healthcheck)
	}
	if d.Image == "" {
		d.Image = r.Image
	}
	if s := r.State; s != nil {
		d.State = string(s.Status)
		d.ExitCode = s.ExitCode
		d.OOMKilled = s.OOMKilled
		d.Error = s.Error
		d.Pid = s.Pid
		d.StartedAt = parseTime(s.StartedAt)
		d.FinishedAt = parseTime(s.FinishedAt)
		if s.Health != nil {
			d.Health = string(s.Health.Status)
			d.FailingStreak = s.Health.FailingStreak
		}
	}
	if hc := r.HostConfig; hc != nil {
		d.NanoCPUs = hc.NanoCPUs
		d.CPUQuota = hc.CPUQuota
		d.CPUPeriod = hc.CPUPeriod
		d.MemoryLimit = hc.Memory
		d.RestartPolicy = string(hc.RestartPolicy.Name)
		d.MaxRetries = hc.RestartPolicy.MaximumRetryCount
	}
	return d, nil
}

// parseTime reads Docker's RFC 3339 times; Docker's zero time ("0001-01-01T00:00:00Z") becomes the zero Time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t.UTC()
}
