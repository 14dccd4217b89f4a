package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// Keys the exporter reads besides the shared state.
const (
	// KeyMonitorMetrics is the hash the monitor writes its round figures into (round_seconds, rounds_total).
	KeyMonitorMetrics = "hemostat:metrics:monitor"
	// KeyIncidentsOpen is the sorted set of open incidents (member: incident key, score: opened unix ms).
	KeyIncidentsOpen = "hemostat:incidents:open"
)

// GroupState is one consumer group of one stream.
type GroupState struct {
	Stream  string
	Group   string
	Pending int64 // delivered, not acknowledged
	Lag     int64 // not delivered yet; -1 when Redis cannot tell
}

// ExportSnapshot is the state the exporter turns into metrics at each scrape.
type ExportSnapshot struct {
	Containers     map[string]string // "host/name" -> JSON of container.Summary
	Samples        map[string]string // "host/name" -> JSON of container.Sample (only when the stats key lives)
	Agents         []AgentInfo
	StreamLen      map[string]int64 // stream -> entries
	Groups         []GroupState
	DeadLetters    int64
	OpenIncidents  int64
	NotifyCounters map[string]string
	Monitor        map[string]string
}

// ExportRead reads everything the exporter needs in three round trips plus the agents' scan.
// streams lists the work streams whose length and groups are reported.
func (c *Client) ExportRead(ctx context.Context, streams []string) (*ExportSnapshot, error) {
	pipe := c.rdb.Pipeline()
	containers := pipe.HGetAll(ctx, event.KeyContainers)
	lens := make([]*redis.IntCmd, len(streams))
	groups := make([]*redis.XInfoGroupsCmd, len(streams))
	for i, s := range streams {
		lens[i] = pipe.XLen(ctx, s)
		groups[i] = pipe.XInfoGroups(ctx, s)
	}
	dead := pipe.XLen(ctx, event.StreamDeadLetter)
	open := pipe.ZCard(ctx, KeyIncidentsOpen)
	notify := pipe.HGetAll(ctx, KeyNotifyMetrics)
	monitor := pipe.HGetAll(ctx, KeyMonitorMetrics)
	_, err := pipe.Exec(ctx)
	if err != nil && IsUnavailable(err) {
		return nil, fmt.Errorf("read state: %w", err)
	}
	s := &ExportSnapshot{
		Containers: containers.Val(), StreamLen: map[string]int64{}, DeadLetters: dead.Val(),
		OpenIncidents: open.Val(), NotifyCounters: notify.Val(), Monitor: monitor.Val(),
	}
	if err := containers.Err(); err != nil {
		return nil, fmt.Errorf("read containers: %w", err)
	}
	for i, st := range streams {
		s.StreamLen[st] = lens[i].Val()
		gs, err := groups[i].Result()
		if err != nil {
			// A stream that does not exist yet has no groups.
			if strings.Contains(err.Error(), "no such key") || errors.Is(err, redis.Nil) {
				continue
			}
			return nil, fmt.Errorf("read groups of %s: %w", st, err)
		}
		for _, g := range gs {
			s.Groups = append(s.Groups, GroupState{Stream: st, Group: g.Name, Pending: g.Pending, Lag: g.Lag})
		}
	}

	s.Samples = make(map[string]string, len(s.Containers))
	if len(s.Containers) > 0 {
		pipe := c.rdb.Pipeline()
		cmds := make(map[string]*redis.StringCmd, len(s.Containers))
		for target := range s.Containers {
			host, name, _ := strings.Cut(target, "/")
			cmds[target] = pipe.HGet(ctx, event.StatsKey(host, name), "sample")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read samples: %w", err)
		}
		for target, cmd := range cmds {
			if v, err := cmd.Result(); err == nil {
				s.Samples[target] = v
			}
		}
	}

	agents, err := c.Agents(ctx)
	if err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	s.Agents = agents
	return s, nil
}
