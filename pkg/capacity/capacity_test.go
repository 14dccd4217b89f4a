package capacity_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/analyze"
	"github.com/hemostat/hemostat/pkg/bench"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/capacity"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/monitor/monitortest"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// Settings of BenchmarkCapacity (environment), with their defaults.
const (
	envHosts      = "HEMOSTAT_CAPACITY_HOSTS"      // fleet sizes, comma separated [10,100,1000]
	envContainers = "HEMOSTAT_CAPACITY_CONTAINERS" // containers per host [50]
	envWindow     = "HEMOSTAT_CAPACITY_WINDOW"     // measurement window per fleet size [60s]
	envFailEvery  = "HEMOSTAT_CAPACITY_FAIL_EVERY" // each host has one crash per this, on average [2m]
	envOut        = "HEMOSTAT_CAPACITY_OUT"        // append the markdown report to this file
)

// The monitor's real periods (its defaults): a sampling round every 10s, and the settle time after the
// fleet has started (every host staggered within one interval, then two full rounds).
const (
	interval = 10 * time.Second
	settle   = 2 * interval
	drain    = 45 * time.Second // how long a crash injected in the window may take to reach its restart call
)

// BenchmarkCapacity runs N simulated hosts x M containers against one private redis-server, from this one
// process, through the code a real host runs: per host a monitor (monitor.New over a fake engine and a
// sampler of moving figures, writing through store.Containers and store.Incidents, publishing on the
// bus), a responder (respond.New over respondtest's fake engine, consuming its host's group) and the two
// agents' heartbeats (agent.Run); one analyzer (rules) serves them all. Crashes are injected at
// HEMOSTAT_CAPACITY_FAIL_EVERY per host, and each one's time from the die event to the restart call is
// recorded. The server's CPU (INFO used_cpu_sys+used_cpu_user, and /proc/<pid>/stat), memory and INFO
// commandstats are read over the window.
//
// Run: go test -run '^$' -bench Capacity -benchtime 1x -timeout 60m ./pkg/capacity
func BenchmarkCapacity(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc")
	}
	hosts := envInts(b, envHosts, []int{10, 100, 1000})
	perHost := envInts(b, envContainers, []int{50})[0]
	window := envDuration(b, envWindow, 60*time.Second)
	failEvery := envDuration(b, envFailEvery, 2*time.Minute)
	var report strings.Builder
	fmt.Fprintf(&report, "\n### %d containers per host, window %s, one crash per host every %s (%s, load average %s)\n\n",
		perHost, window, failEvery, time.Now().UTC().Format(time.RFC3339), bench.LoadAverage("/proc"))
	fmt.Fprintf(&report, "| hosts | containers | Redis CPU (%% of a core) | /proc CPU | per host | used_memory | clients | commands/s | crashes | restarts | alert→restart p50 | p99 | die event→restart p50 | p99 | stages p50 (p99): die→alert, alert→request, request→restart | rounds done/expected | load generator CPU |\n")
	fmt.Fprintf(&report, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var breakdowns strings.Builder
	for _, n := range hosts {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			for b.Loop() {
				r := runFleet(b, n, perHost, window, failEvery)
				b.ReportMetric(r.cpuPercent, "redis-cpu-%")
				b.ReportMetric(float64(r.usedMemory)/(1<<20), "used-MiB")
				b.ReportMetric(float64(bench.Percentile(r.alertToRestart, 50))/1e6, "alert-restart-p50-ms")
				b.ReportMetric(float64(bench.Percentile(r.alertToRestart, 99))/1e6, "alert-restart-p99-ms")
				pc := func(ds []time.Duration) string {
					return bench.FormatDuration(bench.Percentile(ds, 50)) + " (" + bench.FormatDuration(bench.Percentile(ds, 99)) + ")"
				}
				fmt.Fprintf(&report, "| %d | %d | %.1f %% | %.1f %% | %.4f %% | %.1f MiB | %d | %.0f | %d | %d | %s | %s | %s | %s | %s, %s, %s | %d/%d | %.0f %% |\n",
					n, n*perHost, r.cpuPercent, r.procPercent, r.cpuPercent/float64(n), float64(r.usedMemory)/(1<<20), r.clients,
					float64(r.calls)/window.Seconds(), r.injected, len(r.latencies),
					bench.FormatDuration(bench.Percentile(r.alertToRestart, 50)), bench.FormatDuration(bench.Percentile(r.alertToRestart, 99)),
					bench.FormatDuration(bench.Percentile(r.latencies, 50)), bench.FormatDuration(bench.Percentile(r.latencies, 99)),
					pc(r.detect), pc(r.analyze), pc(r.respond), r.rounds, r.expectedRounds, r.selfPercent)
				fmt.Fprintf(&breakdowns, "\nINFO commandstats over the window, %d hosts (per second; share of the server time spent in commands):\n\n", n)
				fmt.Fprintf(&breakdowns, "| command | calls/s | calls/s per host | µs/s | share | µs/call |\n|---|---|---|---|---|---|\n")
				var total int64
				for _, c := range r.commands {
					total += c.Usec
				}
				for _, c := range r.commands {
					fmt.Fprintf(&breakdowns, "| %s | %.1f | %.3f | %.0f | %.1f %% | %.2f |\n", c.Command, float64(c.Calls)/window.Seconds(),
						float64(c.Calls)/window.Seconds()/float64(n), float64(c.Usec)/window.Seconds(), 100*float64(c.Usec)/float64(max(total, 1)),
						float64(c.Usec)/float64(c.Calls))
				}
			}
		})
	}
	out := report.String() + breakdowns.String()
	b.Log(out)
	if p := os.Getenv(envOut); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatalf("%s: %v", envOut, err)
		}
		defer f.Close()
		if _, err := f.WriteString(out); err != nil {
			b.Fatalf("%s: %v", envOut, err)
		}
	}
}

