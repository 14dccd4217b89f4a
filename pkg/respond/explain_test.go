package respond

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// everyField returns a config with every field set to a value that is not its default, so a field that
// does not survive the round trip shows.
func everyField(t *testing.T) Config {
	t.Helper()
	var cfg Config
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + v.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(7001 + i)) // durations too: 7001+i ns
		case reflect.Uint64:
			f.SetUint(uint64(9 + i))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"a", v.Type().Field(i).Name}))
		default:
			t.Fatalf("Config.%s is a %s: teach everyField and check that EncodePolicy publishes it", v.Type().Field(i).Name, f.Kind())
		}
	}
	return cfg
}

func TestPolicyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"defaults", Config{Host: "node-a"}.WithDefaults()},
		{"flags", Config{Host: "node-a", DryRun: true, Protected: []string{"db-1", "node-b/vault"}, MaxActionsPerHour: 5,
			BackoffBase: 2 * time.Second, Cooldown: time.Minute, HealthyReset: 90 * time.Second, MaxUnhealthy: 4}.WithDefaults()},
		{"every field", everyField(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePolicy(EncodePolicy(tt.cfg))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.cfg, got); diff != "" {
				t.Errorf("policy after the round trip (-published +read):\n%s", diff)
			}
		})
	}
}

