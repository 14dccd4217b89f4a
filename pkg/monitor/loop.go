package monitor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Sizes and periods of the loop.
const (
	// inspectWorkers is the number of inspects in flight at once.
	inspectWorkers = 4
	// inspectTimeout bounds one inspect call.
	inspectTimeout = 10 * time.Second
	// listTimeout bounds one full list of the engine's containers.
	listTimeout = 30 * time.Second
	// eventQueueLen is how many events the watcher may hand over before the loop takes them; when it is
	// full the watcher waits, and the engine's stream waits with it.
	eventQueueLen = 1024
	// inspectQueueLen is the capacity of the inspect requests and of their results. An id that finds the
	// request queue full stays in the engine and is asked for again after the next event of any source.
	inspectQueueLen = 1024
	// minSampleTimeout is the shortest bound of one sample: a sample may take --interval, but never less
	// than this, so a short interval does not cut off a slow stats call.
	minSampleTimeout = 5 * time.Second
	// statsTTLRounds is how many sampling periods the stats keys outlive their last write.
	statsTTLRounds = 3
	// minClockTick and maxClockTick bound the clock tick, which is a quarter of --recovery-hysteresis in
	// between: an incident clears at most a quarter of the hysteresis late.
	minClockTick = 50 * time.Millisecond
	maxClockTick = time.Second
	// ownWorkers is the number of ledger reads in flight at once that ask whether a stop or kill was
	// hemostat's own action; ownQueueLen the capacity of their requests and results; ownTimeout bounds
	// one read.
	ownWorkers  = 2
	ownQueueLen = 256
	ownTimeout  = 3 * time.Second
	// ownLead is how much earlier than the stop or kill hemostat's action may have been committed, and
	// ownLag how much later (the clocks of the responder and the engine differ a little): an action the
	// ledger dates within [kill-ownLead, kill+ownLag] is the one that stopped the container.
	ownLead = 2 * time.Minute
	ownLag  = 2 * time.Second
)

// clockTick is the period of the engine's clock ticks for a recovery hysteresis.
func clockTick(hysteresis time.Duration) time.Duration {
	return min(maxClockTick, max(hysteresis/4, minClockTick))
}

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

type roundResult struct {
	results []SampleResult
	took    time.Duration
}

// openResult is the host's open incidents as Redis has them, read at at.
type openResult struct {
	keys    map[string]bool
	at      time.Time
	err     error
	pending bool // notices were waiting for Redis when the read began: it may lack their openings
}

// ownResult answers an OwnCheck: whether hemostat's ledger shows an action of its own at that time.
type ownResult struct {
	check  OwnCheck
	own    bool
	action string
	err    error
}

// loop is one Run of the monitor: one goroutine (run) owns the engine and takes events from every source
// in turn; workers do the I/O and talk to it over the channels below. run's methods (on*, handle,
// dispatchInspects, post) are the only code that touches the engine and the fields after the channels, so
// none of them needs a lock. The workers (watchEvents, inspect, list, sampleRound, the publisher and the
// writer) touch only the channels, the collaborators and the atomic counters.
//
// Adding an event source, for example the results of asynchronous Redis reads:
//
//  1. give it a request channel and a result channel below, created in newLoop (buffered like the
//     inspect channels when a burst may arrive at once);
//  2. in start, run its worker with serve (or a loop of its own) tied to ctx: it returns when ctx is done
//     and never blocks on a send without also watching ctx.Done;
//  3. in run, add a case for the result channel that calls a new on<Source> method: it feeds the result to
//     the engine (a method returning notices, with no I/O) and passes the notices to handle;
//  4. send the requests from the loop goroutine without blocking (see dispatchInspects): the loop must
//     never wait on a worker.
type loop struct {
	m   *Monitor
	o   Options
	log *slog.Logger
	eng *engine
	pr  *printer
	wr  *writer

	events    chan docker.Event   // watchEvents -> run
	connected chan struct{}       // watchEvents -> run, after each (re)connection
	listReq   chan struct{}       // run -> lister
	lists     chan listResult     // lister -> run
	inspReq   chan inspectJob     // run -> inspectors
	inspected chan inspectResult  // inspectors -> run
	roundReq  chan []ContainerRef // run -> sampler, one round at a time
	rounds    chan roundResult    // sampler -> run
	ownReq    chan OwnCheck       // run -> ledger readers
	owned     chan ownResult      // ledger readers -> run
	openReq   chan struct{}       // run -> open-incident reader, at each reconcile
	opened    chan openResult     // open-incident reader -> run

	roundBusy bool          // a round is in flight
	lastRound time.Duration // how long the latest round took
	dirty     bool          // the table changed since the latest snapshot
}

