package schema

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
)

// EncodeContainer is the value of a container's field in its host's ContainersKey.
func EncodeContainer(s container.Summary) ([]byte, error) { return json.Marshal(s) }

// DecodeContainer reads a container's value in its host's ContainersKey. A summary written before the
// watched flag existed counts as watched.
func DecodeContainer(b []byte) (container.Summary, error) {
	var s struct {
		container.Summary
		Watched *bool `json:"watched"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return container.Summary{}, err
	}
	out := s.Summary
	out.Watched = s.Watched == nil || *s.Watched
	return out, nil
}

// Stats is a container's latest sample and recent history, the hash at StatsKey.
type Stats struct {
	Sample  *container.Sample // nil when the hash has none
	History container.History
}

// Stats hash fields.
const (
	FieldSample  = "sample"
	FieldHistory = "history"
)

// Encode returns the stats hash's fields.
func (s Stats) Encode() (map[string]string, error) {
	h, err := json.Marshal(s.History)
	if err != nil {
		return nil, err
	}
	f := map[string]string{FieldHistory: string(h)}
	if s.Sample != nil {
		b, err := json.Marshal(s.Sample)
		if err != nil {
			return nil, err
		}
		f[FieldSample] = string(b)
	}
	return f, nil
}

// DecodeStats reads a stats hash; a field that does not decode is reported in err and left empty.
func DecodeStats(m map[string]string) (Stats, error) {
	var s Stats
	d := decoder{m: m}
	if v, ok := m[FieldSample]; ok {
		var smp container.Sample
		if err := json.Unmarshal([]byte(v), &smp); err != nil {
			d.fail(FieldSample, err)
		} else {
			s.Sample = &smp
		}
	}
	d.json(FieldHistory, &s.History)
	return s, d.err()
}

// Agent is one agent instance's heartbeat, the hash at AgentKey, expiring unless renewed.
type Agent struct {
	Kind          string
	Instance      string
	Version       string
	Host          string // the Docker host it serves or runs on
	StartedAt     time.Time
	LastHeartbeat time.Time
	Mode          string // respond: auto or dry-run
	Listen        string // export: the metrics address
	LLM           string // analyze: the LLM method, or rules
	LLMMode       string // analyze: advisory or decide
	Policy        string // respond: JSON of the policy in force, so views explain with it
}

// Agent hash fields.
const (
	FieldKind          = "kind"
	FieldInstance      = "instance"
	FieldVersion       = "version"
	FieldAgentHost     = "host"
	FieldStartedAt     = "started_at"
	FieldLastHeartbeat = "last_heartbeat"
	FieldMode          = "mode"
	FieldListen        = "listen"
	FieldLLM           = "llm"
	FieldLLMMode       = "llm_mode"
	FieldPolicy        = "policy"
)

// Encode returns the heartbeat's fields; empty optional ones are omitted.
func (a Agent) Encode() map[string]string {
	f := map[string]string{FieldKind: a.Kind, FieldInstance: a.Instance, FieldVersion: a.Version,
		FieldStartedAt: FormatTime(a.StartedAt), FieldLastHeartbeat: FormatTime(a.LastHeartbeat)}
	for k, v := range map[string]string{FieldAgentHost: a.Host, FieldMode: a.Mode, FieldListen: a.Listen,
		FieldLLM: a.LLM, FieldLLMMode: a.LLMMode, FieldPolicy: a.Policy} {
		if v != "" {
			f[k] = v
		}
	}
	return f
}

// DecodeAgent reads a heartbeat hash found at key.
func DecodeAgent(key string, m map[string]string) (Agent, error) {
	d := decoder{m: m}
	kind, inst, _ := AgentOf(key)
	a := Agent{Kind: m[FieldKind], Instance: m[FieldInstance], Version: m[FieldVersion], Host: m[FieldAgentHost],
		StartedAt: d.time(FieldStartedAt), LastHeartbeat: d.time(FieldLastHeartbeat), Mode: m[FieldMode],
		Listen: m[FieldListen], LLM: m[FieldLLM], LLMMode: m[FieldLLMMode], Policy: m[FieldPolicy]}
	if a.Kind == "" {
		a.Kind = kind
	}
	if a.Instance == "" {
		a.Instance = inst
	}
	return a, d.err()
}

// HostStatus is a host monitor's figures, the hash at HostKey, rewritten after every round.
type HostStatus struct {
	Host           string
	Sampler        string
	Workers        int
	RoundSeconds   float64
	Rounds         int64
	RoundsSkipped  int64
	SampleErrors   int64
	Events         int64
	AlertsBuffered int
	AlertsDropped  int64
	Containers     int
	Running        int
	Watched        int // the blast radius's denominator
	UpdatedAt      time.Time
}

// HostStatus hash fields.
const (
	FieldHostName       = "host"
	FieldSampler        = "sampler"
	FieldWorkers        = "workers"
	FieldRoundSeconds   = "round_seconds"
	FieldRounds         = "rounds_total"
	FieldRoundsSkipped  = "rounds_skipped_total"
	FieldSampleErrors   = "sample_errors_total"
	FieldEvents         = "events_total"
	FieldAlertsBuffered = "alerts_buffered"
	FieldAlertsDropped  = "alerts_dropped_total"
	FieldContainers     = "containers"
	FieldRunning        = "running"
	FieldWatched        = "watched"
	FieldUpdatedAt      = "updated_at"
)

// Encode returns the hash's fields.
func (h HostStatus) Encode() map[string]string {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	return map[string]string{
		FieldHostName: h.Host, FieldSampler: h.Sampler, FieldWorkers: i(int64(h.Workers)),
		FieldRoundSeconds: strconv.FormatFloat(h.RoundSeconds, 'f', 6, 64), FieldRounds: i(h.Rounds),
		FieldRoundsSkipped: i(h.RoundsSkipped), FieldSampleErrors: i(h.SampleErrors), FieldEvents: i(h.Events),
		FieldAlertsBuffered: i(int64(h.AlertsBuffered)), FieldAlertsDropped: i(h.AlertsDropped),
		FieldContainers: i(int64(h.Containers)), FieldRunning: i(int64(h.Running)), FieldWatched: i(int64(h.Watched)),
		FieldUpdatedAt: FormatTime(h.UpdatedAt),
	}
}

// DecodeHostStatus reads a host's figures.
func DecodeHostStatus(m map[string]string) (HostStatus, error) {
	d := decoder{m: m}
	return HostStatus{
		Host: m[FieldHostName], Sampler: m[FieldSampler], Workers: int(d.int(FieldWorkers)),
		RoundSeconds: d.float(FieldRoundSeconds), Rounds: d.int(FieldRounds), RoundsSkipped: d.int(FieldRoundsSkipped),
		SampleErrors: d.int(FieldSampleErrors), Events: d.int(FieldEvents), AlertsBuffered: int(d.int(FieldAlertsBuffered)),
		AlertsDropped: d.int(FieldAlertsDropped), Containers: int(d.int(FieldContainers)), Running: int(d.int(FieldRunning)),
		Watched: int(d.int(FieldWatched)), UpdatedAt: d.time(FieldUpdatedAt),
	}, d.err()
}

// AuditHead is the newest entry of the audit chain, the hash at KeyAuditHead, so a truncated tail is
// detected too.
type AuditHead struct {
	Hash string
	Seq  int64
	ID   string // stream id
}

// AuditHead hash fields, and the fields of the audit stream's and its index streams' entries.
const (
	FieldHeadHash   = "hash"
	FieldHeadSeq    = "seq"
	FieldHeadID     = "id"
	AuditField      = "entry" // audit stream entries: the JSON of an audit entry
	AuditIndexField = "id"    // index stream entries: an audit stream id
)

// KeyAuditAnchor is the hash that anchors a trimmed audit chain (AuditAnchor): the seq and hash of the
// last entry removed, which the first entry kept chains to.
const KeyAuditAnchor = Prefix + "audit:anchor"

// AuditAnchor says where a trimmed chain starts: the first entry kept has seq Seq+1 and chains to Hash.
type AuditAnchor struct {
	Seq       int64  // seq of the last entry removed
	Hash      string // its hash
	ID        string // stream id of the first entry kept
	TrimmedAt time.Time
}

// AuditAnchor hash fields.
const (
	FieldAnchorSeq       = "seq"
	FieldAnchorHash      = "hash"
	FieldAnchorID        = "first_id"
	FieldAnchorTrimmedAt = "trimmed_at"
)

// DecodeAuditAnchor reads the anchor hash (zero when the trail was never trimmed).
func DecodeAuditAnchor(m map[string]string) (AuditAnchor, error) {
	d := decoder{m: m}
	return AuditAnchor{Seq: d.int(FieldAnchorSeq), Hash: m[FieldAnchorHash], ID: m[FieldAnchorID],
		TrimmedAt: d.time(FieldAnchorTrimmedAt)}, d.err()
}

// DecodeAuditHead reads the head hash (zero when the trail is empty).
func DecodeAuditHead(m map[string]string) (AuditHead, error) {
	d := decoder{m: m}
	return AuditHead{Hash: m[FieldHeadHash], Seq: d.int(FieldHeadSeq), ID: m[FieldHeadID]}, d.err()
}

// Thread is an incident's Slack thread, the hash at NotifyThreadKey: the channel and ts of its first
// message.
type Thread struct {
	Channel string
	TS      string
}

// Thread hash fields.
const (
	FieldThreadChannel = "channel"
	FieldThreadTS      = "ts"
)

// Encode returns the thread's fields.
func (t Thread) Encode() map[string]string {
	return map[string]string{FieldThreadChannel: t.Channel, FieldThreadTS: t.TS}
}

// DecodeThread reads a thread hash.
func DecodeThread(m map[string]string) Thread {
	return Thread{Channel: m[FieldThreadChannel], TS: m[FieldThreadTS]}
}

// NotifyCounter names a field of KeyNotifyMetrics: a counter and its label, "<counter>:<label>".
type NotifyCounter struct {
	Counter string // one of the Counter* names
	Label   string // a sink, an incident state or a suppression reason
}

// Notification counters.
const (
	CounterSent         = "sent"         // by sink
	CounterFailed       = "failed"       // by sink
	CounterRetried      = "retried"      // by sink
	CounterDeduplicated = "deduplicated" // by incident state
	CounterSuppressed   = "suppressed"   // by reason
)

// Field is the counter's field name.
func (c NotifyCounter) Field() string { return c.Counter + ":" + c.Label }

// ParseNotifyCounter reads a field name of KeyNotifyMetrics.
func ParseNotifyCounter(field string) (NotifyCounter, error) {
	c, l, ok := strings.Cut(field, ":")
	if !ok || c == "" {
		return NotifyCounter{}, fmt.Errorf("notification counter %q: want counter:label", field)
	}
	return NotifyCounter{Counter: c, Label: l}, nil
}

// BusRejection names a field of KeyBusRejected: entries of a stream that a consumer group refused, for
// one reason (pkg/sign's reasons, stale, replayed).
type BusRejection struct {
	Stream string
	Group  string
	Reason string
}

// Field is the counter's field name, "<stream>|<group>|<reason>".
func (r BusRejection) Field() string { return r.Stream + "|" + r.Group + "|" + r.Reason }

// ParseBusRejection reads a field name of KeyBusRejected. A group's name may hold '|'; a stream's and a
// reason's do not.
func ParseBusRejection(field string) (BusRejection, error) {
	stream, rest, ok1 := strings.Cut(field, "|")
	i := strings.LastIndexByte(rest, '|')
	if !ok1 || i < 0 || stream == "" || i == len(rest)-1 {
		return BusRejection{}, fmt.Errorf("bus rejection counter %q: want stream|group|reason", field)
	}
	return BusRejection{Stream: stream, Group: rest[:i], Reason: rest[i+1:]}, nil
}

// StoredEvent is one entry of the hemostat:events:* lists, as the seed's views read them.
type StoredEvent struct {
	Timestamp string          `json:"timestamp"` // the event's time, RFC3339Nano
	EventType string          `json:"event_type"`
	Event     json.RawMessage `json:"event"` // the envelope
}

// NotifyFailure is one delivery that failed for good, kept in KeyNotifyFailed.
type NotifyFailure struct {
	Time     time.Time `json:"time"`
	Sink     string    `json:"sink"`
	Incident string    `json:"incident"`
	State    string    `json:"state"`
	EventID  string    `json:"event_id"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"` // already redacted by the caller
}

// Caps of the capped lists.
const (
	EventsCap       = 1000 // entries of each hemostat:events:* list
	NotifyFailedCap = 1000 // entries of KeyNotifyFailed
)
