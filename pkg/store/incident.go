package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// AnalysisTTL is how long an incident hash lives when the analyzer created it (normally the monitor
// creates it and expires it 7 days after close).
const AnalysisTTL = 7 * 24 * time.Hour

// OOMKey is the sorted set of a container's recent OOM-kill alerts (member alert id, score event time in
// unix ms), which tells a first OOM kill from a repeat.
func OOMKey(host, name string) string { return "hemostat:oom:{" + event.Target(host, name) + "}" }

// OOMKill is an OOM-kill alert to record while reading the incident.
type OOMKill struct {
	Host, Name string
	AlertID    string
	At         time.Time
	Window     time.Duration
}

// AnalysisState is what the analyzer reads before it decides one alert.
type AnalysisState struct {
	Incident   map[string]string // the incident hash, empty when it does not exist
	OOMRepeats int               // other OOM kills of the container within the window (OOMKill given)
}

// analysisOOMScript records one OOM kill and counts the others within the window before it. Re-running it for
// the same alert (a redelivery) gives the same answer.
// KEYS[1] oom set; ARGV[1] alert id, ARGV[2] time ms, ARGV[3] window ms.
var analysisOOMScript = redis.NewScript(`
local at = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], at, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (at - 2 * w))
local n = redis.call('ZCOUNT', KEYS[1], at - w, at) - 1
redis.call('PEXPIRE', KEYS[1], 2 * w)
return n
`)

// BeginAnalysis reads the incident hash and, for an OOM kill, records it and counts the repeats, in one
// round trip.
func (c *Client) BeginAnalysis(ctx context.Context, incident string, oom *OOMKill) (AnalysisState, error) {
	pipe := c.rdb.Pipeline()
	h := pipe.HGetAll(ctx, event.IncidentHashKey(incident))
	var n *redis.Cmd
	if oom != nil {
		w := oom.Window.Milliseconds()
		if w <= 0 {
			w = time.Hour.Milliseconds()
		}
		n = analysisOOMScript.Eval(ctx, pipe, []string{OOMKey(oom.Host, oom.Name)}, oom.AlertID, oom.At.UnixMilli(), w)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return AnalysisState{}, fmt.Errorf("read incident %s: %w", incident, err)
	}
	st := AnalysisState{Incident: h.Val()}
	if n != nil {
		v, err := n.Int()
		if err != nil {
			return AnalysisState{}, fmt.Errorf("count oom kills of %s: %w", incident, err)
		}
		st.OOMRepeats = max(v, 0)
	}
	return st, nil
}

// analysisRecordScript writes fields into an incident hash, expiring it only if this call created it (the
// monitor owns the lifetime of the incidents it opened). KEYS[1] hash; ARGV[1] ttl ms, then field, value...
var analysisRecordScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return existed
`)

// RecordAnalysis writes the analyzer's fields (decision, verdict, enrichment) into the incident hash.
func (c *Client) RecordAnalysis(ctx context.Context, incident string, fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	if err := analysisRecordScript.Run(ctx, c.rdb, []string{event.IncidentHashKey(incident)}, recordArgs(fields)...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("record analysis of %s: %w", incident, err)
	}
	return nil
}

func recordArgs(fields map[string]string) []any {
	args := make([]any, 0, 1+2*len(fields))
	args = append(args, AnalysisTTL.Milliseconds())
	for k, v := range fields {
		args = append(args, k, v)
	}
	return args
}

// analysisClaimScript takes the right to call the LLM for an incident once: it fails when a call finished for
// this opening of the incident, or one started less than stale ago.
// KEYS[1] hash; ARGV[1] now ms, ARGV[2] stale ms, ARGV[3] opened_at of this opening, ARGV[4] ttl ms.
var analysisClaimScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'llm_done_at', 'llm_started_ms', 'llm_opened_at')
local now = tonumber(ARGV[1])
if f[3] == ARGV[3] or (f[3] == false and ARGV[3] == '') then
  if f[1] then return 0 end
  if f[2] and tonumber(f[2]) > now - tonumber(ARGV[2]) then return 0 end
end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], 'llm_started_ms', ARGV[1], 'llm_opened_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'llm_done_at')
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
`)

// ClaimLLM reports whether this caller may run the one LLM call of an incident's opening (openedAt is
// the hash's opened_at). A claim older than stale is taken over: its holder died mid-call.
func (c *Client) ClaimLLM(ctx context.Context, incident, openedAt string, now time.Time, stale time.Duration) (bool, error) {
	n, err := analysisClaimScript.Run(ctx, c.rdb, []string{event.IncidentHashKey(incident)},
		now.UnixMilli(), stale.Milliseconds(), openedAt, AnalysisTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("claim llm call for %s: %w", incident, err)
	}
	return n == 1, nil
}

// ContainerState is the monitor's and responder's state of one container, for an LLM's context.
type ContainerState struct {
	Sample  []byte            // JSON container.Sample, nil when unknown
	History []byte            // JSON container.History, nil when unknown
	Ledger  map[string]string // the safety ledger, empty when the container was never acted on
}

// AnalysisContext reads a container's latest sample, its history and its ledger, in one round trip.
func (c *Client) AnalysisContext(ctx context.Context, host, name string) (ContainerState, error) {
	pipe := c.rdb.Pipeline()
	stats := pipe.HMGet(ctx, event.StatsKey(host, name), "sample", "history")
	ledger := pipe.HGetAll(ctx, event.LedgerKey(host, name))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return ContainerState{}, fmt.Errorf("read state of %s: %w", event.Target(host, name), err)
	}
	var st ContainerState
	if v := stats.Val(); len(v) == 2 {
		if s, ok := v[0].(string); ok {
			st.Sample = []byte(s)
		}
		if s, ok := v[1].(string); ok {
			st.History = []byte(s)
		}
	}
	st.Ledger = ledger.Val()
	return st, nil
}

// analysisRecordManyScript is analysisRecordScript over several incidents in one call, so a group commit
// of many answers pays for one script run. KEYS are the hashes; ARGV[1] ttl ms, then for each key the
// number of field/value pairs followed by the pairs.
var analysisRecordManyScript = redis.NewScript(`
local ttl = ARGV[1]
local at = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  if n > 0 then
    local existed = redis.call('EXISTS', KEYS[k])
    redis.call('HSET', KEYS[k], unpack(ARGV, at, at + 2 * n - 1))
    if existed == 0 then redis.call('PEXPIRE', KEYS[k], ttl) end
  end
  at = at + 2 * n
end
return #KEYS
`)

// AnalysisRecord is one incident's analysis fields, for RecordAnalysesOp.
type AnalysisRecord struct {
	Incident string
	Fields   map[string]string
}

// RecordAnalysesOp returns RecordAnalysis for several incidents as one script run for a pipeline
// (bus.PublishManyWith), so the analyzer's group commit publishes its answers and records them in one
// round trip. The same semantics: a hash the monitor created keeps its lifetime, an orphan expires. The
// script touches several incidents' keys: a single Redis or Sentinel, not Cluster.
func RecordAnalysesOp(recs []AnalysisRecord) func(context.Context, redis.Pipeliner) {
	keys := make([]string, 0, len(recs))
	args := []any{AnalysisTTL.Milliseconds()}
	for _, r := range recs {
		keys = append(keys, event.IncidentHashKey(r.Incident))
		args = append(args, len(r.Fields))
		for k, v := range r.Fields {
			args = append(args, k, v)
		}
	}
	return func(ctx context.Context, p redis.Pipeliner) {
		if len(keys) > 0 {
			analysisRecordManyScript.Eval(ctx, p, keys, args...)
		}
	}
}