func newLoop(m *Monitor, eng *engine) *loop {
	o := m.o
	return &loop{
		m: m, o: o, log: o.Logger, eng: eng,
		pr: newPrinter(o.Output, o.Format),
		wr: &writer{st: m.st.State, host: o.Host, in: make(chan snapshot, 1), log: o.Logger},

		events:    make(chan docker.Event, eventQueueLen),
		connected: make(chan struct{}, 1),
		listReq:   make(chan struct{}, 1),
		lists:     make(chan listResult, 1),
		inspReq:   make(chan inspectJob, inspectQueueLen),
		inspected: make(chan inspectResult, inspectQueueLen),
		roundReq:  make(chan []ContainerRef, 1),
		rounds:    make(chan roundResult, 1),
		ownReq:    make(chan OwnCheck, ownQueueLen),
		owned:     make(chan ownResult, ownQueueLen),
		openReq:   make(chan struct{}, 1),
		opened:    make(chan openResult, 1),
	}
}

// run takes events until ctx is done, then stops the workers and waits for them and for the printer.
func (l *loop) run(ctx context.Context) error {
	printed := make(chan struct{})
	var printer sync.WaitGroup
	printer.Go(func() { l.pr.run(printed) }) // exits when printed closes, after the workers, printing what is left
	defer func() { close(printed); printer.Wait() }()

	ctx, cancel := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer func() { cancel(); workers.Wait() }()
	l.start(ctx, &workers)

	clock := time.NewTicker(clockTick(l.o.Hysteresis))
	defer clock.Stop()
	round := time.NewTicker(l.o.Interval)
	defer round.Stop()
	reconcile := time.NewTicker(l.o.ReconcileInterval)
	defer reconcile.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-l.events:
			l.onEvent(e)
		case <-l.connected:
			l.onConnected()
		case r := <-l.lists:
			l.onList(r)
		case r := <-l.inspected:
			l.onInspect(r)
		case r := <-l.rounds:
			l.onRound(r)
		case <-round.C:
			l.onRoundTick()
		case <-reconcile.C:
			l.onReconcileTick()
		case <-clock.C:
			l.onClockTick()
		case r := <-l.owned:
			l.onOwn(r)
		case r := <-l.opened:
			l.onOpen(r)
		}
		l.dispatchInspects()
		l.dispatchOwnChecks()
	}
}

// start runs the workers; each exits when ctx is done.
func (l *loop) start(ctx context.Context, wg *sync.WaitGroup) {
	m := l.m
	pub := &publisher{st: m.st.Incidents, pub: m.pub, q: m.q, log: l.log, published: func() { m.Counters.Published.Add(1) }}
	wg.Go(func() { pub.run(ctx) })       // exits at ctx done, after a short flush
	wg.Go(func() { l.wr.run(ctx) })      // exits at ctx done
	wg.Go(func() { l.watchEvents(ctx) }) // exits at ctx done
	for range inspectWorkers {
		wg.Go(func() { serve(ctx, l.inspReq, l.inspected, l.inspect) }) // exits at ctx done
	}
	wg.Go(func() { serve(ctx, l.listReq, l.lists, l.list) })          // exits at ctx done
	wg.Go(func() { serve(ctx, l.roundReq, l.rounds, l.sampleRound) }) // exits at ctx done
	wg.Go(func() { serve(ctx, l.openReq, l.opened, l.readOpen) })     // exits at ctx done
	if m.st.Ledger != nil {
		for range ownWorkers {
			wg.Go(func() { serve(ctx, l.ownReq, l.owned, l.askLedger) }) // exits at ctx done
		}
	}
}

// askLedger is a ledger reader's work: whether the container's ledger shows hemostat acting on it around
// the time of its stop or kill. An action in flight that started before it, or the latest action started
// at about that time, is hemostat's.
func (l *loop) askLedger(ctx context.Context, c OwnCheck) ownResult {
	ctx, cancel := context.WithTimeout(ctx, ownTimeout)
	defer cancel()
	led, _, err := l.m.st.Ledger.Get(ctx, schema.LedgerKey(schema.Target(l.o.Host, c.Name)))
	if err != nil {
		return ownResult{check: c, err: err}
	}
	within := func(t time.Time) bool {
		return !t.IsZero() && !t.Before(c.At.Add(-ownLead)) && !t.After(c.At.Add(ownLag))
	}
	switch {
	case led.InflightEvent != "" && within(led.InflightSince()):
		return ownResult{check: c, own: true, action: led.InflightAction}
	case within(led.LastActionAt()):
		return ownResult{check: c, own: true, action: led.LastAction}
	}
	return ownResult{check: c}
}

