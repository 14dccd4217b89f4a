package respond_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// FuzzRespondRequest gives the responder's real handler (Process, on the in-memory store and the fake
// engine) anyone's bytes from the remediation_needed stream, twice. Whatever they say, it never panics and
// never fails on input; it never touches a protected container, hemostat's own, or a container of another
// host; it acts at most once per request id; and it runs no command the container did not declare.
func FuzzRespondRequest(f *testing.F) {
	seed := func(name, action string, mod func(*event.RemediationNeeded)) {
		p := &event.RemediationNeeded{Container: name, Action: action, Reason: "r", Confidence: 0.9, AnalysisMethod: "rules",
			Class: event.ClassCrashed}
		if mod != nil {
			mod(p)
		}
		env, _ := event.New("analyze", host, event.IncidentKey(host, name, event.ClassCrashed), "alert-1", p)
		b, _ := json.Marshal(env)
		f.Add(b)
	}
	seed("web-1", event.ActionRestart, nil)
	seed("web-1", event.ActionExec, func(p *event.RemediationNeeded) { p.Command = []string{"sh", "-c", "rm -rf /"} })
	seed("web-1", event.ActionExec, nil)
	seed("db-1", event.ActionStop, nil)
	seed("hemostat-monitor", event.ActionRestart, nil)
	seed("web-1", event.ActionScale, nil)
	seed("gone", event.ActionCleanup, nil)
	seed("web-1\x1b[2J", event.ActionNone, func(p *event.RemediationNeeded) { p.ProposedAction = event.ActionStop })
	f.Add([]byte(`{"id":"1","host":"node-b","event_type":"remediation_needed","data":{"container":"web-1","action":"restart"}}`))

	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := event.Decode(raw)
		if err != nil {
			return
		}
		r, rec, fake := fuzzRig()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 2 { // the second is a replay of the same bytes
			if _, err := r.Process(ctx, env); err != nil {
				t.Fatalf("Process() = %v: input must never fail the handler", err)
			}
		}
		writes := rec.Writes()
		if len(writes) > 1 {
			t.Fatalf("%d engine writes for one request id: %+v", len(writes), writes)
		}
		for _, w := range writes {
			if env.Host != host {
				t.Fatalf("acted on a request for host %q: %+v", env.Host, w)
			}
			st, _ := fake.ContainerState(ctx, w.Ref)
			if st.Name == "db-1" || st.Name == "hemostat-monitor" {
				t.Fatalf("touched %s: %+v", st.Name, w)
			}
			if w.Op == "exec" && !slices.Equal(w.Args, fuzzDeclared) {
				t.Fatalf("ran an undeclared command %q", w.Args)
			}
		}
	})
}

var fuzzDeclared = []string{"/bin/healthfix", "--soft"}

// fuzzRig is a responder on the in-memory store and a fake engine with an unprotected container that
// declares one command, a protected one and one of hemostat's own.
func fuzzRig() (*respond.Responder, *respondtest.Recorder, *respondtest.Fake) {
	mem := respondtest.NewMemStore()
	fake := respondtest.NewFake(
		web("web-1", map[string]string{"hemostat.exec": `["/bin/healthfix","--soft"]`}),
		web("db-1", map[string]string{"hemostat.protected": "true"}),
		web("hemostat-monitor", nil),
	)
	rec := &respondtest.Recorder{Inner: fake}
	cfg := respond.Config{Host: host, StableFor: time.Millisecond, PollInterval: time.Millisecond,
		SettleDefault: 20 * time.Millisecond, SettleMax: 20 * time.Millisecond, ActionTimeout: time.Second}
	mem.SetHost(schema.HostStatus{Host: host, Watched: 10})
	r := respond.New(cfg, rec, respond.Stores{Ledger: mem.Ledger(), Incidents: mem, Hosts: mem}, mem, mem,
		respond.Options{Instance: "fuzz"})
	return r, rec, fake
}

// The rig acts on what it should, so the fuzz properties can fail.
func TestFuzzRigActs(t *testing.T) {
	for _, tt := range []struct {
		action string
		want   []string // op and args
	}{
		{event.ActionRestart, []string{"restart"}},
		{event.ActionExec, append([]string{"exec"}, fuzzDeclared...)},
	} {
		r, rec, _ := fuzzRig()
		if _, err := r.Process(context.Background(), request(t, "web-1", tt.action)); err != nil {
			t.Fatal(err)
		}
		w := rec.Writes()
		if len(w) != 1 || !slices.Equal(append([]string{w[0].Op}, w[0].Args...)[:len(tt.want)], tt.want) {
			t.Errorf("%s: writes %+v, want %v", tt.action, w, tt.want)
		}
	}
}
