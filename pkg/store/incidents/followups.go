package incidents

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Due is one follow-up taken from a host's schedule: the incident and when it was due.
type Due struct {
	Incident string
	At       time.Time
}

// takeScript takes up to n follow-ups due at or before now and pushes each back by hold, so no other
// responder takes it while this one works on it, and so it comes back if this one dies.
// KEYS[1] the host's follow-ups; ARGV[1] now ms, ARGV[2] hold ms, ARGV[3] n.
// Returns member, score, member, score, ...
var takeScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local held = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], held, due[i])
end
return due
`)

// TakeDue takes up to n of a host's follow-ups that are due at now, oldest first. Each is pushed back by
// hold: the taker reschedules or cancels it when done; if it dies, the follow-up is due again after hold.
//
// Every responder polls its schedule about once a second and finds nothing due almost every time, so the
// earliest follow-up is read first (ZRANGE, a few microseconds of the server's time) and the script (tens)
// runs only when one is due (issue 17: with many hosts the empty polls were a tenth of Redis's work).
func (s *Store) TakeDue(ctx context.Context, host string, now time.Time, hold time.Duration, n int) ([]Due, error) {
	first, err := s.rdb.ZRangeWithScores(ctx, schema.FollowupsKey(host), 0, 0).Result()
	if err != nil {
		return nil, fmt.Errorf("take follow-ups of %s: %w", host, err)
	}
	if len(first) == 0 || first[0].Score > float64(now.UnixMilli()) {
		return []Due{}, nil
	}
	res, err := takeScript.Run(ctx, s.rdb, []string{schema.FollowupsKey(host)}, now.UnixMilli(), hold.Milliseconds(), n).StringSlice()
	if err != nil && !isMissing(err) {
		return nil, fmt.Errorf("take follow-ups of %s: %w", host, err)
	}
	out := make([]Due, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		ms, _ := strconv.ParseFloat(res[i+1], 64)
		out = append(out, Due{Incident: res[i], At: time.UnixMilli(int64(ms)).UTC()})
	}
	return out, nil
}

// NextDue returns when the host's earliest follow-up is due, zero when it has none.
func (s *Store) NextDue(ctx context.Context, host string) (time.Time, error) {
	z, err := s.rdb.ZRangeWithScores(ctx, schema.FollowupsKey(host), 0, 0).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("next follow-up of %s: %w", host, err)
	}
	if len(z) == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(int64(z[0].Score)).UTC(), nil
}

// scheduleScript schedules a follow-up of an incident that is still open, and records when and why on
// the incident. KEYS[1] follow-ups, KEYS[2] open set, KEYS[3] incident hash; ARGV[1] incident key,
// ARGV[2] when ms, then field/value pairs. Returns 1 when scheduled, 0 when the incident is not open.
var scheduleScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if #ARGV > 2 then redis.call('HSET', KEYS[3], unpack(ARGV, 3, #ARGV)) end
return 1
`)

