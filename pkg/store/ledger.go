package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// The responder's safety state (ARCHITECTURE sections 3 and 6). Every key of one container carries the
// container's {host/name} hash tag, so the ledger script touches one Cluster slot. Keys shared by a host
// (the running-actions set, the blast-radius page marker) and the done keys of request events live in
// other slots: they are written by their own small atomic scripts or commands, in an order that fails
// closed (see pkg/respond's package comment).

//go:embed ledger.lua
var ledgerLua string

// ledgerCommitScript is the one script that changes a container's ledger: a compare-and-set on the
// ledger's revision that also takes or releases the container's lease.
var ledgerCommitScript = redis.NewScript(ledgerLua)

// ledgerSlotScript admits one more running action on a host unless max are already running.
var ledgerSlotScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// ledgerRenewScript extends a lease and a host slot while their owner still holds them.
var ledgerRenewScript = redis.NewScript(`
local ok = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ok = 1
end
if KEYS[2] and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return ok
`)

// Errors of the ledger commit.
var (
	// ErrLedgerConflict means the ledger changed since it was read: read again and decide again.
	ErrLedgerConflict = errors.New("ledger changed since it was read")
	// ErrLeaseHeld means another responder holds the container's lease.
	ErrLeaseHeld = errors.New("lease held by another responder")
)

// LedgerKeys names the keys of one container's safety state: the real ones, or the shadow ones that
// dry-run, suggest and observe record into.
type LedgerKeys struct {
	Ledger string // hash: the ledger
	Lease  string // string: the one-actor lease
	Active string // sorted set: actions running on the host (member = lease token, score = expiry ms)
	Hold   string // string: the blast-radius page marker of the host
}

// RespondKeys returns the keys of a container's real or shadow safety state.
func RespondKeys(host, name string, shadow bool) LedgerKeys {
	target := event.Target(host, name)
	if shadow {
		return LedgerKeys{
			Ledger: "hemostat:shadow:{" + target + "}",
			Lease:  "hemostat:shadow:lease:{" + target + "}",
			Active: "hemostat:shadow:active:{" + host + "}",
			Hold:   "hemostat:shadow:hold:{" + host + "}",
		}
	}
	return LedgerKeys{
		Ledger: event.LedgerKey(host, name),
		Lease:  event.LeaseKey(host, name),
		Active: "hemostat:respond:active:{" + host + "}",
		Hold:   "hemostat:respond:hold:{" + host + "}",
	}
}

// LedgerSnapshot is one read of everything the responder's decision needs from Redis, in one round trip.
type LedgerSnapshot struct {
	Fields    map[string]string // the ledger hash (empty when the container has none yet)
	Lease     string            // the lease token, "" when free
	Done      bool              // the request event was already handled
	Reporting bool              // a responder is publishing the outcome of the request right now
	Active    int               // actions running on the host now
	Unhealthy int               // containers of the host with an open incident
	Watched   int               // watched containers of the host
}

const keyRespondIncidentsOpen = "hemostat:incidents:open"

// LedgerRead reads a container's ledger, lease, the done marker of the request and the host's load.
func (c *Client) LedgerRead(ctx context.Context, k LedgerKeys, host, eventID string, now time.Time) (LedgerSnapshot, error) {
	s, err := c.LedgerReadMany(ctx, host, []LedgerQuery{{Keys: k, EventID: eventID}}, now)
	if err != nil {
		return LedgerSnapshot{}, err
	}
	return s[0], nil
}

// LedgerQuery names one snapshot of LedgerReadMany: a container's keys and the request event.
type LedgerQuery struct {
	Keys    LedgerKeys
	EventID string
}

// LedgerReadMany reads the snapshots of many requests of one host in one round trip; the host's load is
// read once for all of them.
func (c *Client) LedgerReadMany(ctx context.Context, host string, qs []LedgerQuery, now time.Time) ([]LedgerSnapshot, error) {
	type reads struct {
		ledger     *redis.MapStringStringCmd
		lease      *redis.StringCmd
		done       *redis.StringCmd
		active     *redis.IntCmd
		open       *redis.StringSliceCmd
		containers *redis.MapStringStringCmd
	}
	pipe := c.rdb.Pipeline()
	rs := make([]reads, len(qs))
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	for i, q := range qs {
		rs[i] = reads{ledger: pipe.HGetAll(ctx, q.Keys.Ledger), lease: pipe.Get(ctx, q.Keys.Lease),
			done: pipe.Get(ctx, event.DoneKey(q.EventID)), active: pipe.ZCount(ctx, q.Keys.Active, nowMS, "+inf")}
	}
	open := pipe.ZRange(ctx, keyRespondIncidentsOpen, 0, -1)
	containers := pipe.HGetAll(ctx, event.KeyContainers)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read ledger %s: %w", qs[0].Keys.Ledger, err)
	}
	unhealthy, watched := respondLoad(host, open.Val(), containers.Val())
	out := make([]LedgerSnapshot, len(qs))
	for i, r := range rs {
		out[i] = LedgerSnapshot{Fields: r.ledger.Val(), Lease: r.lease.Val(), Done: r.done.Val() == doneValue,
			Reporting: r.done.Val() != "" && r.done.Val() != doneValue, Active: int(r.active.Val()),
			Unhealthy: unhealthy, Watched: watched}
	}
	return out, nil
}

