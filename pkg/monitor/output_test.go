package monitor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
)

func TestFormatNotice(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 123e6, time.UTC)
	opened := Notice{Kind: NoticeOpened, Time: at, Incident: "h/web/crashed", Class: "crashed", Severity: "critical",
		Host: "h", Container: "web", OpenedAt: at, EventTime: at.Add(-4 * time.Millisecond),
		Alert: &event.ContainerUnhealthy{Anomalies: []event.Anomaly{{Type: "exit_code", Actual: 3}}}}
	cleared := Notice{Kind: NoticeCleared, Time: at.Add(90 * time.Second), Incident: "h/web/crashed", Class: "crashed",
		Severity: "critical", Host: "h", Container: "web", OpenedAt: at, Reason: "condition clear for 30s"}
	for _, tc := range []struct {
		name string
		n    Notice
		want string
	}{
		{"opened", opened, "2026-11-28T12:00:00.123Z  opened    critical crashed         h/web exit_code=3 detected_in=4ms\n"},
		{"cleared", cleared, "2026-11-28T12:01:30.123Z  cleared   critical crashed         h/web open_for=1m30s reason=\"condition clear for 30s\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := FormatNotice(tc.n, FormatText)
			if err != nil || string(b) != tc.want {
				t.Errorf("got %q (%v), want %q", b, err, tc.want)
			}
		})
	}
	b, err := FormatNotice(opened, FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["action"] != "opened" || m["incident"] != "h/web/crashed" || b[len(b)-1] != '\n' {
		t.Errorf("jsonl %s: %v", b, err)
	}
}

func TestQueueDropsOldest(t *testing.T) {
	q := newQueue(2)
	for _, k := range []string{"a", "b", "c"} {
		q.push(Notice{Incident: k})
	}
	n, dropped := q.stats()
	head, _ := q.peek()
	if n != 2 || dropped != 1 || head.n.Incident != "b" {
		t.Errorf("len %d dropped %d head %q", n, dropped, head.n.Incident)
	}
	q.push(Notice{Incident: "d"}) // drops b while it is being delivered
	q.done(head.seq)              // must not remove c
	if h, _ := q.peek(); h.n.Incident != "c" {
		t.Errorf("head after a stale done: %q, want c", h.n.Incident)
	}
}