// onOwn applies the ledger's answer about a stop or kill. A read that failed leaves the question open: the
// engine takes the stop for a client's after its wait.
func (l *loop) onOwn(r ownResult) {
	if r.err != nil {
		l.log.Debug("whose stop it was is unknown", "container", r.check.Name, "err", r.err)
		return
	}
	l.eng.onOwn(r.check, r.own, r.action)
	if r.own {
		l.log.Debug("the stop was hemostat's own", "container", r.check.Name, "action", r.action)
	}
}

// dispatchOwnChecks hands the engine's questions to the ledger readers, without waiting; without a ledger
// (or with the queue full) a question goes unanswered, and the engine waits out ownCheckWait.
func (l *loop) dispatchOwnChecks() {
	for _, c := range l.eng.takeOwnChecks() {
		if l.m.st.Ledger == nil {
			continue
		}
		select {
		case l.ownReq <- c:
		default:
		}
	}
}

// serve answers requests one at a time until ctx is done: the body of every worker that does I/O for the
// loop. A result waiting for the loop does not keep it from exiting.
func serve[Req, Res any](ctx context.Context, in <-chan Req, out chan<- Res, do func(context.Context, Req) Res) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-in:
			res := do(ctx, req)
			select {
			case out <- res:
			case <-ctx.Done():
				return
			}
		}
	}
}

// inspect is an inspector's work: one container's details.
func (l *loop) inspect(ctx context.Context, j inspectJob) inspectResult {
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	d, err := l.m.rt.Inspect(ctx, j.id)
	return inspectResult{job: j, d: d, err: err}
}

// list is the lister's work: every container, with the time the list was asked for.
func (l *loop) list(ctx context.Context, _ struct{}) listResult {
	at := time.Now()
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	list, err := l.m.rt.List(ctx)
	return listResult{list: list, at: at, err: err}
}

// sampleRound is the sampler's work: one sample of every running container, then the sampler's caches of
// the containers no longer running are dropped.
func (l *loop) sampleRound(ctx context.Context, refs []ContainerRef) roundResult {
	m, o := l.m, l.o
	start := time.Now()
	workers := o.Workers
	if usesAPI(m.sampler) {
		workers = max(o.Workers, o.APIWorkers)
	}
	res := SampleRound(ctx, m.sampler, refs, workers, max(o.Interval, minSampleTimeout))
	if p, ok := m.sampler.(pruner); ok {
		live := make(map[int]bool, len(refs))
		for _, r := range refs {
			live[r.Pid] = true
		}
		p.Prune(func(pid int) bool { return live[pid] })
	}
	return roundResult{results: res, took: time.Since(start)}
}

// onEvent applies one engine event.
func (l *loop) onEvent(e docker.Event) {
	l.m.Counters.Events.Add(1)
	l.handle(l.eng.onEvent(e, time.Now()))
	l.dirty = true
}

// onConnected asks for a reconcile after each (re)connection of the event stream: events may have been
// missed meanwhile.
func (l *loop) onConnected() { l.requestList() }

// onList reconciles the table with a full list.
func (l *loop) onList(r listResult) {
	if r.err != nil {
		l.log.Debug("list failed", "err", r.err)
		return
	}
	l.handle(l.eng.onList(r.list, r.at, time.Now()))
	l.m.Counters.Reconciles.Add(1)
	l.dirty = true
}

// onInspect applies one container's details.
func (l *loop) onInspect(r inspectResult) {
	switch {
	case r.err == nil:
		l.handle(l.eng.onDetails(r.d, r.job.seq, r.job.catchUp, time.Now()))
	case errors.Is(r.err, docker.ErrNotFound):
		// Removed meanwhile: its destroy event or the next reconcile drops it.
	default:
		l.log.Debug("inspect failed", "id", r.job.id, "err", r.err)
	}
}

// onRound applies a round's samples, then a clock tick, and posts a snapshot for the views.
func (l *loop) onRound(r roundResult) {
	now := time.Now()
	l.roundBusy = false
	l.lastRound = r.took
	l.m.Counters.Rounds.Add(1)
	l.m.Counters.LastRoundNS.Store(int64(r.took))
	for _, s := range r.results {
		if s.Err != nil {
			l.m.Counters.SampleErrors.Add(1)
			continue
		}
		l.handle(l.eng.onSample(s.Ref.ID, s.Sample, now))
	}
	l.handle(l.eng.onTick(now))
	l.post(r.results)
}