// respondLoad counts a host's containers with an open incident and its watched containers.
func respondLoad(host string, open []string, containers map[string]string) (unhealthy, watched int) {
	seen := map[string]bool{}
	prefix := host + "/"
	for _, m := range open {
		id := strings.TrimPrefix(m, "hemostat:incident:")
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		rest := id[len(prefix):]
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			rest = rest[:i]
		}
		seen[rest] = true
	}
	for target, raw := range containers {
		if !strings.HasPrefix(target, prefix) {
			continue
		}
		var s struct {
			Watched *bool `json:"watched"`
		}
		if json.Unmarshal([]byte(raw), &s) == nil && (s.Watched == nil || *s.Watched) {
			watched++
		}
	}
	return len(seen), watched
}

// LeaseOp says what a ledger commit does with the container's lease.
type LeaseOp int

// Lease operations of a commit.
const (
	LeaseKeep    LeaseOp = iota // leave it alone
	LeaseTake                   // take it; fail with ErrLeaseHeld when anyone holds it
	LeaseRelease                // release it if the token still holds it
)

// LedgerCommit is one atomic change of a container's ledger.
type LedgerCommit struct {
	Rev      string // the "rev" field read with the snapshot ("" when absent); ignored with Force
	Force    bool   // write whatever the revision (results of an action already taken, a human reset)
	Set      map[string]string
	Del      []string
	Lease    LeaseOp
	Token    string        // lease token
	LeaseTTL time.Duration // for LeaseTake
}

// LedgerApply commits a change: it fails with ErrLedgerConflict when the ledger's revision moved since
// the snapshot, and with ErrLeaseHeld when LeaseTake finds the lease taken. It returns the new revision.
func (c *Client) LedgerApply(ctx context.Context, k LedgerKeys, cm LedgerCommit) (string, error) {
	res, err := ledgerCommitScript.Run(ctx, c.rdb, []string{k.Ledger, k.Lease}, cm.args()...).Int64Slice()
	if err != nil {
		return "", fmt.Errorf("commit ledger %s: %w", k.Ledger, err)
	}
	return commitResult(res)
}

