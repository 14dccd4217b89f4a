package incidents

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/store/schema"
)

// OOMKill is an OOM-kill alert to record while reading the incident.
type OOMKill struct {
	Target  string // host/name
	AlertID string
	At      time.Time
	Window  time.Duration
}

// analysisOOMScript records one OOM kill and counts the others within the window before it. Re-running it
// for the same alert (a redelivery) gives the same answer.
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

// BeginAnalysis reads an incident and, for an OOM kill, records it and counts the container's other OOM
// kills within the window, in one round trip. found is false when the incident hash does not exist.
func (s *Store) BeginAnalysis(ctx context.Context, key string, oom *OOMKill) (in schema.Incident, found bool, oomRepeats int, err error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, schema.IncidentKey(key))
	var n *redis.Cmd
	if oom != nil {
		w := oom.Window.Milliseconds()
		if w <= 0 {
			w = time.Hour.Milliseconds()
		}
		n = analysisOOMScript.Eval(ctx, pipe, []string{schema.OOMKey(oom.Target)}, oom.AlertID, oom.At.UnixMilli(), w)
	}
	if _, err := pipe.Exec(ctx); err != nil && !isMissing(err) {
		return schema.Incident{Key: key}, false, 0, fmt.Errorf("read incident %s: %w", key, err)
	}
	m := h.Val()
	in, _ = schema.DecodeIncident(key, m) // a field that does not parse reads as zero
	if n != nil {
		v, err := n.Int()
		if err != nil {
			return in, len(m) > 0, 0, fmt.Errorf("count oom kills of %s: %w", key, err)
		}
		oomRepeats = max(v, 0)
	}
	return in, len(m) > 0, oomRepeats, nil
}

// recordScript writes fields into an incident hash, expiring it only if this call created it (the
// monitor owns the lifetime of the incidents it opened). KEYS[1] hash; ARGV[1] ttl ms, then field, value...
var recordScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return existed
`)

// RecordDecision writes the analyzer's decision into the incident.
func (s *Store) RecordDecision(ctx context.Context, key string, a schema.Analysis) error {
	return s.record(ctx, key, a.Encode())
}

// RecordLLM writes the end of an LLM call into the incident: the verdict with its root cause and evidence,
// or the error.
func (s *Store) RecordLLM(ctx context.Context, key string, l schema.LLMResult, rootCause string, evidence []string) error {
	return s.record(ctx, key, l.Encode(rootCause, evidence))
}

func (s *Store) record(ctx context.Context, key string, fields map[string]string) error {
	args := make([]any, 0, 1+2*len(fields))
	args = append(args, schema.AnalysisTTL.Milliseconds())
	for k, v := range fields {
		args = append(args, k, v)
	}
	if err := recordScript.Run(ctx, s.rdb, []string{schema.IncidentKey(key)}, args...).Err(); err != nil && !isMissing(err) {
		return fmt.Errorf("record analysis of %s: %w", key, err)
	}
	return nil
}

// claimScript takes the right to call the LLM for an incident once: it fails when a call finished for
// this opening of the incident, or one started less than stale ago.
// KEYS[1] hash; ARGV[1] now ms, ARGV[2] stale ms, ARGV[3] opened_at of this opening, ARGV[4] ttl ms.
var claimScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], '` + schema.FieldLLMDoneAt + `', '` + schema.FieldLLMStartedMS + `', '` + schema.FieldLLMOpenedAt + `')
local now = tonumber(ARGV[1])
if f[3] == ARGV[3] or (f[3] == false and ARGV[3] == '') then
  if f[1] and f[1] ~= '' then return 0 end
  if f[2] and tonumber(f[2]) > now - tonumber(ARGV[2]) then return 0 end
end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], '` + schema.FieldLLMStartedMS + `', ARGV[1], '` + schema.FieldLLMOpenedAt + `', ARGV[3])
redis.call('HDEL', KEYS[1], '` + schema.FieldLLMDoneAt + `')
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
`)

// ClaimLLM reports whether this caller may run the one LLM call of an incident's opening (openedAt is
// the stored opened_at, schema.FormatTime of Detection.OpenedAt). A claim older than stale is taken over:
// its holder died mid-call.
func (s *Store) ClaimLLM(ctx context.Context, key, openedAt string, now time.Time, stale time.Duration) (bool, error) {
	n, err := claimScript.Run(ctx, s.rdb, []string{schema.IncidentKey(key)},
		now.UnixMilli(), stale.Milliseconds(), openedAt, schema.AnalysisTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("claim llm call for %s: %w", key, err)
	}
	return n == 1, nil
}

// recordManyScript is recordScript over several incidents in one call, so a group commit of many answers
// pays for one script run. KEYS are the hashes; ARGV[1] ttl ms, then for each key the number of
// field/value pairs followed by the pairs.
var recordManyScript = redis.NewScript(`
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

// Decision is one incident's analysis, for RecordDecisionsOp.
type Decision struct {
	Incident string
	Analysis schema.Analysis
}

// RecordDecisionsOp returns RecordDecision for several incidents as one script run added to a pipeline
// (bus.PublishManyWith), so the analyzer's group commit publishes its answers and records them in one
// round trip. The script touches several incidents' keys: a single Redis or Sentinel, not Cluster. It is
// a method, though it reads nothing of s, so the analyzer takes it through its IncidentStore interface.
func (s *Store) RecordDecisionsOp(ds []Decision) func(context.Context, redis.Pipeliner) {
	keys := make([]string, 0, len(ds))
	args := []any{schema.AnalysisTTL.Milliseconds()}
	for _, d := range ds {
		f := d.Analysis.Encode()
		keys = append(keys, schema.IncidentKey(d.Incident))
		args = append(args, len(f))
		for k, v := range f {
			args = append(args, k, v)
		}
	}
	return func(ctx context.Context, p redis.Pipeliner) {
		if len(keys) > 0 {
			recordManyScript.Eval(ctx, p, keys, args...)
		}
	}
}