// result is one fleet size's figures over the window.
type result struct {
	cpuPercent, procPercent, selfPercent float64
	usedMemory                           int64
	clients                              int64
	calls                                int64
	commands                             []capacity.CommandStat
	injected                             int
	latencies                            []time.Duration
	rounds, expectedRounds               int64
	detect, analyze, respond             []time.Duration
	alertToRestart                       []time.Duration
}

// host is one simulated Docker host: its monitor's engine and sampler, its responder's engine.
type host struct {
	name   string
	rt     *monitortest.Runtime
	smp    *sampler
	rec    *respondtest.Recorder
	fake   *respondtest.Fake
	ids    []string
	names  []string
	mon    *monitor.Monitor
	lat    *latencies
	mu     sync.Mutex
	downAt map[string]time.Time // container id -> when it crashed, until its restart call
}

// latencies collects the die-event-to-restart-call times of the crashes injected within the window.
type latencies struct {
	mu       sync.Mutex
	from, to time.Time
	got      []time.Duration // die event -> restart call
	injected int
	// The stages, from the streams' entry ids (Redis's clock, milliseconds): die event -> health_alert,
	// health_alert -> remediation request, request -> restart call, health_alert -> restart call.
	detect, analyze, respond, alertToRestart []time.Duration
	seen                                     map[string]map[string]time.Time // stream -> incident -> entry time
}

// record notes when an incident's entry reached a stream.
func (l *latencies) record(stream, incident string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]map[string]time.Time{}
	}
	if l.seen[stream] == nil {
		l.seen[stream] = map[string]time.Time{}
	}
	if _, ok := l.seen[stream][incident]; !ok {
		l.seen[stream][incident] = at
	}
}

// restarted records a crash's times at its restart call, and forgets its incident's entries.
func (l *latencies) restarted(incident string, died, call time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	alert, okA := l.seen[event.StreamHealthAlert][incident]
	req, okR := l.seen[event.StreamRemediationNeeded][incident]
	delete(l.seen[event.StreamHealthAlert], incident)
	delete(l.seen[event.StreamRemediationNeeded], incident)
	if l.from.IsZero() || died.Before(l.from) || (!l.to.IsZero() && !died.Before(l.to)) {
		return
	}
	l.got = append(l.got, call.Sub(died))
	if okA && okR {
		l.detect = append(l.detect, alert.Sub(died))
		l.analyze = append(l.analyze, req.Sub(alert))
		l.respond = append(l.respond, call.Sub(req))
		l.alertToRestart = append(l.alertToRestart, call.Sub(alert))
	}
}