// onRoundTick starts a round of samples, unless the previous one is still running.
func (l *loop) onRoundTick() {
	if l.roundBusy {
		l.m.Counters.RoundsSkip.Add(1)
		return
	}
	l.roundBusy = true
	l.roundReq <- l.eng.running() // never blocks: one round at a time, and roundReq holds one
}

// onReconcileTick asks for the periodic full list, and for the host's open incidents as Redis has them.
func (l *loop) onReconcileTick() {
	l.requestList()
	select {
	case l.openReq <- struct{}{}:
	default:
	}
}

// readOpen is the open-incident reader's work: the keys of the host's incidents open in Redis.
func (l *loop) readOpen(ctx context.Context, _ struct{}) openResult {
	at := time.Now()
	if buffered, _ := l.m.q.stats(); buffered > 0 {
		return openResult{at: at, pending: true}
	}
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	list, err := l.m.st.Incidents.OpenIncidents(ctx, l.o.Host)
	keys := make(map[string]bool, len(list))
	for _, in := range list {
		keys[in.Key] = true
	}
	return openResult{keys: keys, at: at, err: err}
}

// onOpen forgets the incidents a person closed in Redis (hemostat incident close): the monitor stops
// working on them, and a failure after that opens a new incident.
func (l *loop) onOpen(r openResult) {
	if r.err != nil {
		l.log.Debug("open incidents not read", "err", r.err)
		return
	}
	if r.pending {
		return // an opening still on its way to Redis would look closed there
	}
	for _, key := range l.eng.forgetClosed(r.keys, r.at) {
		l.log.Info("incident closed by a person", "incident", key)
	}
}

// onClockTick lets the engine clear, re-alert and close incidents on time, and posts a snapshot when the
// table changed since the latest one.
func (l *loop) onClockTick() {
	l.handle(l.eng.onTick(time.Now()))
	if l.dirty {
		l.post(nil)
	}
}

// handle counts the engine's notices, queues them for Redis, prints and logs them.
func (l *loop) handle(ns []Notice) {
	for _, n := range ns {
		l.m.Counters.Notices.Add(1)
		l.m.q.push(n)
		l.pr.push(n)
		switch n.Kind {
		case NoticeOpened:
			l.log.Info("incident opened", "incident", n.Incident, "severity", n.Severity,
				"detect_ms", n.Time.Sub(n.EventTime).Milliseconds())
		case NoticeCleared, NoticeClosed:
			l.log.Info("incident "+n.Kind, "incident", n.Incident, "reason", n.Reason)
		case NoticeCondition:
			if n.Relapse {
				l.log.Info("incident relapsed", "incident", n.Incident, "relapses", n.Relapses,
					"after_start", n.RelapseAfter.Round(time.Millisecond))
			}
		}
	}
}

// requestList asks the lister for a full list; a list already asked for serves both.
func (l *loop) requestList() {
	select {
	case l.listReq <- struct{}{}:
	default:
	}
}

// dispatchInspects hands the inspects the engine asked for to the inspectors, without waiting: those
// that find the queue full are asked for again on the next pass.
func (l *loop) dispatchInspects() {
	for id, catchUp := range l.eng.takeInspects() {
		seq, ok := l.eng.seqOf(id)
		if !ok {
			continue
		}
		select {
		case l.inspReq <- inspectJob{id: id, seq: seq, catchUp: catchUp}:
		default:
			l.eng.requeueInspect(id, catchUp)
		}
	}
}

// post hands the writer a snapshot of the table, the latest samples (those of results) and the host's
// figures.
func (l *loop) post(results []SampleResult) {
	o, eng, c := l.o, l.eng, &l.m.Counters
	now := time.Now()
	sums := eng.summaries(now)
	// The stats keys live a few periods; a round slower than the interval (the stats API's one-second
	// tick) stretches the period.
	snap := snapshot{ttl: statsTTLRounds * max(o.Interval, l.lastRound), containers: make([]container.Summary, 0, len(sums))}
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
	buffered, dropped := l.m.q.stats()
	running := 0
	for _, en := range eng.byID {
		if en.state == "running" {
			running++
		}
	}
	snap.host = schema.HostStatus{
		Host: o.Host, Sampler: o.SamplerName, Workers: o.Workers, RoundSeconds: l.lastRound.Seconds(),
		Rounds: c.Rounds.Load(), RoundsSkipped: c.RoundsSkip.Load(), SampleErrors: c.SampleErrors.Load(),
		Events: c.Events.Load(), AlertsBuffered: buffered, AlertsDropped: dropped, Containers: len(sums),
		Running: running, Watched: watched, UpdatedAt: now.UTC(),
	}
	l.wr.post(snap)
	l.dirty = false
}
