package monitor

import (
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Notice kinds: what happened to an incident.
const (
	NoticeOpened    = "opened"    // a new incident: a health_alert was published
	NoticeRealerted = "realerted" // still open after the re-alert interval: another health_alert
	NoticeCleared   = "cleared"   // the condition stayed clear for the hysteresis: container_recovered
	NoticeClosed    = "closed"    // closed without recovery (container removed or stopped, escalated)
	// NoticeCondition: an open incident's condition changed. It cleared (the recovery hysteresis starts),
	// or it came back after clearing (a relapse: the same incident continues, and the responder looks at
	// once).
	NoticeCondition = "condition"
)

// Notice is one incident state change, published on the bus and printed on stdout.
type Notice struct {
	Kind        string                    `json:"action"`
	Time        time.Time                 `json:"time"`
	Incident    string                    `json:"incident"`
	Class       string                    `json:"class"`
	Severity    string                    `json:"severity"`
	Host        string                    `json:"host"`
	Container   string                    `json:"container"`
	ContainerID string                    `json:"container_id"`
	OpenedAt    time.Time                 `json:"opened_at"`
	EventTime   time.Time                 `json:"event_time,omitzero"`
	Reason      string                    `json:"reason,omitempty"`
	Alert       *event.ContainerUnhealthy `json:"alert,omitempty"`
	// Condition notices.
	Condition    string        `json:"condition,omitempty"` // failing or clear
	Relapse      bool          `json:"relapse,omitempty"`
	Relapses     int           `json:"relapses,omitempty"`
	RelapseAfter time.Duration `json:"relapse_after_ns,omitempty"` // from the container's latest start to the relapse
	// Envelope is the health_alert (opened, realerted) or container_recovered (cleared) to publish.
	Envelope *event.Envelope `json:"-"`
}

// engineConfig is the detection configuration.
type engineConfig struct {
	Host            string
	Watch           WatchRules
	CPUThreshold    float64 // percent of the CPU limit
	MemoryThreshold float64 // percent of the memory limit
	K               int     // consecutive samples over a threshold
	Leak            LeakParams
	LeakWindow      int           // working-set points kept for the trend
	KillWindow      time.Duration // a die this soon after a stop/kill is deliberate
	OOMWindow       time.Duration // a die this soon after an oom belongs to the OOM kill
	LoopWindow      time.Duration
	LoopCount       int
	Hysteresis      time.Duration
	Realert         time.Duration
	CatchUp         time.Duration // reconcile reports exits this recent
	HostCores       int
	HistoryLen      int
}

// entry is one container of the table.
type entry struct {
	id, name, image string
	state           string
	health          string
	exitCode        int
	oomKilled       bool
	restartCount    int
	labels          map[string]string
	startedAt       time.Time
	finishedAt      time.Time
	healthcheck     *docker.Healthcheck
	cpuLimit        float64
	pid             int
	watched         bool
	inspected       bool
	seq             int // bumped by every event, to spot stale inspect results
	firstSeen       time.Time
	updatedAt       time.Time

	lastKill      time.Time
	kill          killOwner // who sent the latest stop or kill
	killAction    string    // hemostat's action, when it did
	lastOOM       time.Time
	lastDie       time.Time
	lastDieKilled bool // the latest die followed a stop/kill
	dies          []time.Time
	healthyAt     time.Time
	catchUpDone   time.Time // FinishedAt already examined by a reconcile

	prev, last    container.Sample
	haveLast      bool
	cpuVals       []float64
	memVals       []float64
	hist          container.History
	ws            []point
	cpuClearSince time.Time
	memClearSince time.Time
	leakClear     time.Time
	leak          LeakVerdict
}

// killOwner says who sent a container's latest stop or kill, as far as the monitor knows.
type killOwner int

const (
	killUnknown  killOwner = iota // no stop or kill, or not asked yet
	killChecking                  // hemostat's ledger is being read
	killOwn                       // hemostat's responder, acting on an incident
	killClient                    // someone else: a person, a script, an orchestrator
)

// ownCheckWait is how long a stopped container's incident waits for the answer to "was it hemostat?"
// before the stop is taken for a client's.
const ownCheckWait = 5 * time.Second

// sigkillExit is the exit code of a process killed by SIGKILL, which is how the kernel's OOM killer ends
// one.
const sigkillExit = 137

// oomAfterDie is how long a die by SIGKILL that nobody asked for, with no oom event before it, waits for
// one before it is reported as crashed. Docker reports an OOM kill's oom event before its die as a rule,
// but not always: with 75 containers OOM-killed at once on a loaded 2-core machine, 5 had their oom event
// after the die, up to 0.93 s after it.
const oomAfterDie = 2 * time.Second

// incident is one open incident.
type incident struct {
	key, class, severity string
	name, id             string
	openedAt             time.Time
	lastAlertAt          time.Time
	lastFired            time.Time // event time of the latest occurrence of its condition
	alertID              string
	clear                bool // its condition has cleared (the hysteresis runs)
	relapses             int
}

// engine owns the container table and the incidents. It does no I/O: the monitor feeds it events,
// inspect and list results, samples and clock ticks, and publishes the notices it returns. It is used
// from one goroutine.
type engine struct {
	cfg       engineConfig
	byID      map[string]*entry
	byName    map[string]*entry
	incidents map[string]*incident
	inspect   map[string]bool      // ids to inspect; true when the result should be checked for missed failures
	own       map[string]time.Time // ids whose latest stop or kill (at that time) may be hemostat's: read its ledger
	// heldHealth holds the ids whose "unhealthy" came inside hemostat's view of the start period. Docker
	// ends the start period at the first passing probe and reports the change only once, so each is
	// looked at again when the period ends (onTick) instead of being dropped.
	heldHealth map[string]bool
	// pendingDies holds the dies by SIGKILL (each the container's lastDie) that wait up to oomAfterDie for
	// an oom event, by container id, with the time the engine read them: with one, the die is the OOM
	// kill's; without, a crash.
	pendingDies map[string]time.Time
	listed      bool // a full list has been reconciled
}

func newEngine(cfg engineConfig) *engine {
	if cfg.HistoryLen <= 0 {
		cfg.HistoryLen = historyLen
	}
	if cfg.LeakWindow <= 0 {
		cfg.LeakWindow = leakWindow
	}
	return &engine{cfg: cfg, byID: map[string]*entry{}, byName: map[string]*entry{},
		incidents: map[string]*incident{}, inspect: map[string]bool{}, own: map[string]time.Time{},
		heldHealth: map[string]bool{}, pendingDies: map[string]time.Time{}}
}

// OwnCheck is a question for hemostat's ledger: was the stop or kill of a container at At hemostat's own
// action?
type OwnCheck struct {
	ID, Name string
	At       time.Time
}

// takeOwnChecks returns and forgets the questions waiting for the ledger.
func (g *engine) takeOwnChecks() []OwnCheck {
	if len(g.own) == 0 {
		return nil
	}
	out := make([]OwnCheck, 0, len(g.own))
	for id, at := range g.own {
		if en := g.byID[id]; en != nil {
			out = append(out, OwnCheck{ID: id, Name: en.name, At: at})
		}
	}
	g.own = map[string]time.Time{}
	return out
}

// onOwn applies the ledger's answer: whether the stop or kill at at was hemostat's action (and which).
func (g *engine) onOwn(c OwnCheck, own bool, action string) {
	en := g.byID[c.ID]
	if en == nil || !en.lastKill.Equal(c.At) {
		return // another stop or kill came since; its own question is on its way
	}
	en.kill, en.killAction = killClient, ""
	if own {
		en.kill, en.killAction = killOwn, action
	}
}

// closedGrace is how long an incident the monitor opened may be missing from Redis's open set before it
// counts as closed there: its opening is written asynchronously, and may still be on its way.
const closedGrace = 10 * time.Second

// forgetClosed drops the open incidents that Redis, read at readAt, no longer has open: a person closed
// them. It returns their keys. Incidents opened within closedGrace of the read are kept.
func (g *engine) forgetClosed(open map[string]bool, readAt time.Time) []string {
	var out []string
	for _, inc := range g.sortedIncidents() {
		if !open[inc.key] && inc.openedAt.Before(readAt.Add(-closedGrace)) {
			delete(g.incidents, inc.key)
			out = append(out, inc.key)
		}
	}
	return out
}

// hasIncident reports whether a container has an open incident.
func (g *engine) hasIncident(name string) bool {
	for _, inc := range g.incidents {
		if inc.name == name {
			return true
		}
	}
	return false
}

// takeInspects returns and forgets the ids waiting for an inspect.
func (g *engine) takeInspects() map[string]bool {
	if len(g.inspect) == 0 {
		return nil
	}
	m := g.inspect
	g.inspect = map[string]bool{}
	return m
}

// requeueInspect asks again for an inspect that takeInspects returned but the monitor could not start.
func (g *engine) requeueInspect(id string, catchUp bool) { g.inspect[id] = g.inspect[id] || catchUp }

// seqOf returns a container's event counter (see onDetails), and false when it is not in the table.
func (g *engine) seqOf(id string) (int, bool) {
	en := g.byID[id]
	if en == nil {
		return 0, false
	}
	return en.seq, true
}

func (g *engine) requestInspect(en *entry, catchUp bool) {
	if !en.watched {
		return
	}
	g.inspect[en.id] = g.inspect[en.id] || catchUp
}

func (g *engine) newEntry(id, name, image string, labels map[string]string, now time.Time) *entry {
	en := &entry{id: id, name: name, image: image, labels: labels, firstSeen: now, updatedAt: now, exitCode: 0}
	en.watched = g.cfg.Watch.Watched(name, labels)
	g.byID[id] = en
	if name != "" {
		g.byName[name] = en
	}
	return en
}

func (g *engine) rename(en *entry, name string) {
	if name == "" || name == en.name {
		return
	}
	if g.byName[en.name] == en {
		delete(g.byName, en.name)
	}
	en.name = name
	g.byName[name] = en
	en.watched = g.cfg.Watch.Watched(name, en.labels)
}

// labelsFromAttributes approximates a container's labels from an event's attributes (which hold them,
// beside name, image, exitCode and the like) until an inspect gives the real ones.
func labelsFromAttributes(a map[string]string) map[string]string {
	l := make(map[string]string, len(a))
	for k, v := range a {
		switch k {
		case "name", "image", "exitCode", "signal", "execDuration", "oldName":
			continue
		}
		l[k] = v
	}
	return l
}

// onEvent applies one container event. The failure classes carried by events (crashed, oom_killed,
// crash_loop, unhealthy) are decided here, without waiting for a sample or an inspect.
func (g *engine) onEvent(e docker.Event, now time.Time) []Notice {
	if e.ID == "" {
		return nil // not a container event we can place
	}
	en := g.byID[e.ID]
	kind := e.Kind()
	if en == nil {
		if kind == "destroy" {
			return nil
		}
		en = g.newEntry(e.ID, e.Name, e.Image, labelsFromAttributes(e.Attributes), now)
		g.requestInspect(en, false)
	} else if kind != "destroy" {
		g.rename(en, e.Name)
	}
	en.seq++
	en.updatedAt = now
	var out []Notice
	if kind == "die" || kind == "destroy" {
		// A die still waiting is decided before another die or a removal. Not before a start: a restart
		// policy starts the container again well within the time its oom event may still take.
		out = g.flushDie(en, now)
	}
	switch kind {
	case "create":
		en.state = "created"
	case "start":
		en.state = "running"
		en.startedAt = e.Time
		en.lastKill = time.Time{} // a new run: the stop or kill before it explains no later die
		en.kill, en.killAction = killUnknown, ""
		en.health = ""
		if en.healthcheck != nil {
			en.health = "starting"
		}
		en.resetSamples()
		g.requestInspect(en, false)
	case "restart", "unpause":
		en.state = "running"
		g.requestInspect(en, false)
	case "pause":
		en.state = "paused"
	case "kill", "stop":
		en.lastKill = e.Time
		en.kill, en.killAction = killUnknown, ""
		if en.watched && g.hasIncident(en.name) {
			// hemostat's own restart kills the container too: ask its ledger before a die after this is
			// read as a client's stop.
			en.kill = killChecking
			g.own[en.id] = e.Time
		}
	case "die":
		en.state = "exited"
		en.finishedAt = e.Time
		en.pid = 0
		if e.ExitCode >= 0 {
			en.exitCode = e.ExitCode
		}
		en.lastDie = e.Time
		g.requestInspect(en, false) // restart count, OOMKilled
		if en.watched {
			out = append(out, g.onDie(en, e, now)...)
		}
	case "oom":
		en.lastOOM = e.Time
		en.oomKilled = true
		delete(g.pendingDies, en.id) // the die read before it was this OOM kill, not a crash
		if en.watched && !g.suppressedByLoop(en) {
			out = g.open(en, event.ClassOOMKilled, e.Time, now, []event.Anomaly{{Type: "oom_kill", Severity: event.SeverityCritical, Threshold: 0, Actual: 1}})
		}
	case "health_status":
		en.health = e.Health
		switch e.Health {
		case "healthy":
			en.healthyAt = e.Time
			delete(g.heldHealth, en.id)
		case "unhealthy":
			if g.inStartPeriod(en, e.Time) {
				g.heldHealth[en.id] = true
			} else if en.watched {
				out = g.openUnhealthy(en, e.Time, now)
			}
		}
	case "update":
		g.requestInspect(en, false)
	case "rename":
		// The new name was applied above.
	case "destroy":
		out = append(out, g.remove(en, now, "container removed")...)
	}
	return out
}

func (en *entry) resetSamples() {
	en.prev, en.last, en.haveLast = container.Sample{}, container.Sample{}, false
	en.cpuVals, en.memVals, en.ws = nil, nil, nil
	en.cpuClearSince, en.memClearSince, en.leakClear = time.Time{}, time.Time{}, time.Time{}
	en.leak = LeakVerdict{}
}

func (g *engine) inStartPeriod(en *entry, t time.Time) bool {
	if en.healthcheck == nil {
		return false
	}
	return inStartPeriod(en.startedAt, en.healthcheck.StartPeriod, t)
}

func (g *engine) suppressedByLoop(en *entry) bool {
	_, ok := g.incidents[event.IncidentKey(g.cfg.Host, en.name, event.ClassCrashLoop)]
	return ok
}

func (g *engine) onDie(en *entry, e docker.Event, now time.Time) []Notice {
	v := detectCrash(CrashInput{
		ExitCode: en.exitCode, At: e.Time, LastKill: en.lastKill, LastOOM: en.lastOOM, Dies: en.dies,
		KillWindow: g.cfg.KillWindow, OOMWindow: g.cfg.OOMWindow, LoopWindow: g.cfg.LoopWindow, LoopCount: g.cfg.LoopCount,
	})
	en.lastDieKilled = v.Deliberate
	if v.Deliberate {
		return nil
	}
	en.dies = append(pruneBefore(en.dies, e.Time.Add(-g.cfg.LoopWindow)), e.Time)
	exit := []event.Anomaly{{Type: "exit_code", Severity: event.SeverityCritical, Threshold: 0, Actual: float64(en.exitCode)}}
	switch {
	case v.Loop:
		an := append(exit, event.Anomaly{Type: "restarts", Severity: event.SeverityCritical, Threshold: float64(g.cfg.LoopCount), Actual: float64(v.Dies)})
		return g.open(en, event.ClassCrashLoop, e.Time, now, an)
	case v.Crashed && !g.suppressedByLoop(en) && en.exitCode == sigkillExit:
		// An OOM kill whose oom event comes after the die would be taken for a crash: wait for it.
		g.pendingDies[en.id] = now
	case v.Crashed && !g.suppressedByLoop(en):
		return g.open(en, event.ClassCrashed, e.Time, now, exit)
	case v.OOM && !g.suppressedByLoop(en):
		// The oom event opened (or refreshed) oom_killed already; keep it open while the container is down.
		if inc := g.incidents[event.IncidentKey(g.cfg.Host, en.name, event.ClassOOMKilled)]; inc != nil {
			inc.lastFired = e.Time
		}
	}
	return nil
}

// openUnhealthy opens (or refreshes) the container's unhealthy incident, seen at at.
func (g *engine) openUnhealthy(en *entry, at, now time.Time) []Notice {
	return g.open(en, event.ClassUnhealthy, at, now, []event.Anomaly{{Type: "health", Severity: event.SeverityCritical, Threshold: 0, Actual: 1}})
}

// flushDie reports the container's die by SIGKILL that waits for an oom event (its lastDie) as crashed,
// at the die's time.
func (g *engine) flushDie(en *entry, now time.Time) []Notice {
	if _, ok := g.pendingDies[en.id]; !ok {
		return nil
	}
	delete(g.pendingDies, en.id)
	if !en.watched || g.suppressedByLoop(en) {
		return nil
	}
	return g.open(en, event.ClassCrashed, en.lastDie, now, []event.Anomaly{{Type: "exit_code", Severity: event.SeverityCritical, Threshold: 0, Actual: sigkillExit}})
}

func pruneBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for _, t := range ts {
		if !t.Before(cut) {
			ts[i] = t
			i++
		}
	}
	return ts[:i]
}