// follow records when each incident's health_alert reaches the bus (its entry id), and each remediation
// request (on its host's stream) by its envelope's time: the analyzer stamps it just before the XADD. The
// requests are watched on their pub/sub mirror with one PSUBSCRIBE: an XREAD over every host's stream
// would cost Redis O(hosts) per call, the harness's cost and not hemostat's.
func follow(ctx context.Context, b *bus.Bus, rdb *redis.Client, l *latencies) {
	sub := rdb.PSubscribe(ctx, event.StreamRemediationNeeded+":*")
	defer sub.Close()
	go func() { // ends when the subscription is closed
		for m := range sub.Channel() {
			var env struct {
				Incident  string    `json:"incident"`
				Timestamp time.Time `json:"timestamp"`
			}
			if json.Unmarshal([]byte(m.Payload), &env) == nil && env.Incident != "" {
				l.record(event.StreamRemediationNeeded, env.Incident, env.Timestamp)
			}
		}
	}()
	last := map[string]string{event.StreamHealthAlert: "$"}
	for ctx.Err() == nil {
		es, err := b.Follow(ctx, last, time.Second)
		if err != nil {
			agent.Sleep(ctx, 100*time.Millisecond)
			continue
		}
		for _, e := range es {
			last[e.Stream] = e.ID
			var env struct {
				Incident string `json:"incident"`
			}
			if json.Unmarshal(e.Raw, &env) == nil && env.Incident != "" {
				l.record(e.Stream, env.Incident, e.Time())
			}
		}
	}
}

func (l *latencies) inWindow(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.from.IsZero() && !t.Before(l.from) && (l.to.IsZero() || t.Before(l.to))
}