// Schedule makes an open incident's follow-up due at, replacing an earlier schedule, and records at and
// reason on the incident (schema.Progress NextAt and NextReason). It reports false, and schedules
// nothing, when the incident is no longer open.
func (s *Store) Schedule(ctx context.Context, key string, at time.Time, reason string) (bool, error) {
	f := schema.Only(schema.Progress{NextAt: at, NextReason: reason}.Encode(), schema.FieldNextAt, schema.FieldNextReason)
	args := []any{key, at.UnixMilli()}
	for k, v := range f {
		args = append(args, k, v)
	}
	n, err := scheduleScript.Run(ctx, s.rdb, []string{schema.FollowupsKey(HostOf(key)), schema.KeyIncidentsOpen,
		schema.IncidentKey(key)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("schedule follow-up of %s: %w", key, err)
	}
	return n == 1, nil
}

// Cancel removes an incident's follow-up and clears when and why on the incident: hemostat will not look
// again unless something changes.
func (s *Store) Cancel(ctx context.Context, key string) error {
	f := schema.Only(schema.Progress{}.Encode(), schema.FieldNextAt, schema.FieldNextReason)
	if err := s.rdb.ZRem(ctx, schema.FollowupsKey(HostOf(key)), key).Err(); err != nil {
		return fmt.Errorf("cancel follow-up of %s: %w", key, err)
	}
	// Only an incident that exists gets the fields: a cancel must not create an orphan hash.
	if err := hsetIfExists.Run(ctx, s.rdb, []string{schema.IncidentKey(key)}, flatten(f)...).Err(); err != nil && !isMissing(err) {
		return fmt.Errorf("cancel follow-up of %s: %w", key, err)
	}
	return nil
}

// hsetIfExists writes fields into a hash only if it exists. KEYS[1] hash; ARGV field/value pairs.
var hsetIfExists = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// Outcome is what the responder records on an incident after it decided one of its requests.
type Outcome struct {
	EventID      string    // the request decided: recording the same request again changes nothing
	Attempt      bool      // an action was executed: count it
	At           time.Time // when the action started, or the decision was taken
	Status       string    // result status
	Details      string
	Error        string    // a failed verification's error, kept among the incident's errors
	GaveUp       bool      // the breaker opened on this incident
	BreakerUntil time.Time // when the breaker's cool-off ends (GaveUp, or a denial by an open breaker)
	Resumed      bool      // the reconciliation resumed after a reset or the cool-off: forget GaveUp
}

// Step is an outcome to record on an incident and when the responder looks at it again.
type Step struct {
	Incident string
	Outcome  Outcome
	Next     time.Time // zero: no follow-up (the incident ends, or a human must act)
	Reason   string    // why it waits until Next
}

// Progress is an incident's state after a Step.
type Progress struct {
	Found    bool // the incident hash exists
	Open     bool // the incident is open (only an open incident is scheduled)
	Attempts int
	OpenedAt time.Time
	Errors   []string
}

// advanceScript applies a Step. KEYS[1] incident hash, KEYS[2] the host's follow-ups, KEYS[3] open set;
// ARGV[1] incident key, ARGV[2] event id, ARGV[3] "1" to count an attempt, ARGV[4] error to append ("" for
// none), ARGV[5] max errors, ARGV[6] next ms ("" to cancel), ARGV[7] next_at, ARGV[8] next_reason, then
// field/value pairs of the outcome. The outcome is applied once per event id; the schedule every time. It
// writes only into an existing hash. Returns {found, open, attempts, opened_at, errors JSON}.
var advanceScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0, 0, 0, '', ''}
end
local n = tonumber(redis.call('HGET', KEYS[1], '` + schema.FieldAttempts + `') or '0') or 0
if redis.call('HGET', KEYS[1], '` + schema.FieldLastEventID + `') ~= ARGV[2] then
  if ARGV[3] == '1' then
    n = n + 1
    redis.call('HSET', KEYS[1], '` + schema.FieldAttempts + `', n)
  end
  if ARGV[4] ~= '' then
    local raw = redis.call('HGET', KEYS[1], '` + schema.FieldErrors + `')
    local errs = {}
    if raw and raw ~= '' and raw ~= '[]' then
      local ok, v = pcall(cjson.decode, raw)
      if ok and type(v) == 'table' then errs = v end
    end
    errs[#errs + 1] = ARGV[4]
    while #errs > tonumber(ARGV[5]) do table.remove(errs, 1) end
    redis.call('HSET', KEYS[1], '` + schema.FieldErrors + `', cjson.encode(errs))
  end
  redis.call('HSET', KEYS[1], '` + schema.FieldLastEventID + `', ARGV[2])
  if #ARGV > 8 then redis.call('HSET', KEYS[1], unpack(ARGV, 9, #ARGV)) end
end
local open = redis.call('ZSCORE', KEYS[3], ARGV[1])
if open and ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
  redis.call('HSET', KEYS[1], '` + schema.FieldNextAt + `', ARGV[7], '` + schema.FieldNextReason + `', ARGV[8])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], '` + schema.FieldNextAt + `', '', '` + schema.FieldNextReason + `', '')