// severityOf is critical for the classes where the service is down, warning for the resource classes.
func severityOf(class string) string {
	switch class {
	case event.ClassCPUSaturated, event.ClassMemoryPressure, event.ClassMemoryLeak:
		return event.SeverityWarning
	}
	return event.SeverityCritical
}

// open opens an incident of class for the container, or, when one is open, refreshes it and re-alerts
// once the re-alert interval has passed. Opening crash_loop closes the container's crashed and
// oom_killed incidents: it is their escalation.
func (g *engine) open(en *entry, class string, at, now time.Time, anomalies []event.Anomaly) []Notice {
	key := event.IncidentKey(g.cfg.Host, en.name, class)
	if inc := g.incidents[key]; inc != nil {
		inc.lastFired = at
		inc.id = en.id
		var out []Notice
		if inc.clear {
			// A relapse: the condition came back after it cleared (typically after hemostat's action). The
			// same incident continues.
			inc.clear = false
			inc.relapses++
			n := g.notice(inc, NoticeCondition, now)
			n.Condition, n.Relapse, n.Relapses, n.EventTime = schema.ConditionFailing, true, inc.relapses, at.UTC()
			if !en.startedAt.IsZero() && at.After(en.startedAt) {
				n.RelapseAfter = at.Sub(en.startedAt)
			}
			out = append(out, n)
		}
		if now.Sub(inc.lastAlertAt) < g.cfg.Realert {
			return out
		}
		return append(out, g.alert(en, inc, NoticeRealerted, now, now, anomalies, true))
	}
	inc := &incident{key: key, class: class, severity: severityOf(class), name: en.name, id: en.id,
		openedAt: now, lastFired: at}
	g.incidents[key] = inc
	var out []Notice
	escalation := false
	if class == event.ClassCrashLoop {
		for _, c := range []string{event.ClassCrashed, event.ClassOOMKilled} {
			if old := g.incidents[event.IncidentKey(g.cfg.Host, en.name, c)]; old != nil {
				escalation = true
				out = append(out, g.close(old, NoticeClosed, now, "escalated to "+event.ClassCrashLoop))
			}
		}
	}
	return append([]Notice{g.alert(en, inc, NoticeOpened, at, now, anomalies, escalation)}, out...)
}

