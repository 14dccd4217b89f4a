package alert_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hemostat/hemostat/pkg/alert"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// BenchmarkHandle measures the consumer's cost per event against real Redis: store the event, decide,
// read the incident, claim the dedup key, release the other state, enqueue. Half the events are repeats.
func BenchmarkHandle(b *testing.B) {
	url := testenv.RequireRedis(b)
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a := alert.New(alert.Options{}, alert.Stores{Notify: st.Notify, Incidents: st.Incidents}, nil, nil)
	ctx := context.Background()
	envs := make([]event.Envelope, 1000)
	for i := range envs {
		name := fmt.Sprintf("web-%d", i/2)
		env, err := event.New("bench", "node-a", "node-a/"+name+"/crashed", "", &event.RemediationComplete{
			Container: name, Action: "restart", Result: event.Result{Status: "success"}, Verified: true})
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	i := 0
	for b.Loop() {
		env := envs[i%len(envs)]
		env.ID = fmt.Sprintf("%s-%d", env.ID, i) // every event is new to the events lists
		if err := a.Handle(ctx, bus.Message{Envelope: env}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
