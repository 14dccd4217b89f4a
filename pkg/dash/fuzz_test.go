package dash

import (
	"context"
	"regexp"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/hemostat/hemostat/pkg/bus"
)

// FuzzDashEvent gives the dash anyone's bytes as an entry of a stream, through the source's decoder and the
// model's commands, and renders the events view and the entry's JSON. It never panics, and nothing from the
// entry reaches the terminal as a control: the only escape sequences on screen are the dash's own styles.
func FuzzDashEvent(f *testing.F) {
	f.Add([]byte(`{"id":"1","agent":"monitor","host":"node-a","event_type":"container_unhealthy","incident":"node-a/web/crashed","data":{"container_name":"web","class":"crashed"}}`))
	f.Add([]byte(`{"agent":"m\u001b[2J","host":"\u202eh","event_type":"container_unhealthy","data":{"container_name":"\u001b]0;x\u0007"}}`))
	f.Add([]byte("\x1b[31mnot json\xff"))
	f.Add([]byte(`{"data":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + `}`))
	ours := regexp.MustCompile("\x1b\\[[0-9;]*m")
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev := decodeEvent(bus.Entry{Stream: "hemostat:events:health_alert", ID: "1-0", Raw: raw})
		events := make(chan EventBatch, 1)
		events <- EventBatch{Events: []Event{ev}, Backfill: true}
		o := testOptions()
		o.Color = false
		m := send(New(context.Background(), &fakeSource{}, events, o), tea.WindowSizeMsg{Width: 100, Height: 30})
		m = send(m, m.waitEvents()())
		for _, k := range [][]string{{"tab"}, {"enter"}} {
			m = keys(m, k...)
			s := ours.ReplaceAllString(m.Render(), "")
			if strings.ContainsAny(s, "\x1b\x07\u009b\u202e\u2066") {
				t.Fatalf("the screen carries a control from the entry:\n%q", s)
			}
		}
	})
}