// alert builds the health_alert notice of an incident.
func (g *engine) alert(en *entry, inc *incident, kind string, at, now time.Time, anomalies []event.Anomaly, escalation bool) Notice {
	p := &event.ContainerUnhealthy{
		ContainerID: en.id, ContainerName: en.name, Image: en.image, Status: en.state, Class: inc.class,
		Severity: inc.severity, Metrics: en.last.Metrics, Anomalies: anomalies, HealthStatus: en.health,
		ExitCode: en.exitCode, RestartCount: en.restartCount, EventTime: at.UTC(), OOMKilled: en.oomKilled,
		Labels: en.labels, Escalation: escalation,
	}
	if p.Anomalies == nil {
		p.Anomalies = []event.Anomaly{}
	}
	if p.Status == "" {
		p.Status = "unknown"
	}
	env, err := event.New("monitor", g.cfg.Host, inc.key, "", p)
	n := Notice{Kind: kind, Time: now, Incident: inc.key, Class: inc.class, Severity: inc.severity, Host: g.cfg.Host,
		Container: en.name, ContainerID: en.id, OpenedAt: inc.openedAt, EventTime: at.UTC(), Alert: p}
	if err == nil {
		inc.alertID = env.ID
		n.Envelope = &env
	}
	inc.lastAlertAt = now
	return n
}

