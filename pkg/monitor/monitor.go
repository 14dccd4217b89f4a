// Package monitor is hemostat's detection agent: it keeps a table of the host's containers from the
// engine's event stream (reconciled with a full list at start, after every reconnect and periodically),
// samples the running ones with a bounded worker pool, decides the seven failure classes of ARCHITECTURE
// section 4, and publishes edge-triggered health alerts and recoveries on the bus, writing the container
// table, the latest samples and the incident state to Redis for the views.
//
// Detection. crashed, oom_killed, crash_loop and unhealthy are decided on the event path, as each event
// arrives, without waiting for a round or an inspect (Docker's event time travels in the alert as
// event_time). A die within --kill-window after a stop or kill event is deliberate and opens nothing; a
// die right after an oom event belongs to the oom_killed incident. Three unrequested dies within five
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
	"errors"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/schema"
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

func (o Options) engineConfig() engineConfig {
	return engineConfig{
		Host: o.Host, Watch: o.Watch, CPUThreshold: o.CPUThreshold, MemoryThreshold: o.MemoryThreshold,
		K:          o.Consecutive,
		Leak:       LeakParams{MinSamples: o.LeakMinSamples, Horizon: o.LeakHorizon, MinR2: 0.8, MinGrowth: 1 << 20},
		LeakWindow: 60, KillWindow: o.KillWindow, OOMWindow: 5 * time.Second, LoopWindow: 5 * time.Minute,
		LoopCount: 3, Hysteresis: o.Hysteresis, Realert: o.RealertInterval, CatchUp: o.CatchUp,
		HostCores: runtime.NumCPU(), HistoryLen: 60,
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

type inspectJob struct {
	id      string
	seq     int
	catchUp bool
}

type inspectResult struct {
	job inspectJob
	d   docker.Details
	err error
}

type listResult struct {
	list []docker.Container
	at   time.Time
	err  error
}

// SampleResult is one container's outcome in a round.
type SampleResult struct {
	Ref    ContainerRef
	Sample container.Sample
	Err    error
}

type roundResult struct {
	results []SampleResult
	took    time.Duration
}

// Run watches until ctx is done. It returns nil on a clean stop; Docker and Redis outages are waited out.
func (m *Monitor) Run(ctx context.Context) error {
	o := m.o
	log := o.Logger
	eng := newEngine(o.engineConfig())
	m.loadIncidents(ctx, eng)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	goFn := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	evCh := make(chan docker.Event, 1024)
	connCh := make(chan struct{}, 1)
	inspReq := make(chan inspectJob, 1024)
	inspRes := make(chan inspectResult, 1024)
	listReq := make(chan struct{}, 1)
	listRes := make(chan listResult, 1)
	roundReq := make(chan []ContainerRef, 1)
	roundRes := make(chan roundResult, 1)

	pr := newPrinter(o.Output, o.Format)
	printerDone := make(chan struct{})
	var prWG sync.WaitGroup
	prWG.Add(1)
	go func() { defer prWG.Done(); pr.run(printerDone) }() // exits when printerDone closes, after Run's goroutines
	defer func() { close(printerDone); prWG.Wait() }()

	pub := &publisher{st: m.st.Incidents, pub: m.pub, q: m.q, log: log, published: func() { m.Counters.Published.Add(1) }}
	goFn(func() { pub.run(ctx) }) // exits at ctx done, after a short flush
	wr := &writer{st: m.st.State, host: o.Host, in: make(chan snapshot, 1), log: log}
	goFn(func() { wr.run(ctx) }) // exits at ctx done
	goFn(func() { m.watchEvents(ctx, evCh, connCh) })
	for range 4 {
		goFn(func() { // inspect worker: exits at ctx done
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-inspReq:
					c, cl := context.WithTimeout(ctx, 10*time.Second)
					d, err := m.rt.Inspect(c, j.id)
					cl()
					select {
					case inspRes <- inspectResult{job: j, d: d, err: err}:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}
	goFn(func() { // lister: exits at ctx done
		for {
			select {
			case <-ctx.Done():
				return
			case <-listReq:
				at := time.Now()
				c, cl := context.WithTimeout(ctx, 30*time.Second)
				list, err := m.rt.List(c)
				cl()
				select {
				case listRes <- listResult{list: list, at: at, err: err}:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	goFn(func() { // sampler: one round at a time; exits at ctx done
		timeout := max(o.Interval, 5*time.Second)
		for {
			select {
			case <-ctx.Done():
				return
			case refs := <-roundReq:
				start := time.Now()
				workers := o.Workers
				if usesAPI(m.sampler) {
					workers = max(o.Workers, o.APIWorkers)
				}
				res := SampleRound(ctx, m.sampler, refs, workers, timeout)
				if p, ok := m.sampler.(pruner); ok {
					live := make(map[int]bool, len(refs))
					for _, r := range refs {
						live[r.Pid] = true
					}
					p.Prune(func(pid int) bool { return live[pid] })
				}
				select {
				case roundRes <- roundResult{results: res, took: time.Since(start)}:
				case <-ctx.Done():
					return
				}
			}
		}
	})

	handle := func(ns []Notice) {
		for _, n := range ns {
			m.Counters.Notices.Add(1)
			m.q.push(n)
			pr.push(n)
			switch n.Kind {
			case NoticeOpened:
				log.Info("incident opened", "incident", n.Incident, "severity", n.Severity,
					"detect_ms", n.Time.Sub(n.EventTime).Milliseconds())
			case NoticeCleared, NoticeClosed:
				log.Info("incident "+n.Kind, "incident", n.Incident, "reason", n.Reason)
			}
		}
	}
	requestList := func() {
		select {
		case listReq <- struct{}{}:
		default:
		}
	}
	dispatch := func() {
		for id, catchUp := range eng.takeInspects() {
			en := eng.byID[id]
			if en == nil {
				continue
			}
			select {
			case inspReq <- inspectJob{id: id, seq: en.seq, catchUp: catchUp}:
			default:
				eng.inspect[id] = eng.inspect[id] || catchUp // retried on the next pass
			}
		}
	}
	tick := min(time.Second, max(o.Hysteresis/4, 50*time.Millisecond))
	tickT := time.NewTicker(tick)
	defer tickT.Stop()
	roundT := time.NewTicker(o.Interval)
	defer roundT.Stop()
	recT := time.NewTicker(o.ReconcileInterval)
	defer recT.Stop()
	roundBusy := false
	var lastRound time.Duration
	dirty := false

	post := func(results []SampleResult) {
		now := time.Now()
		sums := eng.summaries(now)
		// The stats keys live three periods; a round slower than the interval (the stats API's one-second
		// tick) stretches the period.
		snap := snapshot{ttl: 3 * max(o.Interval, lastRound), containers: make([]container.Summary, 0, len(sums))}
		watched := 0
		for _, s := range sums {
			snap.containers = append(snap.containers, s)
			if s.Watched {
				watched++
			}
		}
		for _, r := range results {
			en := eng.byID[r.Ref.ID]
			if r.Err != nil || en == nil || !en.haveLast {
				continue
			}
			last := en.last
			snap.stats = append(snap.stats, containers.StatsEntry{Target: schema.Target(o.Host, en.name),
				Stats: schema.Stats{Sample: &last, History: en.hist.Clone()}})
		}
		buffered, dropped := m.q.stats()
		running := 0
		for _, en := range eng.byID {
			if en.state == "running" {
				running++
			}
		}
		snap.host = schema.HostStatus{
			Host: o.Host, Sampler: o.SamplerName, Workers: o.Workers, RoundSeconds: lastRound.Seconds(),
			Rounds: m.Counters.Rounds.Load(), RoundsSkipped: m.Counters.RoundsSkip.Load(),
			SampleErrors: m.Counters.SampleErrors.Load(), Events: m.Counters.Events.Load(),
			AlertsBuffered: buffered, AlertsDropped: dropped, Containers: len(sums), Running: running,
			Watched: watched, UpdatedAt: now.UTC(),
		}
		wr.post(snap)
		dirty = false
	}

	for {
		var now time.Time
		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return nil
		case e := <-evCh:
			now = time.Now()
			m.Counters.Events.Add(1)
			handle(eng.onEvent(e, now))
			dirty = true
		case <-connCh:
			requestList()
		case r := <-listRes:
			now = time.Now()
			if r.err != nil {
				log.Debug("list failed", "err", r.err)
				break
			}
			handle(eng.onList(r.list, r.at, now))
			m.Counters.Reconciles.Add(1)
			dirty = true
		case r := <-inspRes:
			now = time.Now()
			switch {
			case r.err == nil:
				handle(eng.onDetails(r.d, r.job.seq, r.job.catchUp, now))
			case errors.Is(r.err, docker.ErrNotFound):
				// Removed meanwhile: its destroy event or the next reconcile drops it.
			default:
				log.Debug("inspect failed", "id", r.job.id, "err", r.err)
			}
		case r := <-roundRes:
			now = time.Now()
			roundBusy = false
			lastRound = r.took
			m.Counters.Rounds.Add(1)
			m.Counters.LastRoundNS.Store(int64(r.took))
			for _, s := range r.results {
				if s.Err != nil {
					m.Counters.SampleErrors.Add(1)
					continue
				}
				handle(eng.onSample(s.Ref.ID, s.Sample, now))
			}
			handle(eng.onTick(now))
			post(r.results)
		case <-roundT.C:
			if roundBusy {
				m.Counters.RoundsSkip.Add(1)
				break
			}
			refs := eng.running()
			roundBusy = true
			roundReq <- refs // never blocks: one round at a time
		case <-recT.C:
			requestList()
		case <-tickT.C:
			now = time.Now()
			handle(eng.onTick(now))
			if dirty {
				post(nil)
			}
		}
		dispatch()
	}
}

// loadIncidents resumes the open incidents of this host, retrying briefly while Redis is away.
func (m *Monitor) loadIncidents(ctx context.Context, eng *engine) {
	bo := agent.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		list, err := m.st.Incidents.OpenIncidents(c, m.o.Host)
		cancel()
		if err == nil {
			eng.load(list)
			if len(list) > 0 {
				m.o.Logger.Info("resumed open incidents", "count", len(list))
			}
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			m.o.Logger.Warn("open incidents not loaded; a restart may alert again", "err", err)
			return
		}
		agent.Sleep(ctx, bo.Next())
	}
}

// watchEvents keeps the event stream connected: after a break it reconnects with backoff from the last
// event's time minus a second, skips the events it has already seen, and asks for a reconcile after every
// (re)connection. It exits when ctx is done.
func (m *Monitor) watchEvents(ctx context.Context, out chan<- docker.Event, conn chan<- struct{}) {
	state := agent.NewState(m.o.Logger, "docker")
	bo := agent.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	seen := newDedupe()
	var last time.Time
	first := true
	for ctx.Err() == nil {
		var since time.Time
		if !last.IsZero() {
			since = last.Add(-time.Second)
		}
		sctx, stop := context.WithCancel(ctx)
		evs, errs := m.rt.Events(sctx, docker.EventsOptions{Since: since, Actions: docker.ContainerActions})
		var err error
		select { // a refused connection fails at once
		case err = <-errs:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
		if err == nil && ctx.Err() == nil {
			state.Set(nil)
			bo.Reset()
			if !first {
				m.Counters.Reconnects.Add(1)
			}
			first = false
			select {
			case conn <- struct{}{}:
			default:
			}
			err = m.forward(ctx, evs, errs, out, seen, &last)
		}
		stop()
		if ctx.Err() != nil {
			return
		}
		state.Set(err)
		agent.Sleep(ctx, bo.Next())
	}
}

// forward passes events on until the stream ends, returning its error.
func (m *Monitor) forward(ctx context.Context, evs <-chan docker.Event, errs <-chan error, out chan<- docker.Event,
	seen *dedupe, last *time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			// Drain what was decoded before the break.
			for {
				select {
				case e, ok := <-evs:
					if !ok {
						return err
					}
					m.pass(ctx, e, out, seen, last)
				default:
					return err
				}
			}
		case e, ok := <-evs:
			if !ok {
				return errors.New("event stream closed")
			}
			m.pass(ctx, e, out, seen, last)
		}
	}
}

func (m *Monitor) pass(ctx context.Context, e docker.Event, out chan<- docker.Event, seen *dedupe, last *time.Time) {
	if !seen.add(e) {
		m.Counters.Duplicates.Add(1)
		return
	}
	if e.Time.After(*last) {
		*last = e.Time
	}
	select {
	case out <- e:
	case <-ctx.Done():
	}
}

// dedupe remembers recent events by (id, action, time) so a replay after a reconnect is not handled twice.
type dedupe struct {
	seen    map[dedupeKey]struct{}
	newest  int64
	pruneAt int
}

type dedupeKey struct {
	id, action string
	nano       int64
}

func newDedupe() *dedupe { return &dedupe{seen: map[dedupeKey]struct{}{}, pruneAt: 4096} }

// add records e and reports whether it is new.
func (d *dedupe) add(e docker.Event) bool {
	k := dedupeKey{e.ID, e.Action, e.TimeNano}
	if _, ok := d.seen[k]; ok {
		return false
	}
	d.seen[k] = struct{}{}
	if e.TimeNano > d.newest {
		d.newest = e.TimeNano
	}
	if len(d.seen) > d.pruneAt {
		cut := d.newest - int64(2*time.Minute)
		for k := range d.seen {
			if k.nano < cut {
				delete(d.seen, k)
			}
		}
		d.pruneAt = max(4096, 2*len(d.seen))
	}
	return true
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
