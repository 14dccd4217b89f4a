package monitor

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
)

// FuzzEngine drives the monitor's engine with what the Docker engine and the containers control: event
// actions, names, exit codes, health statuses, labels (thresholds, modes) and samples, in any order. Whatever
// comes in, the engine does not panic, and every alert it would publish is a valid envelope that decodes
// back to itself.
func FuzzEngine(f *testing.F) {
	f.Add([]byte{0, 1, 1, 3, 2, 0, 5, 9}, "web", "90", "3")
	f.Add([]byte{0, 0, 4, 0, 4, 1, 4, 2, 6, 0}, "db\x1b[2J", "abc", "137")
	f.Add([]byte{0, 2, 3, 2, 7, 2, 6, 2}, "", "-5", "")
	f.Fuzz(func(t *testing.T, prog []byte, name, threshold, exit string) {
		g := newEngine(testConfig())
		g.cfg.Watch = WatchRules{Mode: WatchAll}
		now := t0
		ids := []string{"c0", "c1", "c2"}
		labels := map[string]string{"hemostat.cpu_threshold": threshold, "hemostat.memory_threshold": threshold,
			"hemostat.mode": name, "com.docker.compose.service": name}
		check := func(ns []Notice) {
			for _, n := range ns {
				if n.Envelope == nil {
					continue
				}
				b, err := json.Marshal(n.Envelope)
				if err != nil {
					t.Fatalf("encode %+v: %v", n.Envelope, err)
				}
				back, err := event.Decode(b)
				if err != nil {
					t.Fatalf("the engine would publish an envelope that does not decode: %v\n%s", err, b)
				}
				if _, err := back.Payload(); err != nil {
					t.Fatalf("the engine would publish an invalid payload: %v\n%s", err, b)
				}
			}
		}
		for i := 0; i+1 < len(prog); i += 2 {
			op, arg := prog[i]%8, prog[i+1]
			id := ids[int(arg)%len(ids)]
			now = now.Add(time.Duration(arg) * 100 * time.Millisecond)
			e := docker.Event{ID: id, Name: name + strconv.Itoa(int(arg)%3), Image: "img", Time: now, TimeNano: now.UnixNano(),
				ExitCode: -1, Attributes: map[string]string{"name": name, "exitCode": exit}}
			for k, v := range labels {
				e.Attributes[k] = v
			}
			switch op {
			case 0:
				e.Action = "start"
			case 1:
				e.Action = "die"
				if n, err := strconv.Atoi(exit); err == nil {
					e.ExitCode = n
				}
			case 2:
				e.Action, e.Health = "health_status: unhealthy", "unhealthy"
			case 3:
				e.Action, e.Health = "health_status: healthy", "healthy"
			case 4:
				e.Action = "oom"
			case 5:
				e.Action, e.Signal = "kill", exit
			case 6:
				check(g.onSample(id, container.Sample{Time: now, Source: "cgroup", Metrics: event.Metrics{
					CPUPercent: float64(arg), MemoryPercent: math.Mod(float64(arg)*7, 120), MemoryUsage: uint64(arg) << 20,
					MemoryLimit: 256 << 20}}, now))
				continue
			case 7:
				check(g.onTick(now))
				continue
			}
			check(g.onEvent(e, now))
			if op == 0 {
				check(g.onDetails(docker.Details{ID: id, Name: e.Name, Image: "img", State: "running", StartedAt: now,
					Labels: labels}, g.byID[id].seqOr(0), false, now))
			}
		}
	})
}