func TestDecodePolicy(t *testing.T) {
	def := Config{}.WithDefaults()
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr bool
	}{
		{name: "empty object: the defaults", in: `{}`, want: def},
		{name: "missing fields take their defaults", in: `{"Host":"node-a","MaxActionsPerHour":5}`,
			want: func() Config { c := def; c.Host, c.MaxActionsPerHour = "node-a", 5; return c }()},
		{name: "fields of a newer responder are ignored", in: `{"Someday":true}`, want: def},
		{name: "not JSON", in: `max=3`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePolicy(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestTargetOf(t *testing.T) {
	s := container.Summary{ID: "abc", Name: "web-1", State: "running", Health: "unhealthy",
		Labels: map[string]string{container.LabelSwarmService: "shop_web"}}
	got := TargetOf(s)
	if !got.Found || got.State.Name != "web-1" || got.State.ID != "abc" || !got.State.Running ||
		got.State.SwarmService != "shop_web" || got.State.Labels[container.LabelSwarmService] != "shop_web" {
		t.Errorf("TargetOf: %+v", got)
	}
	// Scale is allowed for a swarm task as the responder sees it.
	cfg := Config{Actions: []string{event.ActionScale}}.WithDefaults()
	if d, _, stop := CheckAllowed(cfg, Request{Action: event.ActionScale}, got); stop {
		t.Errorf("scale of a swarm task denied: %s", d.Details)
	}
}

func TestProtected(t *testing.T) {
	cfg := Config{Host: "node-a", Protected: []string{"db-1", "node-b/vault", "0123456789ab"}}.WithDefaults()
	tgt := func(name, id string, labels map[string]string) Target {
		return TargetOf(container.Summary{Name: name, ID: id, Labels: labels})
	}
	tests := []struct {
		name string
		cfg  Config
		host string
		t    Target
		want bool
		why  string
	}{
		{"label true", cfg, "node-a", tgt("web-1", "", map[string]string{container.LabelProtected: "true"}), true, "protected: label hemostat.protected=true"},
		{"label 1, as ParseBool reads it", cfg, "node-a", tgt("web-1", "", map[string]string{container.LabelProtected: "1"}), true, "protected: label hemostat.protected=true"},
		{"label TRUE with spaces", cfg, "node-a", tgt("web-1", "", map[string]string{container.LabelProtected: " TRUE "}), true, "protected: label hemostat.protected=true"},
		{"label yes is not a boolean", cfg, "node-a", tgt("web-1", "", map[string]string{container.LabelProtected: "yes"}), false, ""},
		{"label false", cfg, "node-a", tgt("web-1", "", map[string]string{container.LabelProtected: "false"}), false, ""},
		{"self label", cfg, "node-a", tgt("x", "", map[string]string{container.LabelSelf: "true"}), true, "protected: hemostat's own container (label hemostat.self)"},
		{"self label false", cfg, "node-a", tgt("x", "", map[string]string{container.LabelSelf: "false"}), false, ""},
		{"self name prefix", cfg, "node-a", tgt("hemostat-respond", "", nil), true, `protected: hemostat's own container (name prefix "hemostat")`},
		{"a name that merely starts with the prefix", cfg, "node-a", tgt("hemostatic", "", nil), false, ""},
		{"another self prefix", Config{SelfPrefix: "heal"}.WithDefaults(), "node-a", tgt("heal_1", "", nil), true, `protected: hemostat's own container (name prefix "heal")`},
		{"--protected by name", cfg, "node-a", tgt("db-1", "", nil), true, "protected: in the --protected list"},
		{"--protected by host/name", cfg, "node-b", tgt("vault", "", nil), true, "protected: in the --protected list"},
		{"--protected by host/name, other host", cfg, "node-a", tgt("vault", "", nil), false, ""},
		{"--protected by id prefix", cfg, "node-a", tgt("api-1", "0123456789abcdef", nil), true, "protected: in the --protected list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Protected(tt.cfg, tt.host, tt.t)
			if got != tt.want || why != tt.why {
				t.Errorf("Protected = %v, %q; want %v, %q", got, why, tt.want, tt.why)
			}
		})
	}
}

func TestAttemptsWithinAndBackoffReset(t *testing.T) {
	cfg := Config{}.WithDefaults().ForLabels(map[string]string{LabelHealthyReset: "2m"})
	l := schema.Ledger{Attempts: []int64{ms(t0.Add(-70 * time.Minute)), ms(t0.Add(-50 * time.Minute)), ms(t0.Add(-5 * time.Minute))},
		BackoffStep: 2, LastActionMS: ms(t0.Add(-5 * time.Minute))}
	if got, want := AttemptsWithin(t0, cfg, l), []time.Time{t0.Add(-50 * time.Minute), t0.Add(-5 * time.Minute)}; !cmp.Equal(got, want) {
		t.Errorf("AttemptsWithin = %v, want %v", got, want)
	}
	tests := []struct {
		name   string
		modify func(*schema.Ledger)
		want   time.Time
	}{
		{"not verified since the action", func(*schema.Ledger) {}, time.Time{}},
		{"verified: HealthyReset after", func(l *schema.Ledger) { l.HealthySinceMS = ms(t0.Add(-4 * time.Minute)) }, t0.Add(-2 * time.Minute)},
		{"verified before the latest action", func(l *schema.Ledger) { l.HealthySinceMS = ms(t0.Add(-6 * time.Minute)) }, time.Time{}},
		{"backoff at its first step already", func(l *schema.Ledger) {
			l.HealthySinceMS, l.BackoffStep = ms(t0.Add(-4*time.Minute)), 0
		}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := l
			tt.modify(&l)
			if got := BackoffResetAt(cfg, l); !got.Equal(tt.want) {
				t.Errorf("BackoffResetAt = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStanding(t *testing.T) {
	cfg := Config{}.WithDefaults()
	three := []int64{ms(t0.Add(-50 * time.Minute)), ms(t0.Add(-30 * time.Minute)), ms(t0.Add(-10 * time.Minute))}
	tests := []struct {
		name string
		l    schema.Ledger
		want []got
	}{
		{"nothing in the way", schema.Ledger{}, nil},
		{"cooling down", schema.Ledger{BackoffStep: 2, NextAllowedMS: ms(t0.Add(90 * time.Second))},
			[]got{{Step: StepCooldown, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: 90 * time.Second}}},
		{"breaker open and cooling down", schema.Ledger{Attempts: three, Breaker: schema.BreakerOpen, BreakerUntilMS: ms(t0.Add(40 * time.Minute)),
			BackoffStep: 3, NextAllowedMS: ms(t0.Add(time.Minute))},
			[]got{{Step: StepCircuitOpen, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: 40 * time.Minute},
				{Step: StepCooldown, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: time.Minute}}},
		{"the next request opens the breaker", schema.Ledger{Attempts: three, Breaker: schema.BreakerClosed},
			[]got{{Step: StepCircuitOpen, Status: event.StatusEscalated, Decision: DecisionEscalated, RetryAfter: time.Hour, Opened: true}}},
		{"cool-off over: the breaker closes, its attempts are forgotten", schema.Ledger{Attempts: three, Breaker: schema.BreakerOpen,
			BreakerUntilMS: ms(t0.Add(-time.Second))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gots []got
			for _, d := range Standing(t0, cfg, tt.l) {
				gots = append(gots, sum(d))
			}
			if diff := cmp.Diff(tt.want, gots); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestOutlookOf(t *testing.T) {
	cfg := Config{Host: "node-a", Protected: []string{"db-1"}}.WithDefaults()
	web := func(labels map[string]string) Target {
		return TargetOf(container.Summary{ID: "0123456789abcdef0123", Name: "web-1", Host: "node-a", State: "running", Labels: labels})
	}
	incident := func(f func(*schema.Incident)) schema.Incident {
		in := schema.Incident{Key: "node-a/web-1/unhealthy"}
		in.State, in.Host, in.Container, in.Class, in.Condition = schema.StateOpen, "node-a", "web-1", event.ClassUnhealthy, schema.ConditionFailing
		in.OpenedAt, in.Action, in.Method, in.Confidence = t0.Add(-10*time.Minute), event.ActionRestart, "rules", 0.85
		if f != nil {
			f(&in)
		}
		return in
	}
	// One failed attempt 8s ago; the backoff (step 1, 20s) allows the next in 12s.
	failedOnce := func(in *schema.Incident) {
		in.Attempts, in.LastAttemptAt, in.LastOutcome, in.Errors = 1, t0.Add(-8*time.Second), event.StatusFailed, []string{"not healthy within 3s"}
		in.NextAt, in.NextReason = t0.Add(12*time.Second), WaitVerify
	}
	afterOne := schema.Ledger{Attempts: []int64{ms(t0.Add(-8 * time.Second))}, BackoffStep: 1, NextAllowedMS: ms(t0.Add(12 * time.Second)),
		LastAction: event.ActionRestart, LastActionMS: ms(t0.Add(-8 * time.Second))}
	three := schema.Ledger{Attempts: []int64{ms(t0.Add(-50 * time.Minute)), ms(t0.Add(-30 * time.Minute)), ms(t0.Add(-1 * time.Minute))},
		BackoffStep: 3, NextAllowedMS: ms(t0.Add(3 * time.Minute)), LastActionMS: ms(t0.Add(-1 * time.Minute))}

	tests := []struct {
		name string
		cfg  Config
		t    Target
		in   schema.Incident
		l    schema.Ledger
		want Outlook
	}{
		{name: "awaiting analysis", t: web(nil), in: incident(func(in *schema.Incident) { in.Action = "" }),
			want: Outlook{Kind: OutlookAnalysis}},
		{name: "false alarm", t: web(nil), in: incident(func(in *schema.Incident) { in.FalseAlarm, in.Reason = true, "back under the threshold" }),
			want: Outlook{Kind: OutlookFinal, Step: StepNone, Details: "false alarm: back under the threshold"}},
		{name: "escalated: action none", t: web(nil), in: incident(func(in *schema.Incident) { in.Action = event.ActionNone }),
			want: Outlook{Kind: OutlookFinal, Step: StepNone, Details: "no automatic action: escalated to a human"}},
		{name: "gone", t: Target{}, in: incident(nil),
			want: Outlook{Kind: OutlookFinal, Step: StepGone, Details: "gone: container web-1 no longer exists"}},
		{name: "protected by a label, as ParseBool reads it", t: web(map[string]string{container.LabelProtected: "1"}), in: incident(failedOnce), l: afterOne,
			want: Outlook{Kind: OutlookFinal, Step: StepProtected, Details: "protected: label hemostat.protected=true"}},
		{name: "not allowed by the label", t: web(map[string]string{container.LabelActions: "stop"}), in: incident(nil),
			want: Outlook{Kind: OutlookFinal, Step: StepNotAllowed, Details: "action_not_allowed: restart is not in the allowed set [stop]"}},
		{name: "pending: no outcome yet", t: web(nil), in: incident(nil),
			want: Outlook{Kind: OutlookPending}},
		{name: "next attempt after a failed verification", t: web(nil), in: incident(failedOnce), l: afterOne,
			want: Outlook{Kind: OutlookAttempt, At: t0.Add(12 * time.Second), Attempt: 2}},
		{name: "a label raises the breaker's limit", t: web(map[string]string{LabelMaxActionsPerHour: "5"}), in: incident(failedOnce), l: afterOne,
			cfg:  cfg.ForLabels(map[string]string{LabelMaxActionsPerHour: "5"}),
			want: Outlook{Kind: OutlookAttempt, At: t0.Add(12 * time.Second), Attempt: 2, Of: 5}},
		{name: "due in the past: now", t: web(nil), in: incident(func(in *schema.Incident) {
			failedOnce(in)
			in.NextAt = t0.Add(-time.Second)
		}), l: func() schema.Ledger { l := afterOne; l.NextAllowedMS = ms(t0.Add(-time.Second)); return l }(),
			want: Outlook{Kind: OutlookAttempt, At: t0, Attempt: 2}},
		{name: "a retry before the backoff ends waits for the backoff", t: web(nil), in: incident(func(in *schema.Incident) {
			failedOnce(in)
			in.NextAt, in.NextReason = t0.Add(5*time.Second), "retry"
		}), l: afterOne, want: Outlook{Kind: OutlookAttempt, At: t0.Add(12 * time.Second), Attempt: 2}},
		{name: "an attempt leaves the window before the next", t: web(nil), in: incident(func(in *schema.Incident) {
			in.Attempts, in.LastAttemptAt, in.LastOutcome = 3, t0.Add(-time.Minute), event.StatusFailed
			in.NextAt, in.NextReason = t0.Add(3*time.Minute), WaitVerify
		}), l: func() schema.Ledger {
			l := three
			l.Attempts = []int64{ms(t0.Add(-58 * time.Minute)), ms(t0.Add(-30 * time.Minute)), ms(t0.Add(-1 * time.Minute))}
			return l
		}(), want: Outlook{Kind: OutlookAttempt, At: t0.Add(3 * time.Minute), Attempt: 3}},
		{name: "the next look opens the breaker", t: web(nil), in: incident(func(in *schema.Incident) {
			in.Attempts, in.LastAttemptAt, in.LastOutcome = 3, t0.Add(-time.Minute), event.StatusFailed
			in.NextAt, in.NextReason = t0.Add(3*time.Minute), WaitVerify
		}), l: three, want: Outlook{Kind: OutlookGiveUp, At: t0.Add(3 * time.Minute), Attempt: 3,
			Details: "circuit_open: breaker opened after 3 actions within 1h0m0s; closed again in 1h0m0s or by `hemostat respond reset`"}},
		{name: "gave up: until the breaker's end", t: web(nil), in: incident(func(in *schema.Incident) {
			in.Attempts, in.GaveUpAt, in.BreakerUntil, in.LastOutcome, in.LastDetails = 3, t0.Add(-2*time.Minute), t0.Add(58*time.Minute), event.StatusEscalated, "circuit_open: breaker opened"
			in.NextAt, in.NextReason = t0.Add(58*time.Minute), "circuit_open: breaker opened"
		}), l: func() schema.Ledger {
			l := three
			l.Breaker, l.BreakerUntilMS = schema.BreakerOpen, ms(t0.Add(58*time.Minute))
			return l
		}(), want: Outlook{Kind: OutlookGaveUp, At: t0.Add(58 * time.Minute), Since: t0.Add(-2 * time.Minute), Attempt: 3, Details: "circuit_open: breaker opened"}},
		{name: "held by the blast radius", t: web(nil), in: incident(func(in *schema.Incident) {
			in.LastOutcome, in.NextAt, in.NextReason = event.StatusHeld, t0.Add(5*time.Second), "blast_radius: 2 actions already running on the host (max 2)"
		}), want: Outlook{Kind: OutlookHeld, At: t0.Add(5 * time.Second), Details: "2 actions already running on the host (max 2)"}},
		{name: "busy", t: web(nil), in: incident(func(in *schema.Incident) {
			in.LastOutcome, in.NextAt, in.NextReason = event.StatusSkipped, t0.Add(9*time.Second), "busy: another responder is acting on the container"
		}), want: Outlook{Kind: OutlookBusy, At: t0.Add(9 * time.Second), Details: "another responder is acting on the container"}},
		{name: "an open breaker not of this incident: the first attempt after its end", t: web(nil), in: incident(func(in *schema.Incident) {
			in.LastOutcome, in.NextAt, in.NextReason = event.StatusDenied, t0.Add(40*time.Minute), "circuit_open: breaker open until ..."
		}), l: func() schema.Ledger {
			l := three
			l.Breaker, l.BreakerUntilMS = schema.BreakerOpen, ms(t0.Add(40*time.Minute))
			return l
		}(), want: Outlook{Kind: OutlookAttempt, At: t0.Add(40 * time.Minute), Attempt: 1}},
		{name: "verified: nothing scheduled", t: web(nil), in: incident(func(in *schema.Incident) {
			in.Attempts, in.LastAttemptAt, in.LastOutcome = 1, t0.Add(-time.Minute), event.StatusSuccess
		}), want: Outlook{Kind: OutlookVerified, Since: t0.Add(-time.Minute), Attempt: 1}},
		{name: "relapsed after a verified restart: due now", t: web(nil), in: incident(func(in *schema.Incident) {
			in.Attempts, in.LastAttemptAt, in.LastOutcome = 1, t0.Add(-8*time.Second), event.StatusSuccess
			in.Relapses, in.RelapsedAt, in.RelapseAfter = 1, t0.Add(-4*time.Second), 4*time.Second
		}), l: afterOne, want: Outlook{Kind: OutlookAttempt, At: t0.Add(12 * time.Second), Attempt: 2, Relapse: "relapsed 4s after restart 1"}},
		{name: "healthy, waiting out the hysteresis", t: web(nil), in: incident(func(in *schema.Incident) {
			in.Attempts, in.LastAttemptAt, in.LastOutcome = 1, t0.Add(-time.Minute), event.StatusSuccess
			in.Condition, in.ConditionSince = schema.ConditionClear, t0.Add(-50*time.Second)
		}), want: Outlook{Kind: OutlookRecovering, Since: t0.Add(-50 * time.Second), Attempt: 1}},
		{name: "a final outcome recorded", t: web(nil), in: incident(func(in *schema.Incident) {
			in.LastOutcome, in.LastDetails = event.StatusDenied, "action_not_allowed: exec needs commands declared in the hemostat.exec label"
		}), want: Outlook{Kind: OutlookFinal, Step: StepNotAllowed, Details: "action_not_allowed: exec needs commands declared in the hemostat.exec label"}},
		{name: "simulated: on the shadow ledger", t: web(map[string]string{container.LabelMode: container.ModeSuggest}), in: incident(func(in *schema.Incident) {
			in.Attempts, in.LastOutcome, in.NextAt, in.NextReason = 1, event.StatusDryRun, t0.Add(12*time.Second), WaitDryRun
		}), l: afterOne, want: Outlook{Kind: OutlookAttempt, At: t0.Add(12 * time.Second), Attempt: 2, Simulated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			if c.Host == "" {
				c = cfg
			}
			want := tt.want
			want.Window = c.BreakerWindow
			if want.Of == 0 {
				want.Of = c.MaxActionsPerHour
			}
			got := OutlookOf(t0, c, tt.t, tt.in, tt.l)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestOutlookAgreesWithDecide: an attempt the outlook announces is one the decision sequence takes at that
// time and refuses just before it.
func TestOutlookAgreesWithDecide(t *testing.T) {
	cfg := Config{Host: "node-a"}.WithDefaults().ForLabels(map[string]string{LabelBackoff: "20s"})
	tgt := TargetOf(container.Summary{ID: "0123456789abcdef0123", Name: "web-1", Host: "node-a", State: "running"})
	l := schema.Ledger{}
	in := schema.Incident{Key: "node-a/web-1/unhealthy"}
	in.State, in.Host, in.Container, in.Class, in.Condition, in.Action = schema.StateOpen, "node-a", "web-1", event.ClassUnhealthy, schema.ConditionFailing, event.ActionRestart
	now := t0
	for attempt := 1; attempt <= 3; attempt++ {
		in.NextAt, in.NextReason = now, WaitVerify
		o := OutlookOf(now, cfg, tgt, in, l)
		if o.Kind != OutlookAttempt || o.Attempt != attempt {
			t.Fatalf("attempt %d: outlook %+v", attempt, o)
		}
		req := followUpRequest("node-a", in, o.At)
		if d := Decide(o.At.Add(-time.Millisecond), cfg, req, tgt, Snapshot{Ledger: l}, false); d.Acts() && o.At.After(now) {
			t.Errorf("attempt %d: Decide acts before the announced %s", attempt, o.At)
		}
		d := Decide(o.At, cfg, req, tgt, Snapshot{Ledger: l}, false)
		if !d.Acts() {
			t.Fatalf("attempt %d: announced at %s, yet Decide says %s", attempt, o.At, d.Details)
		}
		l = Plan(o.At, cfg, req, tgt, l, d)
		in.Attempts, in.LastAttemptAt, in.LastOutcome = attempt, o.At, event.StatusFailed
		now = o.At.Add(time.Second) // looked at again at once: the backoff decides when
	}
	in.NextAt = now
	if o := OutlookOf(now, cfg, tgt, in, l); o.Kind != OutlookGiveUp || o.Attempt != 3 {
		t.Errorf("after 3 attempts: %+v, want the breaker to open", o)
	}
}
