package monitor

import (
	"strconv"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
)

// BenchmarkEngineCrashEvent measures the engine's share of the event path: a die event of a watched
// container decided and turned into a health_alert envelope (no I/O).
//
//	go test -run '^$' -bench BenchmarkEngineCrashEvent ./pkg/monitor/
func BenchmarkEngineCrashEvent(b *testing.B) {
	g := newEngine(testConfig())
	at := t0
	i := 0
	for b.Loop() {
		id := "c" + strconv.Itoa(i%1000)
		name := "web-" + strconv.Itoa(i%1000)
		at = at.Add(time.Millisecond)
		e := docker.Event{ID: id, Name: name, Action: "die", ExitCode: 3, Time: at, TimeNano: at.UnixNano(),
			Attributes: map[string]string{"name": name}}
		g.onEvent(e, at)
		if i%1000 == 999 {
			g.incidents = map[string]*incident{} // keep opening new incidents
		}
		i++
	}
}
