package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// IncidentClosedTTL is how long a closed incident's hash is kept.
const IncidentClosedTTL = 7 * 24 * time.Hour

// Incident is the monitor's part of an incident hash (hemostat:incident:<key>).
type Incident struct {
	Key         string // host/name/class
	State       string // open or closed
	Class       string
	Host        string
	Container   string
	ContainerID string
	Severity    string
	AlertID     string // event id of the latest health_alert
	OpenedAt    time.Time
	LastAlertAt time.Time
	ClosedAt    time.Time
	CloseReason string
}

const incidentTimeLayout = time.RFC3339Nano

func fmtIncidentTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(incidentTimeLayout)
}

// OpenIncident starts a fresh hash for an opened incident (a previous opening of the same key, closed,
// is replaced with its analysis fields) and adds it to hemostat:incidents:open, in one transaction. It is
// called before the alert is published, so writing the same opening again is harmless.
func (c *Client) OpenIncident(ctx context.Context, in Incident) error {
	key := event.IncidentHashKey(in.Key)
	pipe := c.rdb.TxPipeline()
	pipe.Del(ctx, key)
	pipe.HSet(ctx, key, "state", "open", "class", in.Class, "host", in.Host, "container", in.Container,
		"container_id", in.ContainerID, "opened_at", fmtIncidentTime(in.OpenedAt), "alert_id", in.AlertID,
		"severity", in.Severity, "last_alert_at", fmtIncidentTime(in.LastAlertAt), "closed_at", "")
	pipe.ZAdd(ctx, KeyIncidentsOpen, redis.Z{Score: float64(in.OpenedAt.UnixMilli()), Member: in.Key})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("open incident %s: %w", in.Key, err)
	}
	return nil
}

// RealertIncident records a repeated alert of an open incident.
func (c *Client) RealertIncident(ctx context.Context, incident, alertID string, at time.Time) error {
	err := c.rdb.HSet(ctx, event.IncidentHashKey(incident), "alert_id", alertID, "last_alert_at", fmtIncidentTime(at)).Err()
	if err != nil {
		return fmt.Errorf("realert incident %s: %w", incident, err)
	}
	return nil
}

// CloseIncident marks an incident closed, expires its hash after IncidentClosedTTL and removes it from
// hemostat:incidents:open, in one transaction.
func (c *Client) CloseIncident(ctx context.Context, incident string, at time.Time, reason string) error {
	key := event.IncidentHashKey(incident)
	pipe := c.rdb.TxPipeline()
	pipe.HSet(ctx, key, "state", "closed", "closed_at", fmtIncidentTime(at), "close_reason", reason)
	pipe.Expire(ctx, key, IncidentClosedTTL)
	pipe.ZRem(ctx, KeyIncidentsOpen, incident)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("close incident %s: %w", incident, err)
	}
	return nil
}

// OpenIncidents returns the open incidents of one host (all hosts when host is empty), so a restarted
// monitor resumes them instead of alerting again.
func (c *Client) OpenIncidents(ctx context.Context, host string) ([]Incident, error) {
	keys, err := c.rdb.ZRange(ctx, KeyIncidentsOpen, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	var mine []string
	for _, k := range keys {
		if host == "" || strings.HasPrefix(k, host+"/") {
			mine = append(mine, k)
		}
	}
	if len(mine) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(mine))
	for i, k := range mine {
		cmds[i] = pipe.HGetAll(ctx, event.IncidentHashKey(k))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	out := make([]Incident, 0, len(mine))
	for i, k := range mine {
		h := cmds[i].Val()
		if h["state"] != "open" {
			continue
		}
		in := Incident{Key: k, State: "open", Class: h["class"], Host: h["host"], Container: h["container"],
			ContainerID: h["container_id"], Severity: h["severity"], AlertID: h["alert_id"]}
		in.OpenedAt, _ = time.Parse(incidentTimeLayout, h["opened_at"])
		in.LastAlertAt, _ = time.Parse(incidentTimeLayout, h["last_alert_at"])
		if in.LastAlertAt.IsZero() {
			in.LastAlertAt = in.OpenedAt
		}
		out = append(out, in)
	}
	return out, nil
}

// WriteContainers replaces one host's fields of hemostat:containers ("host/name" -> JSON summary):
// fields given are set, the host's other fields are deleted.
func (c *Client) WriteContainers(ctx context.Context, host string, summaries map[string][]byte) error {
	fields, err := c.rdb.HKeys(ctx, event.KeyContainers).Result()
	if err != nil {
		return fmt.Errorf("write containers: %w", err)
	}
	pipe := c.rdb.Pipeline()
	var stale []string
	for _, f := range fields {
		if strings.HasPrefix(f, host+"/") {
			if _, ok := summaries[f]; !ok {
				stale = append(stale, f)
			}
		}
	}
	if len(stale) > 0 {
		pipe.HDel(ctx, event.KeyContainers, stale...)
	}
	if len(summaries) > 0 {
		vals := make([]any, 0, 2*len(summaries))
		for f, v := range summaries {
			vals = append(vals, f, v)
		}
		pipe.HSet(ctx, event.KeyContainers, vals...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write containers: %w", err)
	}
	return nil
}

// StatsEntry is one container's latest sample and history, for hemostat:stats:{host/name}.
type StatsEntry struct {
	Host, Name string
	Sample     []byte // JSON of container.Sample
	History    []byte // JSON of container.History
}

// WriteStats writes the latest samples in one round trip; each key expires after ttl.
func (c *Client) WriteStats(ctx context.Context, entries []StatsEntry, ttl time.Duration) error {
	if len(entries) == 0 {
		return nil
	}
	pipe := c.rdb.Pipeline()
	for _, e := range entries {
		key := event.StatsKey(e.Host, e.Name)
		pipe.HSet(ctx, key, "sample", e.Sample, "history", e.History)
		pipe.PExpire(ctx, key, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

// WriteMonitorMetrics sets fields of hemostat:metrics:monitor (round_seconds, rounds_total, sampler, ...).
func (c *Client) WriteMonitorMetrics(ctx context.Context, fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	vals := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		vals = append(vals, k, v)
	}
	if err := c.rdb.HSet(ctx, KeyMonitorMetrics, vals...).Err(); err != nil {
		return fmt.Errorf("write monitor metrics: %w", err)
	}
	return nil
}