end
local f = redis.call('HMGET', KEYS[1], '` + schema.FieldOpenedAt + `', '` + schema.FieldErrors + `')
return {1, open and 1 or 0, n, f[1] or '', f[2] or ''}
`)

// Advance records the steps, each on its incident, in one round trip. A step of an incident whose hash
// does not exist records nothing and schedules nothing.
func (s *Store) Advance(ctx context.Context, steps []Step) ([]Progress, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	run := func(todo []int, cmds []*redis.Cmd) error {
		pipe := s.rdb.Pipeline()
		for _, i := range todo {
			st := steps[i]
			keys := []string{schema.IncidentKey(st.Incident), schema.FollowupsKey(HostOf(st.Incident)), schema.KeyIncidentsOpen}
			cmds[i] = advanceScript.EvalSha(ctx, pipe, keys, st.args()...)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	cmds := make([]*redis.Cmd, len(steps))
	all := make([]int, len(steps))
	for i := range all {
		all[i] = i
	}
	if err := run(all, cmds); err != nil {
		var missing []int // the script is not cached yet: nothing of these ran
		for _, i := range all {
			if conn.IsNoScript(cmds[i].Err()) {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			return nil, fmt.Errorf("advance incidents: %w", err)
		}
		if e := advanceScript.Load(ctx, s.rdb).Err(); e != nil {
			return nil, fmt.Errorf("advance incidents: %w", e)
		}
		if err := run(missing, cmds); err != nil {
			return nil, fmt.Errorf("advance incidents: %w", err)
		}
	}
	out := make([]Progress, len(steps))
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if err != nil || len(res) < 5 {
			return nil, fmt.Errorf("advance incident %s: %v %w", steps[i].Incident, res, err)
		}
		found, _ := res[0].(int64)
		open, _ := res[1].(int64)
		n, _ := res[2].(int64)
		p := Progress{Found: found == 1, Open: open == 1, Attempts: int(n)}
		if s, ok := res[3].(string); ok {
			p.OpenedAt, _ = schema.ParseTime(s)
		}
		if s, ok := res[4].(string); ok && s != "" {
			_ = json.Unmarshal([]byte(s), &p.Errors)
		}
		out[i] = p
	}
	return out, nil
}

// args are advanceScript's arguments for the step.
func (st Step) args() []any {
	o := st.Outcome
	p := schema.Progress{LastOutcome: o.Status, LastDetails: o.Details, BreakerUntil: o.BreakerUntil}
	names := []string{schema.FieldLastOutcome, schema.FieldLastDetails}
	if o.Attempt {
		p.LastAttemptAt = o.At
		names = append(names, schema.FieldLastAttemptAt)
	}
	switch {
	case o.GaveUp:
		p.GaveUpAt = o.At
		names = append(names, schema.FieldGaveUpAt, schema.FieldBreakerUntil)
	case o.Resumed:
		p.GaveUpAt, p.BreakerUntil = time.Time{}, time.Time{}
		names = append(names, schema.FieldGaveUpAt, schema.FieldBreakerUntil)
	case !o.BreakerUntil.IsZero():
		names = append(names, schema.FieldBreakerUntil)
	}
	attempt := "0"
	if o.Attempt {
		attempt = "1"
	}
	next := ""
	if !st.Next.IsZero() {
		next = strconv.FormatInt(st.Next.UnixMilli(), 10)
	}
	args := []any{st.Incident, o.EventID, attempt, o.Error, schema.MaxErrors, next, schema.FormatTime(st.Next), st.Reason}
	return append(args, flatten(schema.Only(p.Encode(), names...))...)
}

func flatten(m map[string]string) []any {
	out := make([]any, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}
