// Package monitor is hemostat's detection agent: it keeps a table of the host's containers from the
// engine's event stream (reconciled with a full list at start, after every reconnect and periodically),
// samples the running ones with a bounded worker pool, decides the seven failure classes of the
// README's Detection table, and publishes edge-triggered health alerts and recoveries on the bus, writing
// the container table, the latest samples and the incident state to Redis for the views.
//
// Detection. crashed, oom_killed, crash_loop and unhealthy are decided on the event path, as each event
// arrives, without waiting for a round or an inspect (Docker's event time travels in the alert as
// event_time). A die within --kill-window after a stop or kill event is deliberate and opens nothing; a
// die right after an oom event belongs to the oom_killed incident, and so does a die by SIGKILL whose oom
// event comes up to 2 s after it (Docker does not always report them in order; such a die without an oom
// event is reported as crashed, with its own time, once the 2 s are over). Three unrequested dies within five
// minutes open crash_loop, which closes the container's crashed and oom_killed incidents (its alert
// carries escalation=true); while it is open, further crashes and OOM kills open nothing new.
// cpu_saturated and memory_pressure need --consecutive samples over the threshold; memory_leak needs a
// steady (R² >= 0.8) upward trend of at least 1 MiB that reaches the limit within --leak-horizon.
//
// Alerts are edge-triggered: one health_alert when an incident opens; while it stays open, another only
// after --realert-interval (escalation=true). An incident clears, with one container_recovered, when its
// condition has stayed clear for --recovery-hysteresis:
//
//   - crashed, oom_killed: the container is running again (and not unhealthy) since its last failure;
//   - crash_loop: running, and fewer than three unrequested dies within the last five minutes;
//   - unhealthy: running and healthy (or running without a healthcheck any more);
//   - cpu_saturated, memory_pressure: running and the latest samples are at or below the threshold;
//   - memory_leak: running and the trend no longer predicts the limit within the horizon.
//
// An incident closes without a recovery when its container is removed, when a client stopped the
// container, or (resource classes) when the container is no longer running.
//
// Incident state lives in Redis (hemostat:incident:<key>, hemostat:incidents:open): a restarted monitor
// resumes the open incidents instead of alerting again, and the reconcile at start reports exits and
// unhealthy containers it missed while it was down (exits up to --catch-up old; 137 and 143 without events
// are taken for deliberate stops).
package monitor

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/container"
)

