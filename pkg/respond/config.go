package respond

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
)

// Runtime is the engine access the responder needs; *docker.Client implements it. Only the write calls
// (restart, stop, start, exec, scale, cleanup) change anything: a dry-run makes none of them.
type Runtime interface {
	ContainerState(ctx context.Context, ref string) (docker.TargetState, error)
	RestartContainer(ctx context.Context, id string, timeout time.Duration) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	StartContainer(ctx context.Context, id string) error
	ExecCommand(ctx context.Context, id string, cmd []string, maxOutput int) (docker.ExecResult, error)
	ScaleService(ctx context.Context, service string, maxReplicas uint64) (docker.ScaleResult, error)
	CleanupReplicas(ctx context.Context, id string) ([]string, error)
}

var _ Runtime = (*docker.Client)(nil)

// Config is the responder's policy. Zero fields take the defaults of docs/architecture.md (remediation).
type Config struct {
	Host       string   // this Docker host: only its requests are acted on
	DryRun     bool     // simulate every request against the shadow ledger
	Protected  []string // container names, host/name targets or id prefixes (12+ chars) never touched
	SelfPrefix string   // names of hemostat's own containers, default "hemostat"
	Actions    []string // allowed actions without a hemostat.actions label, default restart,stop,start

	MaxUnhealthy        int           // hold automatic action above this many unhealthy containers; 0: percent of watched
	MaxUnhealthyPercent int           // default 50 (at least 3 containers)
	MaxConcurrent       int           // actions running at once per host, default 2
	HoldPeriod          time.Duration // one page per blast-radius hold period, default 10m

	MaxActionsPerHour int           // breaker opens after this many actions within BreakerWindow, default 3
	BreakerWindow     time.Duration // default 1h
	BreakerCooloff    time.Duration // default 1h

	BackoffBase  time.Duration // first gap between actions, default 30s, doubling
	Cooldown     time.Duration // cap of the gap, default 1h
	HealthyReset time.Duration // healthy this long after an action: the backoff starts again, default 10m

	DoneTTL time.Duration // how long handled request ids are remembered, default 24h
	// MaxRequestAge turns on replay protection (hemostat sets it with --signing-key): a request older than
	// this, or one already handled that comes again in a new stream entry, is refused, dead-lettered and
	// counted, never acted on. It must be shorter than DoneTTL, so every replay meets one of the two.
	// 0: off.
	MaxRequestAge time.Duration
	LeaseTTL      time.Duration // lease and host slot lifetime, renewed while acting, default 15s

	StopTimeout   time.Duration // restart/stop grace without a hemostat.stop_timeout label, default 10s
	MaxReplicas   uint64        // scale cap, default 5
	ExecTimeout   time.Duration // default 30s
	ExecOutputMax int           // bytes of exec output kept, default 4096
	ActionTimeout time.Duration // engine call deadline (plus the stop timeout), default 60s

	AuditMaxEntries int64         // the audit trail keeps at most this many entries, default 200,000 (0: no cap)
	AuditMaxAge     time.Duration // and none older than this, default 90 days (0: no limit)
	RetentionEvery  time.Duration // how often the trail is trimmed, default 1h

	HoldRetry    time.Duration // look again at a request held by the blast radius after this, default 5s
	FollowupPoll time.Duration // longest wait between reads of the follow-up schedule, default 1s
	FollowupHold time.Duration // a taken follow-up comes back after this if its taker dies, default 1m

	SettleDefault time.Duration // wait for running without a healthcheck, default 30s
	SettleMax     time.Duration // cap of the settle window derived from a healthcheck, default 3m
	StableFor     time.Duration // without a healthcheck: must stay running this long, default 3s
	PollInterval  time.Duration // verification poll, default 250ms
}

// DefaultWorkers is the number of consumers a responder runs when Options.Workers is zero.
const DefaultWorkers = 4

// DefaultActions is the allowed set of a container without a hemostat.actions label.
var DefaultActions = []string{event.ActionRestart, event.ActionStop, event.ActionStart}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.SelfPrefix == "" {
		c.SelfPrefix = "hemostat"
	}
	if len(c.Actions) == 0 {
		c.Actions = DefaultActions
	}
	if c.MaxUnhealthyPercent <= 0 {
		c.MaxUnhealthyPercent = 50
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 2
	}
	if c.MaxActionsPerHour <= 0 {
		c.MaxActionsPerHour = 3
	}
	if c.MaxReplicas == 0 {
		c.MaxReplicas = 5
	}
	if c.ExecOutputMax <= 0 {
		c.ExecOutputMax = 4096
	}
	def(&c.HoldPeriod, 10*time.Minute)
	def(&c.BreakerWindow, time.Hour)
	def(&c.BreakerCooloff, time.Hour)
	def(&c.BackoffBase, 30*time.Second)
	def(&c.Cooldown, time.Hour)
	def(&c.HealthyReset, 10*time.Minute)
	def(&c.DoneTTL, 24*time.Hour)
	def(&c.LeaseTTL, 15*time.Second)
	def(&c.StopTimeout, 10*time.Second)
	def(&c.ExecTimeout, 30*time.Second)
	def(&c.ActionTimeout, 60*time.Second)
	if c.AuditMaxEntries == 0 {
		c.AuditMaxEntries = DefaultAuditMaxEntries
	}
	if c.AuditMaxAge == 0 { // negative: no limit
		c.AuditMaxAge = DefaultAuditMaxAge
	}
	def(&c.RetentionEvery, time.Hour)
	def(&c.HoldRetry, 5*time.Second)
	def(&c.FollowupPoll, time.Second)
	def(&c.FollowupHold, time.Minute)
	def(&c.SettleDefault, 30*time.Second)
	def(&c.SettleMax, 3*time.Minute)
	def(&c.StableFor, 3*time.Second)
	def(&c.PollInterval, 250*time.Millisecond)
	return c
}

// Per-container labels that tune the policy of one container (values as for the flags).
const (
	LabelMaxActionsPerHour = "hemostat.max_actions_per_hour"
	LabelBackoff           = "hemostat.backoff"
	LabelCooldown          = "hemostat.cooldown"
	LabelBreakerCooloff    = "hemostat.breaker_cooloff"
	LabelHealthyReset      = "hemostat.healthy_reset"
)

// ForLabels returns the policy for one container: the config with its hemostat.* tuning labels applied.
// Unreadable or out-of-range values are ignored (the config's value stays).
func (c Config) ForLabels(labels map[string]string) Config {
	dur := func(label string, dst *time.Duration) {
		if v, ok := labels[label]; ok {
			if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil && d > 0 {
				*dst = d
			}
		}
	}
	if v, ok := labels[LabelMaxActionsPerHour]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			c.MaxActionsPerHour = n
		}
	}
	dur(LabelBackoff, &c.BackoffBase)
	dur(LabelCooldown, &c.Cooldown)
	dur(LabelBreakerCooloff, &c.BreakerCooloff)
	dur(LabelHealthyReset, &c.HealthyReset)
	if c.Cooldown < c.BackoffBase {
		c.Cooldown = c.BackoffBase
	}
	return c
}