// notice is a notice of kind about an incident.
func (g *engine) notice(inc *incident, kind string, now time.Time) Notice {
	return Notice{Kind: kind, Time: now, Incident: inc.key, Class: inc.class, Severity: inc.severity, Host: g.cfg.Host,
		Container: inc.name, ContainerID: inc.id, OpenedAt: inc.openedAt}
}

// close removes an incident; a cleared one carries a container_recovered envelope.
func (g *engine) close(inc *incident, kind string, now time.Time, reason string) Notice {
	delete(g.incidents, inc.key)
	n := g.notice(inc, kind, now)
	n.Reason = reason
	if kind == NoticeCleared {
		p := &event.ContainerRecovered{ContainerID: inc.id, ContainerName: inc.name, Class: inc.class, OpenedAt: inc.openedAt.UTC()}
		if env, err := event.New("monitor", g.cfg.Host, inc.key, inc.alertID, p); err == nil {
			n.Envelope = &env
		}
	}
	return n
}

// remove drops a destroyed container and closes its incidents.
func (g *engine) remove(en *entry, now time.Time, reason string) []Notice {
	delete(g.byID, en.id)
	if g.byName[en.name] == en {
		delete(g.byName, en.name)
	}
	var out []Notice
	for _, inc := range g.sortedIncidents() {
		if inc.name == en.name {
			out = append(out, g.close(inc, NoticeClosed, now, reason))
		}
	}
	return out
}