// Options configure a monitor. Zero values take the defaults in brackets.
type Options struct {
	Host              string        // this Docker host's name in incident keys
	Interval          time.Duration // sampling period [10s]
	ReconcileInterval time.Duration // full list period [15s]
	Workers           int           // concurrent samples [8]
	// APIWorkers is the concurrency when sampling through the stats API [128]: such a call mostly waits
	// for the daemon's one-second collector tick (engines before 24.0.7), so a round takes about
	// ceil(N / APIWorkers) seconds.
	APIWorkers      int
	Watch           WatchRules
	CPUThreshold    float64       // percent of the CPU limit [85]
	MemoryThreshold float64       // percent of the memory limit [80]
	Consecutive     int           // samples over a threshold before an incident [3]
	LeakHorizon     time.Duration // memory_leak when the limit is predicted within this [30m]
	LeakMinSamples  int           // fewest working-set samples for the trend [10]
	Hysteresis      time.Duration // a condition must stay clear this long before recovery [30s]
	RealertInterval time.Duration // an open incident alerts again after this [30m]
	KillWindow      time.Duration // a die this soon after a stop or kill is deliberate [60s]
	CatchUp         time.Duration // a reconcile reports exits at most this old [1h]
	Buffer          int           // notices kept while Redis is away [1000]
	SamplerName     string        // recorded in the metrics hash
	Output          io.Writer     // one line per incident state change; nil for none
	Format          string        // text or jsonl [text]
	Logger          *slog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, 10*time.Second)
	def(&o.ReconcileInterval, 15*time.Second)
	def(&o.LeakHorizon, 30*time.Minute)
	def(&o.Hysteresis, 30*time.Second)
	def(&o.RealertInterval, 30*time.Minute)
	def(&o.KillWindow, 60*time.Second)
	def(&o.CatchUp, time.Hour)
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.APIWorkers <= 0 {
		o.APIWorkers = 128
	}
	if o.CPUThreshold <= 0 {
		o.CPUThreshold = 85
	}
	if o.MemoryThreshold <= 0 {
		o.MemoryThreshold = 80
	}
	if o.Consecutive <= 0 {
		o.Consecutive = 3
	}
	if o.LeakMinSamples <= 0 {
		o.LeakMinSamples = 10
	}
	if o.Buffer <= 0 {
		o.Buffer = 1000
	}
	if o.Watch.Mode == "" {
		o.Watch.Mode = WatchAll
	}
	if o.Format == "" {
		o.Format = FormatText
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Detection settings without a flag (see the package comment).
const (
	leakMinR2     = 0.8     // a memory trend this steady or more is a leak
	leakMinGrowth = 1 << 20 // bytes: a smaller growth is no leak
	leakWindow    = 60      // working-set samples the trend is fitted on
	oomWindow     = 5 * time.Second
	loopWindow    = 5 * time.Minute // crash_loop: loopCount unrequested dies within this
	loopCount     = 3
	historyLen    = 60 // samples kept per container for the views
)

func (o Options) engineConfig() engineConfig {
	return engineConfig{
		Host: o.Host, Watch: o.Watch, CPUThreshold: o.CPUThreshold, MemoryThreshold: o.MemoryThreshold,
		K:          o.Consecutive,
		Leak:       LeakParams{MinSamples: o.LeakMinSamples, Horizon: o.LeakHorizon, MinR2: leakMinR2, MinGrowth: leakMinGrowth},
		LeakWindow: leakWindow, KillWindow: o.KillWindow, OOMWindow: oomWindow, LoopWindow: loopWindow,
		LoopCount: loopCount, Hysteresis: o.Hysteresis, Realert: o.RealertInterval, CatchUp: o.CatchUp,
		HostCores: runtime.NumCPU(), HistoryLen: historyLen,
	}
}

// Counters are the monitor's running totals, readable while it runs.
type Counters struct {
	Events       atomic.Int64 // container events handled
	Duplicates   atomic.Int64 // replayed events skipped
	Reconnects   atomic.Int64 // event stream reconnections
	Reconciles   atomic.Int64 // full lists reconciled
	Rounds       atomic.Int64 // sampling rounds completed
	RoundsSkip   atomic.Int64 // rounds skipped because the previous one was still running
	SampleErrors atomic.Int64
	Notices      atomic.Int64 // incident state changes
	Published    atomic.Int64 // notices delivered to Redis
	LastRoundNS  atomic.Int64
}

// Monitor is one host's detection agent.
type Monitor struct {
	o       Options
	rt      Runtime
	sampler Sampler
	st      Stores
	pub     Publisher
	// Counters are updated while Run runs.
	Counters Counters
	q        *queue
}

// New returns a monitor over its collaborators: the engine, a sampler, the Redis state and the bus.
func New(o Options, rt Runtime, s Sampler, st Stores, pub Publisher) *Monitor {
	o.defaults()
	return &Monitor{o: o, rt: rt, sampler: s, st: st, pub: pub, q: newQueue(o.Buffer)}
}

// Buffered reports the notices waiting for Redis and how many were dropped because the buffer was full.
func (m *Monitor) Buffered() (buffered int, dropped int64) { return m.q.stats() }

// SampleResult is one container's outcome in a round.
type SampleResult struct {
	Ref    ContainerRef
	Sample container.Sample
	Err    error
}

// Run watches until ctx is done. It returns nil on a clean stop; Docker and Redis outages are waited out.
// The work is done by a loop (loop.go): one goroutine that owns the engine, and workers for the I/O.
func (m *Monitor) Run(ctx context.Context) error {
	eng := newEngine(m.o.engineConfig())
	m.loadIncidents(ctx, eng)
	return newLoop(m, eng).run(ctx)
}

// How long a starting monitor tries to resume the open incidents while Redis is away.
const (
	loadTimeout  = 10 * time.Second // in all, then it starts without them
	loadTryLimit = 3 * time.Second  // per attempt
	loadRetryMin = 200 * time.Millisecond
	loadRetryMax = 2 * time.Second
)

// loadIncidents resumes the open incidents of this host, retrying briefly while Redis is away.
func (m *Monitor) loadIncidents(ctx context.Context, eng *engine) {
	bo := agent.Backoff{Min: loadRetryMin, Max: loadRetryMax}
	deadline := time.Now().Add(loadTimeout)
	for {
		c, cancel := context.WithTimeout(ctx, loadTryLimit)
		list, err := m.st.Incidents.OpenIncidents(c, m.o.Host)
		cancel()
		if err == nil {
			eng.load(list)
			if len(list) > 0 {
				m.o.Logger.Info("resumed open incidents", "count", len(list))
			}
			return
		}
		if ctx.Err() != nil {
			return // stopped while starting: Run returns at once
		}
		if time.Now().After(deadline) {
			m.o.Logger.Warn("open incidents not loaded; a restart may alert again", "err", err)
			return
		}
		agent.Sleep(ctx, bo.Next())
	}
}

// SampleRound samples refs with at most workers calls at once, each bounded by timeout; the results are
// in the order of refs.
func SampleRound(ctx context.Context, s Sampler, refs []ContainerRef, workers int, timeout time.Duration) []SampleResult {
	out := make([]SampleResult, len(refs))
	if len(refs) == 0 {
		return out
	}
	workers = max(1, min(workers, len(refs)))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { // exits when every ref is taken
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(refs) {
					return
				}
				c, cancel := context.WithTimeout(ctx, timeout)
				smp, err := s.Sample(c, refs[i])
				cancel()
				out[i] = SampleResult{Ref: refs[i], Sample: smp, Err: err}
			}
		}()
	}
	wg.Wait()
	return out
}
