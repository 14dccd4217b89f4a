// Package doctor owns `hemostat doctor`: the checks that tell whether hemostat, configured as it is, can
// do its job on this host (Docker, cgroups, Redis, the clock, notification sinks, container labels, the
// watch rules), each with an explanation and a fix. Checks reach the world only through the small
// interfaces below; none writes anything or sends a notification.
package doctor

import (
	"context"
	"time"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/monitor"
)

// Status is the outcome of one check.
type Status string

// Statuses, from best to worst. Only Fail makes the report fail.
const (
	StatusOK   Status = "ok"
	StatusSkip Status = "skip" // could not be checked because an earlier check failed
	StatusWarn Status = "warn" // works, but not as well or as safely as it could
	StatusFail Status = "fail" // hemostat will not work, or will silently do nothing
)

func (s Status) rank() int {
	switch s {
	case StatusSkip:
		return 1
	case StatusWarn:
		return 2
	case StatusFail:
		return 3
	}
	return 0
}

// Result is one check's outcome: what was found, why it matters, and how to fix it.
type Result struct {
	Name    string   `json:"name"`
	Status  Status   `json:"status"`
	Summary string   `json:"summary"`
	Details []string `json:"details,omitempty"`
	Fix     string   `json:"fix,omitempty"`
}

// Report is every check's result, in order.
type Report struct {
	OK     bool           `json:"ok"`
	Counts map[Status]int `json:"counts"`
	Checks []Result       `json:"checks"`
}

// Docker is the engine access the checks need; cmd adapts *docker.Client.
type Docker interface {
	Host() string
	Versions() (api, engine string)
	List(ctx context.Context) ([]docker.Container, error)
	PID(ctx context.Context, id string) (int, error)
	SystemTime(ctx context.Context) (time.Time, error)
}

// Redis is the server access the checks need; *conn.Conn implements it.
type Redis interface {
	ServerInfo(ctx context.Context, section string) (map[string]string, error)
	ServerConfig(ctx context.Context, param string) (map[string]string, error)
	ServerTime(ctx context.Context) (time.Time, error)
}

// Cgroup is the cgroup reader the monitor's sampler would use; *cgroup.Reader implements it.
type Cgroup interface {
	Available() error
	Version() int
	Read(pid int, st *cgroup.Stats) error
}

// Prober checks that a URL's host is reachable without sending a request: DNS, TCP, and TLS for https.
// It returns what it found, in words.
type Prober interface {
	Probe(ctx context.Context, rawURL string) (string, error)
}

// Sinks are the alert agent's notification settings.
type Sinks struct {
	SlackWebhookURL string
	SlackToken      string
	SlackChannel    string
	SlackAPIURL     string
	WebhookURL      string
}

// Options are the configuration under test and the collaborators that reach the world.
type Options struct {
	Docker       func(ctx context.Context) (Docker, error) // connects (and negotiates) or says why not
	Redis        func(ctx context.Context) (Redis, error)
	RedisURL     string // redacted, for messages
	RedisDefault bool   // the URL is the default one: hemostat run would serve an embedded store without it
	RedisMode    string // conn.ModeStandalone or conn.ModeSentinel
	RedisTLS     string // how the connection is encrypted, in words: "off", "on", "on, with a client certificate"
	Cgroup       Cgroup
	Sampler      string // --sampler: auto, cgroup or api
	Watch        monitor.WatchRules
	Sinks        Sinks
	DryRun       bool
	Prober       Prober
	Now          func() time.Time // default time.Now
	ClockWarn    time.Duration    // skew worth a warning, default 1s
	ClockFail    time.Duration    // skew that fails, default 30s
	Timeout      time.Duration    // per check, default 5s
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ClockWarn <= 0 {
		o.ClockWarn = time.Second
	}
	if o.ClockFail <= 0 {
		o.ClockFail = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Sampler == "" {
		o.Sampler = monitor.SamplerAuto
	}
	return o
}

// Run runs every check and returns the report. It never fails itself: a dependency that cannot be
// reached is a failed check, and the checks that need it are skipped with the reason.
func Run(ctx context.Context, o Options) Report {
	o = o.withDefaults()
	r := &run{o: o}
	r.docker(ctx)
	r.cgroup(ctx)
	r.redis(ctx)
	r.clock(ctx)
	r.sinks(ctx)
	r.labels()
	r.watch()
	r.dryRun()
	rep := Report{OK: true, Counts: map[Status]int{}, Checks: r.results}
	for _, res := range r.results {
		rep.Counts[res.Status]++
		if res.Status == StatusFail {
			rep.OK = false
		}
	}
	return rep
}

// run is one doctor run: the connections made so far and the results in order.
type run struct {
	o          Options
	results    []Result
	dk         Docker
	dockerErr  error
	containers []docker.Container
	listErr    error
	rd         Redis
	redisErr   error
}

func (r *run) add(res Result) { r.results = append(r.results, res) }

func (r *run) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.Timeout)
}