func (g *engine) sortedIncidents() []*incident {
	out := make([]*incident, 0, len(g.incidents))
	for _, inc := range g.incidents {
		out = append(out, inc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// onDetails applies an inspect result. seq is the entry's event counter when the inspect was asked for:
// when events arrived since, the dynamic state in d may be older than the table's, so only the static
// fields are taken and another inspect is asked for. catchUp checks the result for failures the events
// did not report (the monitor was down, or events were lost).
func (g *engine) onDetails(d docker.Details, seq int, catchUp bool, now time.Time) []Notice {
	en := g.byID[d.ID]
	if en == nil {
		en = g.newEntry(d.ID, d.Name, d.Image, d.Labels, now)
		seq = en.seq
	}
	g.rename(en, d.Name)
	en.image = d.Image
	en.labels = d.Labels
	en.watched = g.cfg.Watch.Watched(en.name, en.labels)
	en.healthcheck = d.Healthcheck
	en.cpuLimit = docker.Details{NanoCPUs: d.NanoCPUs, CPUQuota: d.CPUQuota, CPUPeriod: d.CPUPeriod}.CPULimit()
	en.restartCount = d.RestartCount
	en.inspected = true
	if seq != en.seq {
		g.requestInspect(en, catchUp)
		return nil
	}
	en.state = d.State
	en.health = d.Health
	en.exitCode = d.ExitCode
	en.oomKilled = d.OOMKilled
	en.pid = d.Pid
	if !d.StartedAt.IsZero() && d.StartedAt.After(en.startedAt) {
		if !en.startedAt.IsZero() {
			en.resetSamples()
		}
		en.startedAt = d.StartedAt
	}
	en.finishedAt = d.FinishedAt
	en.updatedAt = now
	if !catchUp || !en.watched {
		return nil
	}
	return g.catchUp(en, now)
}

// catchUp opens the incidents an inspect shows that no event reported.
func (g *engine) catchUp(en *entry, now time.Time) []Notice {
	switch en.state {
	case "exited", "dead":
		fin := en.finishedAt
		if fin.IsZero() || !fin.After(en.catchUpDone) || now.Sub(fin) > g.cfg.CatchUp {
			return nil
		}
		en.catchUpDone = fin
		if !en.lastDie.IsZero() && absDur(en.lastDie.Sub(fin)) < 2*time.Second {
			return nil // the die event was handled
		}
		if !en.lastKill.IsZero() && !fin.Before(en.lastKill) && fin.Sub(en.lastKill) <= g.cfg.KillWindow {
			return nil // a stop or kill preceded it; its die event is on its way
		}
		switch {
		case en.oomKilled:
			return g.open(en, event.ClassOOMKilled, fin, now, []event.Anomaly{{Type: "oom_kill", Severity: event.SeverityCritical, Actual: 1}})
		case en.exitCode != 0 && en.exitCode != sigkillExit && en.exitCode != 143:
			// 137 and 143 are what docker stop and kill leave: without the events, assume deliberate.
			return g.open(en, event.ClassCrashed, fin, now, []event.Anomaly{{Type: "exit_code", Severity: event.SeverityCritical, Actual: float64(en.exitCode)}})
		}
	case "running":
		if en.health == "unhealthy" && !g.inStartPeriod(en, now) {
			return g.openUnhealthy(en, now, now)
		}
	}
	return nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// onList reconciles the table with a full list taken at listedAt: new containers are added, containers
// whose state or health differs are inspected and checked, containers gone are removed.
func (g *engine) onList(list []docker.Container, listedAt, now time.Time) []Notice {
	seen := make(map[string]bool, len(list))
	for _, c := range list {
		seen[c.ID] = true
		en := g.byID[c.ID]
		if en == nil {
			en = g.newEntry(c.ID, c.Name, c.Image, c.Labels, now)
			en.state, en.health = c.State, c.Health
			g.requestInspect(en, true)
			continue
		}
		g.rename(en, c.Name)
		if !en.inspected {
			en.labels = c.Labels
			en.watched = g.cfg.Watch.Watched(en.name, en.labels)
		}
		if en.state != c.State || en.health != c.Health || !en.inspected {
			g.requestInspect(en, true)
			if !en.watched {
				en.state, en.health = c.State, c.Health
			}
		}
	}
	var out []Notice
	for _, en := range g.sortedEntries() {
		if !seen[en.id] && en.firstSeen.Before(listedAt) {
			out = append(out, g.remove(en, now, "container removed")...)
		}
	}
	g.listed = true
	return out
}

func (g *engine) sortedEntries() []*entry {
	out := make([]*entry, 0, len(g.byID))
	for _, en := range g.byID {
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// running returns the watched running containers to sample, by name.
func (g *engine) running() []ContainerRef {
	var out []ContainerRef
	for _, en := range g.byID {
		if en.watched && en.state == "running" {
			out = append(out, ContainerRef{ID: en.id, Name: en.name, Pid: en.pid})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *engine) thresholds(en *entry) (cpu, mem float64) {
	cpu, mem = g.cfg.CPUThreshold, g.cfg.MemoryThreshold
	if v, ok := parsePercent(en.labels[container.LabelCPUThreshold]); ok {
		cpu = v
	}
	if v, ok := parsePercent(en.labels[container.LabelMemoryThreshold]); ok {
		mem = v
	}
	return cpu, mem
}

func pushCapped[T any](s []T, v T, n int) []T {
	s = append(s, v)
	if len(s) > n {
		s = slices.Delete(s, 0, len(s)-n)
	}
	return s
}

// onSample applies one sample and decides the resource classes (cpu_saturated, memory_pressure,
// memory_leak).
func (g *engine) onSample(id string, s container.Sample, now time.Time) []Notice {
	en := g.byID[id]
	if en == nil || en.state != "running" {
		return nil
	}
	cpu := math.NaN()
	if en.haveLast {
		cpu = cpuPercent(en.prev, s, en.cpuLimit, g.cfg.HostCores)
	}
	en.prev = s
	if !math.IsNaN(cpu) {
		s.Metrics.CPUPercent = math.Round(cpu*100) / 100
	}
	en.last, en.haveLast = s, true
	k := max(g.cfg.K, 1)
	en.cpuVals = pushCapped(en.cpuVals, cpu, k+1)
	en.hist.CPU = pushCapped(en.hist.CPU, s.Metrics.CPUPercent, g.cfg.HistoryLen)
	en.hist.Memory = pushCapped(en.hist.Memory, math.Round(s.Metrics.MemoryPercent*100)/100, g.cfg.HistoryLen)
	limit := float64(s.Metrics.MemoryLimit)
	memPct := math.NaN()
	if limit > 0 {
		memPct = s.Metrics.MemoryPercent
		en.ws = pushCapped(en.ws, point{T: s.Time, V: float64(s.Metrics.MemoryUsage)}, g.cfg.LeakWindow)
	}
	en.memVals = pushCapped(en.memVals, memPct, k+1)
	if !en.watched {
		return nil
	}
	cpuThr, memThr := g.thresholds(en)
	var out []Notice
	switch {
	case overThreshold(en.cpuVals, cpuThr, k):
		en.cpuClearSince = time.Time{}
		out = append(out, g.open(en, event.ClassCPUSaturated, s.Time, now,
			[]event.Anomaly{{Type: "cpu_percent", Severity: event.SeverityWarning, Threshold: cpuThr, Actual: s.Metrics.CPUPercent}})...)
	case !math.IsNaN(cpu) && cpu > cpuThr:
		en.cpuClearSince = time.Time{}
	case !math.IsNaN(cpu) && en.cpuClearSince.IsZero():
		en.cpuClearSince = s.Time
	}
	switch {
	case overThreshold(en.memVals, memThr, k):
		en.memClearSince = time.Time{}
		out = append(out, g.open(en, event.ClassMemoryPressure, s.Time, now,
			[]event.Anomaly{{Type: "memory_percent", Severity: event.SeverityWarning, Threshold: memThr, Actual: math.Round(memPct*100) / 100}})...)
	case !math.IsNaN(memPct) && memPct > memThr:
		en.memClearSince = time.Time{}
	case en.memClearSince.IsZero():
		en.memClearSince = s.Time
	}
	en.leak = detectLeak(en.ws, limit, g.cfg.Leak)
	if en.leak.Leak {
		en.leakClear = time.Time{}
		out = append(out, g.open(en, event.ClassMemoryLeak, s.Time, now,
			[]event.Anomaly{{Type: "memory_leak", Severity: event.SeverityWarning, Threshold: g.cfg.Leak.Horizon.Seconds(),
				Actual: math.Round(en.leak.TimeToLimit.Seconds())}})...)
	} else if en.leakClear.IsZero() {
		en.leakClear = s.Time
	}
	return out
}

// clearState says whether an incident's condition is clear and since when; closeReason is set when the
// incident should close without a recovery (the container is not running for a reason that is no
// failure).
func (g *engine) clearState(inc *incident, en *entry, now time.Time) (clear bool, since time.Time, closeReason string) {
	if en == nil {
		return false, time.Time{}, ""
	}
	running := en.state == "running"
	if !running && en.lastDieKilled && (en.state == "exited" || en.state == "dead") && en.lastDie.After(inc.lastFired) {
		switch {
		case en.kill == killChecking && now.Sub(en.lastDie) < ownCheckWait:
			return false, time.Time{}, "" // asking hemostat's ledger whose stop it was
		case en.kill == killOwn && en.killAction == event.ActionStop:
			return false, time.Time{}, "container stopped by hemostat's " + event.ActionStop + " action"
		case en.kill == killOwn:
			return false, time.Time{}, "" // hemostat's own restart: it comes back, or the responder says it did not
		}
		return false, time.Time{}, "container stopped by a client"
	}
	later := func(a, b time.Time) time.Time {
		if a.After(b) {
			return a
		}
		return b
	}
	switch inc.class {
	case event.ClassCrashed, event.ClassOOMKilled:
		if back, since := en.back(); running && back {
			return true, later(since, inc.lastFired), ""
		}
	case event.ClassCrashLoop:
		recent := 0
		for _, d := range en.dies {
			if now.Sub(d) <= g.cfg.LoopWindow {
				recent++
			}
		}
		if running && recent < g.cfg.LoopCount {
			return true, later(en.startedAt, inc.lastFired), ""
		}
	case event.ClassUnhealthy:
		switch {
		case running && en.health == "healthy":
			return true, later(en.healthyAt, inc.lastFired), ""
		case running && en.healthcheck == nil && en.inspected:
			return true, later(en.startedAt, inc.lastFired), ""
		}
	case event.ClassCPUSaturated, event.ClassMemoryPressure, event.ClassMemoryLeak:
		if !running {
			return false, time.Time{}, "container not running"
		}
		s := map[string]time.Time{event.ClassCPUSaturated: en.cpuClearSince, event.ClassMemoryPressure: en.memClearSince,
			event.ClassMemoryLeak: en.leakClear}[inc.class]
		if back, since := en.back(); !s.IsZero() && back {
			return true, later(s, since), ""
		}
	}
	return false, time.Time{}, ""
}

// back reports whether a running container is back as the responder's verification means it, and since
// when: running, and healthy when it has a healthcheck. A container whose healthcheck has not passed since
// its start is not recovered yet: counting the hysteresis from its start would close the incident as
// recovered while hemostat's action still waits for the first probe (30 s apart by Docker's default), and
// before the action's attempt is counted.
func (en *entry) back() (bool, time.Time) {
	if en.healthcheck == nil {
		return en.health != "unhealthy", en.startedAt
	}
	if en.health != "healthy" {
		return false, time.Time{}
	}
	if en.healthyAt.After(en.startedAt) {
		return true, en.healthyAt
	}
	return true, en.startedAt
}

// onTick clears incidents whose condition stayed clear for the hysteresis, re-alerts those still failing
// after the re-alert interval, and closes those of containers that are gone.
func (g *engine) onTick(now time.Time) []Notice {
	var out []Notice
	for _, id := range slices.Sorted(maps.Keys(g.pendingDies)) {
		if en := g.byID[id]; en == nil {
			delete(g.pendingDies, id)
		} else if now.Sub(g.pendingDies[id]) >= oomAfterDie {
			out = append(out, g.flushDie(en, now)...)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(g.heldHealth)) { // sorted: notices in a stable order
		en := g.byID[id]
		if en != nil && g.inStartPeriod(en, now) {
			continue
		}
		delete(g.heldHealth, id)
		if en == nil || !en.watched || en.state != "running" || en.health != "unhealthy" {
			continue
		}
		if _, open := g.incidents[event.IncidentKey(g.cfg.Host, en.name, event.ClassUnhealthy)]; !open {
			out = append(out, g.openUnhealthy(en, now, now)...)
		}
	}
	for _, inc := range g.sortedIncidents() {
		en := g.byName[inc.name]
		if en == nil {
			if g.listed {
				out = append(out, g.close(inc, NoticeClosed, now, "container removed"))
			}
			continue
		}
		clear, since, reason := g.clearState(inc, en, now)
		switch {
		case reason != "":
			out = append(out, g.close(inc, NoticeClosed, now, reason))
		case clear && now.Sub(since) >= g.cfg.Hysteresis:
			out = append(out, g.close(inc, NoticeCleared, now, "condition clear for "+g.cfg.Hysteresis.String()))
		case clear && !inc.clear:
			// Clear, not yet for the hysteresis: the container is not failing now, so it leaves the blast
			// radius; a relapse before the hysteresis ends continues this incident.
			inc.clear = true
			n := g.notice(inc, NoticeCondition, now)
			n.Condition, n.EventTime = schema.ConditionClear, since.UTC()
			out = append(out, n)
		case !clear && now.Sub(inc.lastAlertAt) >= g.cfg.Realert:
			out = append(out, g.alert(en, inc, NoticeRealerted, now, now, nil, true))
		}
	}
	return out
}

// load resumes incidents a previous run left open, so a restart does not alert again.
func (g *engine) load(list []schema.Incident) {
	for _, in := range list {
		if in.Class == "" || in.Container == "" {
			continue
		}
		g.incidents[in.Key] = &incident{key: in.Key, class: in.Class, severity: in.Severity, name: in.Container,
			id: in.ContainerID, openedAt: in.OpenedAt, lastAlertAt: in.LastAlertAt, lastFired: in.OpenedAt, alertID: in.AlertID,
			clear: in.Condition == schema.ConditionClear, relapses: in.Relapses}
	}
}

// summaries returns the table as container summaries, by "host/name".
func (g *engine) summaries(now time.Time) map[string]container.Summary {
	open := map[string][]string{}
	for _, inc := range g.incidents {
		open[inc.name] = append(open[inc.name], inc.class)
	}
	out := make(map[string]container.Summary, len(g.byID))
	for _, en := range g.byID {
		if en.name == "" {
			continue
		}
		cls := open[en.name]
		sort.Strings(cls)
		mode := en.labels[container.LabelMode]
		if mode == "" {
			mode = container.ModeAuto
		}
		s := container.Summary{ID: en.id, Name: en.name, Host: g.cfg.Host, Image: en.image, State: en.state,
			Health: en.health, ExitCode: en.exitCode, RestartCount: en.restartCount, OOMKilled: en.oomKilled,
			StartedAt: en.startedAt, Labels: en.labels, Mode: mode, Watched: en.watched, Incidents: cls, UpdatedAt: en.updatedAt}
		out[s.Target()] = s
	}
	return out
}