// LedgerApplyMany commits many changes, each on its own container's ledger and each a compare-and-set like
// LedgerApply, in one round trip. It returns each commit's new revision or error (ErrLedgerConflict,
// ErrLeaseHeld); err is set when the round trip itself failed, and then nothing is known of any commit.
func (c *Client) LedgerApplyMany(ctx context.Context, ks []LedgerKeys, cms []LedgerCommit) (revs []string, errs []error, err error) {
	cmds := make([]*redis.Cmd, len(cms))
	run := func(todo []int) error {
		pipe := c.rdb.Pipeline()
		for _, i := range todo {
			cmds[i] = ledgerCommitScript.EvalSha(ctx, pipe, []string{ks[i].Ledger, ks[i].Lease}, cms[i].args()...)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	all := make([]int, len(cms))
	for i := range all {
		all[i] = i
	}
	if err := run(all); err != nil {
		var missing []int // the script is not cached yet (first use, or after SCRIPT FLUSH): nothing ran
		for _, i := range all {
			if e := cmds[i].Err(); e != nil && strings.HasPrefix(e.Error(), "NOSCRIPT") {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			if e := ledgerCommitScript.Load(ctx, c.rdb).Err(); e != nil {
				return nil, nil, fmt.Errorf("commit ledgers: %w", e)
			}
			_ = run(missing)
		}
	}
	revs, errs = make([]string, len(cms)), make([]error, len(cms))
	for i, cmd := range cmds {
		res, e := cmd.Int64Slice()
		if e != nil {
			if IsUnavailable(e) {
				return nil, nil, fmt.Errorf("commit ledger %s: %w", ks[i].Ledger, e)
			}
			errs[i] = fmt.Errorf("commit ledger %s: %w", ks[i].Ledger, e)
			continue
		}
		revs[i], errs[i] = commitResult(res)
	}
	return revs, errs, nil
}

// args are the ledger script's arguments for the commit.
func (cm LedgerCommit) args() []any {
	op := ""
	switch cm.Lease {
	case LeaseTake:
		op = "take"
	case LeaseRelease:
		op = "release"
	}
	rev := cm.Rev
	if cm.Force {
		rev = "*"
	}
	ttl := cm.LeaseTTL.Milliseconds()
	if ttl <= 0 {
		ttl = 15000
	}
	args := make([]any, 0, 5+2*len(cm.Set)+len(cm.Del))
	args = append(args, rev, op, cm.Token, ttl, len(cm.Set))
	for f, v := range cm.Set {
		args = append(args, f, v)
	}
	for _, f := range cm.Del {
		args = append(args, f)
	}
	return args
}

func commitResult(res []int64) (string, error) {
	if len(res) < 2 {
		return "", fmt.Errorf("commit ledger: unexpected reply %v", res)
	}
	switch res[0] {
	case 1:
		return strconv.FormatInt(res[1], 10), nil
	case -1:
		return "", ErrLeaseHeld
	default:
		return "", ErrLedgerConflict
	}
}

// LedgerAcquireSlot admits one more running action on the host, identified by token, unless max are
// running; the slot expires after ttl unless renewed.
func (c *Client) LedgerAcquireSlot(ctx context.Context, k LedgerKeys, token string, max int, ttl time.Duration, now time.Time) (bool, error) {
	ms := now.UnixMilli()
	n, err := ledgerSlotScript.Run(ctx, c.rdb, []string{k.Active},
		ms, ms+ttl.Milliseconds(), token, max, (2 * ttl).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("acquire slot %s: %w", k.Active, err)
	}
	return n == 1, nil
}

// LedgerReleaseSlot frees the host slot of token.
func (c *Client) LedgerReleaseSlot(ctx context.Context, k LedgerKeys, token string) error {
	if err := c.rdb.ZRem(ctx, k.Active, token).Err(); err != nil {
		return fmt.Errorf("release slot %s: %w", k.Active, err)
	}
	return nil
}

// LedgerRenew extends the lease and the host slot held by token; it reports whether the lease is still
// held.
func (c *Client) LedgerRenew(ctx context.Context, k LedgerKeys, token string, ttl time.Duration, now time.Time) (bool, error) {
	n, err := ledgerRenewScript.Run(ctx, c.rdb, []string{k.Lease, k.Active},
		token, ttl.Milliseconds(), now.Add(ttl).UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", k.Lease, err)
	}
	return n == 1, nil
}

// LedgerHoldOnce reports whether this is the first blast-radius hold of the host within period (the one
// that pages).
func (c *Client) LedgerHoldOnce(ctx context.Context, k LedgerKeys, period time.Duration) (bool, error) {
	ok, err := c.rdb.SetNX(ctx, k.Hold, "1", period).Result()
	if err != nil {
		return false, fmt.Errorf("hold marker %s: %w", k.Hold, err)
	}
	return ok, nil
}

const doneValue = "1"

// LedgerClaimReport claims the right to publish the outcome of a request: the done key holds the token for
// ttl until LedgerMarkDone replaces it, so two responders never both publish, and a responder that dies
// meanwhile lets the next delivery publish after ttl. It reports false when the key exists already.
func (c *Client) LedgerClaimReport(ctx context.Context, eventID, token string, ttl time.Duration) (bool, error) {
	ok, err := c.rdb.SetNX(ctx, event.DoneKey(eventID), "reporting "+token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim report %s: %w", eventID, err)
	}
	return ok, nil
}

// LedgerClaimReports is LedgerClaimReport for many requests in one round trip.
func (c *Client) LedgerClaimReports(ctx context.Context, eventIDs, tokens []string, ttl time.Duration) ([]bool, error) {
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(eventIDs))
	for i, id := range eventIDs {
		cmds[i] = pipe.SetNX(ctx, event.DoneKey(id), "reporting "+tokens[i], ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("claim reports: %w", err)
	}
	out := make([]bool, len(cmds))
	for i, cmd := range cmds {
		out[i] = cmd.Val()
	}
	return out, nil
}

// LedgerMarkDone records that request events were handled, for ttl, in one round trip.
func (c *Client) LedgerMarkDone(ctx context.Context, ttl time.Duration, eventIDs ...string) error {
	if len(eventIDs) == 1 {
		if err := c.rdb.Set(ctx, event.DoneKey(eventIDs[0]), doneValue, ttl).Err(); err != nil {
			return fmt.Errorf("mark done %s: %w", eventIDs[0], err)
		}
		return nil
	}
	pipe := c.rdb.Pipeline()
	for _, id := range eventIDs {
		pipe.Set(ctx, event.DoneKey(id), doneValue, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark done: %w", err)
	}
	return nil
}

// LedgerFields reads a ledger hash (for `respond reset`, views and tests).
func (c *Client) LedgerFields(ctx context.Context, k LedgerKeys) (map[string]string, error) {
	m, err := c.rdb.HGetAll(ctx, k.Ledger).Result()
	if err != nil {
		return nil, fmt.Errorf("read ledger %s: %w", k.Ledger, err)
	}
	return m, nil
}

// LedgerTouchPending resets the idle time of a stream entry the consumer is still working on (XCLAIM
// JUSTID to itself), so other instances of the group do not reclaim it while a long action is verified.
// JUSTID does not count a delivery.
func (c *Client) LedgerTouchPending(ctx context.Context, stream, group, consumer, id string) error {
	err := c.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: stream, Group: group, Consumer: consumer,
		MinIdle: 0, Messages: []string{id}}).Err()
	if err != nil {
		return fmt.Errorf("touch pending %s %s: %w", stream, id, err)
	}
	return nil
}