func runFleet(b *testing.B, n, perHost int, window, failEvery time.Duration) result {
	// Production settings (examples/compose): AOF with one fsync a second, no eviction; enough clients for
	// ~8 connections per host.
	srv := testenv.StartRedisWith(b, "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--maxclients", "15000")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []*conn.Conn
	defer func() {
		cancel()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func() *store.Store {
		c, err := conn.Open(conn.Options{URL: srv.URL()})
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		return store.New(c)
	}
	discard := slog.New(slog.DiscardHandler)

	// The one analyzer, rules only, as `hemostat analyze` runs it.
	ast := open()
	ab := bus.New(ast.Conn, bus.Options{})
	an := analyze.New(analyze.Options{Consumer: "analyze-1", Logger: discard},
		analyze.Stores{Incidents: ast.Incidents, Stats: ast.Containers, Ledger: ast.Ledger}, ab)
	wg.Go(func() {
		_ = agent.Run(ctx, agent.Options{Kind: analyze.AgentName, Instance: "analyze-1", Version: "bench", Logger: discard},
			ast.Agents, an.Run)
	})

	lat := &latencies{}
	hs := make([]*host, n)
	for i := range n {
		hs[i] = newHost(fmt.Sprintf("host-%04d", i), perHost, lat)
	}
	// Every host starts within one interval, as real hosts' rounds are spread.
	for i, h := range hs {
		st := open() // each host its own connection pool, as each real host has
		mb := bus.New(st.Conn, bus.Options{})
		h.mon = monitor.New(monitor.Options{Host: h.name, Logger: discard, SamplerName: monitor.SamplerCgroup}, h.rt, h.smp,
			monitor.Stores{Incidents: st.Incidents, State: st.Containers, Ledger: st.Ledger}, mb)
		rb := bus.New(st.Conn, bus.Options{Batch: 64, Concurrency: 1}) // as cmd/respond.go sets them
		r := respond.New(respond.Config{Host: h.name}, h.rec, respond.Stores{Ledger: st.Ledger, Incidents: st.Incidents, Hosts: st.Containers},
			st.Audit, rb, respond.Options{Instance: h.name + "-respond", Logger: discard})
		wg.Go(func() {
			_ = agent.Run(ctx, agent.Options{Kind: "monitor", Instance: h.name + "-monitor", Version: "bench",
				Record: schema.Agent{Host: h.name}, Logger: discard}, st.Agents, h.mon.Run)
		})
		wg.Go(func() {
			_ = agent.Run(ctx, agent.Options{Kind: "respond", Instance: h.name + "-respond", Version: "bench",
				Record: schema.Agent{Host: h.name, Mode: "auto", Policy: respond.EncodePolicy(r.Config())}, Logger: discard},
				st.Agents, func(ctx context.Context) error { return r.Run(ctx, rb) })
		})
		if !agent.Sleep(ctx, time.Duration(int64(interval)*int64(i+1)/int64(n)-int64(interval)*int64(i)/int64(n))) {
			b.Fatal("stopped")
		}
	}
	fb := bus.New(ast.Conn, bus.Options{}).Follower()
	wg.Go(func() { follow(ctx, fb, ast.Conn.Client(), lat) })
	defer fb.Close()
	// Crashes, as a Poisson process over the fleet.
	wg.Go(func() { inject(ctx, hs, failEvery) })

	probe, err := conn.Open(conn.Options{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	conns = append(conns, probe)
	info := func() capacity.Info {
		s, err := probe.Client().Info(ctx, "cpu", "memory", "clients", "commandstats").Result()
		if err != nil {
			b.Fatalf("info: %v", err)
		}
		return capacity.ParseInfo(s)
	}
	if !agent.Sleep(ctx, settle) {
		b.Fatal("stopped")
	}
	roundsBefore := totalRounds(hs)
	i0, p0, s0, t0 := info(), procCPU(b, srv.PID()), selfCPU(b), time.Now()
	lat.mu.Lock()
	lat.from = t0
	lat.mu.Unlock()
	agent.Sleep(ctx, window)
	i1, p1, s1, t1 := info(), procCPU(b, srv.PID()), selfCPU(b), time.Now()
	lat.mu.Lock()
	lat.to = t1
	lat.mu.Unlock()
	roundsAfter := totalRounds(hs)
	// The crashes of the window that have not reached their restart yet get drain to do so.
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) && pending(hs, t0, t1) > 0 {
		agent.Sleep(ctx, 200*time.Millisecond)
	}
	c0, _ := i0.CPU()
	c1, _ := i1.CPU()
	wall := t1.Sub(t0)
	r := result{
		cpuPercent:     100 * float64(c1-c0) / float64(wall),
		procPercent:    100 * float64(p1-p0) / float64(wall),
		selfPercent:    100 * float64(s1-s0) / float64(wall),
		commands:       capacity.CommandDelta(i0.Commands(), i1.Commands()),
		rounds:         roundsAfter - roundsBefore,
		expectedRounds: int64(float64(n) * wall.Seconds() / interval.Seconds()),
	}
	r.usedMemory, _ = i1.Int("used_memory")
	r.clients, _ = i1.Int("connected_clients")
	for _, c := range r.commands {
		r.calls += c.Calls
	}
	lat.mu.Lock()
	r.injected, r.latencies = lat.injected, slices.Clone(lat.got)
	r.detect, r.analyze, r.respond, r.alertToRestart = slices.Clone(lat.detect), slices.Clone(lat.analyze), slices.Clone(lat.respond), slices.Clone(lat.alertToRestart)
	lat.mu.Unlock()
	slices.Sort(r.latencies)
	b.Logf("%d hosts: event->restart latencies %v", n, r.latencies)
	if lost := r.injected - len(r.latencies); lost > 0 {
		b.Logf("%d hosts: %d of %d crashes of the window had no restart call within %s after it", n, lost, r.injected, drain)
	}
	return r
}

func newHost(name string, perHost int, lat *latencies) *host {
	h := &host{name: name, rt: monitortest.New(), fake: respondtest.NewFake(), lat: lat, downAt: map[string]time.Time{}}
	h.smp = &sampler{rng: rand.New(rand.NewPCG(seed(name), 1)), state: map[string]*series{}}
	started := time.Now().Add(-24 * time.Hour)
	for j := range perHost {
		cname := fmt.Sprintf("app%02d-web-%d", j/3, j%3+1)
		sum := sha256.Sum256([]byte(name + "/" + cname))
		id := hex.EncodeToString(sum[:])
		labels := map[string]string{
			"com.docker.compose.project": "shop", "com.docker.compose.service": cname,
			"com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
			"org.opencontainers.image.version": "1.4.2", "team": "payments",
		}
		h.rt.Set(docker.Details{ID: id, Name: cname, Image: "registry.example.com/shop/" + cname + ":1.4.2", State: "running",
			Labels: labels, Created: started, StartedAt: started, Pid: 1000 + j, MemoryLimit: 512 << 20, RestartPolicy: "no"})
		h.fake.Add(docker.TargetState{ID: id, Name: cname, Image: "shop/" + cname, Labels: labels, StartedAt: started})
		h.smp.add(id)
		h.ids, h.names = append(h.ids, id), append(h.names, cname)
	}
	h.rec = &respondtest.Recorder{Inner: h.fake, OnWrite: h.onWrite}
	return h
}

func seed(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return uint64(sum[0]) | uint64(sum[1])<<8 | uint64(sum[2])<<16 | uint64(sum[3])<<24
}

// crash makes a running container exit (code 1) on both fake engines and emits its die event.
func (h *host) crash(j int) bool {
	id, name := h.ids[j], h.names[j]
	h.mu.Lock()
	if _, down := h.downAt[id]; down {
		h.mu.Unlock()
		return false
	}
	now := time.Now()
	h.downAt[id] = now
	h.mu.Unlock()
	d, err := h.rt.Inspect(context.Background(), id)
	if err != nil {
		return false
	}
	d.State, d.ExitCode, d.FinishedAt = "exited", 1, now
	h.rt.Set(d)
	st, _ := h.fake.ContainerState(context.Background(), id)
	st.Status, st.Running, st.ExitCode = "exited", false, 1
	h.fake.Add(st)
	if h.lat.inWindow(now) {
		h.lat.mu.Lock()
		h.lat.injected++
		h.lat.mu.Unlock()
	}
	h.rt.Emit(docker.Event{ID: id, Name: name, Action: "die", ExitCode: 1, Time: now, TimeNano: now.UnixNano(),
		Attributes: map[string]string{"name": name, "exitCode": "1"}})
	return true
}

// onWrite records a restart call's time against its crash and tells the monitor's engine the container
// runs again.
func (h *host) onWrite(c respondtest.Call) {
	if c.Op != "restart" && c.Op != "start" {
		return
	}
	id := c.Ref
	if j := slices.Index(h.names, c.Ref); j >= 0 {
		id = h.ids[j]
	}
	h.mu.Lock()
	at, ok := h.downAt[id]
	delete(h.downAt, id)
	h.mu.Unlock()
	if !ok {
		return
	}
	d, err := h.rt.Inspect(context.Background(), id)
	if err == nil {
		h.lat.restarted(event.IncidentKey(h.name, d.Name, "crashed"), at, c.At)
	}
	if err != nil {
		return
	}
	now := time.Now()
	d.State, d.ExitCode, d.StartedAt, d.RestartCount = "running", 0, now, d.RestartCount+1
	h.rt.Set(d)
	h.rt.Emit(docker.Event{ID: d.ID, Name: d.Name, Action: "start", ExitCode: -1, Time: now, TimeNano: now.UnixNano(),
		Attributes: map[string]string{"name": d.Name}})
}

// inject crashes random containers, one per failEvery per host on average (exponential gaps).
func inject(ctx context.Context, hs []*host, failEvery time.Duration) {
	rng := rand.New(rand.NewPCG(7, 11))
	mean := float64(failEvery) / float64(len(hs))
	for {
		if !agent.Sleep(ctx, time.Duration(rng.ExpFloat64()*mean)) {
			return
		}
		h := hs[rng.IntN(len(hs))]
		h.crash(rng.IntN(len(h.ids)))
	}
}

// pending counts the crashes of [from, to) still waiting for their restart call.
func pending(hs []*host, from, to time.Time) int {
	n := 0
	for _, h := range hs {
		h.mu.Lock()
		for _, at := range h.downAt {
			if !at.Before(from) && at.Before(to) {
				n++
			}
		}
		h.mu.Unlock()
	}
	return n
}

func totalRounds(hs []*host) int64 {
	var n int64
	for _, h := range hs {
		n += h.mon.Counters.Rounds.Load()
	}
	return n
}

// sampler gives each container moving figures, as a real one's are: CPU time grows by 0.5-3% of a core
// and the working set wanders around its level, so every sample differs from the one before.
type sampler struct {
	mu    sync.Mutex
	rng   *rand.Rand
	state map[string]*series
}

type series struct {
	cpuNS  uint64
	memory float64
	at     time.Time
}

func (s *sampler) add(id string) {
	s.state[id] = &series{cpuNS: uint64(s.rng.Int64N(1e12)), memory: float64(64<<20 + s.rng.Int64N(128<<20)), at: time.Now()}
}

// Sample implements monitor.Sampler.
func (s *sampler) Sample(_ context.Context, c monitor.ContainerRef) (container.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state[c.ID]
	if st == nil {
		return container.Sample{}, docker.ErrNotFound
	}
	now := time.Now()
	st.cpuNS += uint64(float64(now.Sub(st.at)) * (0.005 + 0.025*s.rng.Float64()))
	st.at = now
	st.memory = math.Max(32<<20, st.memory+float64(s.rng.IntN(1<<20)-1<<19))
	out := container.Sample{Time: now.UTC(), Source: monitor.SamplerCgroup, CPUTotalNS: st.cpuNS}
	m := &out.Metrics
	m.MemoryUsage, m.MemoryLimit = uint64(st.memory), 512<<20
	m.MemoryPercent = 100 * st.memory / float64(m.MemoryLimit)
	m.NetworkRxBytes, m.NetworkTxBytes = st.cpuNS/1000, st.cpuNS/3000
	return out, nil
}

var _ monitor.Sampler = (*sampler)(nil)

func procCPU(b *testing.B, pid int) time.Duration {
	st, err := bench.ReadStat("/proc", pid)
	if err != nil {
		b.Fatalf("redis-server's /proc stat: %v", err)
	}
	return st.CPU
}

func selfCPU(b *testing.B) time.Duration {
	d, err := bench.SelfCPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func envInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s: %q is not a positive duration", name, v)
	}
	return cmp.Or(d, def)
}
