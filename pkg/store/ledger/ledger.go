// Package ledger owns the responder's safety state in Redis: each container's ledger (schema.Ledger) and
// lease, changed only by one compare-and-set script (ledger.lua); each host's running-actions set and
// blast-radius page marker; and the done markers of request events. The shadow keys of dry runs have the
// same shapes (schema.RespondKeys).
//
// Every key of one container carries the container's {host/name} hash tag, so the ledger script touches
// one Cluster slot. Keys shared by a host and the done keys live in other slots: they are written by their
// own small atomic scripts or commands, in an order that fails closed (see pkg/respond's package comment).
package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

//go:embed ledger.lua
var ledgerLua string

// commitScript is the one script that changes a container's ledger: a compare-and-set on the ledger's
// revision that also takes or releases the container's lease.
var commitScript = redis.NewScript(strings.ReplaceAll(ledgerLua, "{{rev}}", schema.FieldRev))

// slotScript admits one more running action on a host unless max are already running.
var slotScript = redis.NewScript(`
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

// renewScript extends a lease and a host slot while their owner still holds them. The running set's own
// lifetime is extended with the slot (twice the slot's, as slotScript sets it): a slot outliving its set
// would vanish with it, and free a place for another action while this one still runs.
var renewScript = redis.NewScript(`
local ok = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ok = 1
end
if KEYS[2] and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[2]))
end
return ok
`)

// Errors of a commit.
var (
	// ErrConflict means the ledger changed since it was read: read again and decide again.
	ErrConflict = errors.New("ledger changed since it was read")
	// ErrLeaseHeld means another responder holds the container's lease.
	ErrLeaseHeld = errors.New("lease held by another responder")
)

// Store reads and changes the safety state.
type Store struct{ rdb *redis.Client }

// New returns the store over a connection.
func New(c *conn.Conn) *Store { return &Store{rdb: c.Client()} }

// Snapshot is one read of everything a decision needs from a container's safety state.
type Snapshot struct {
	Ledger      schema.Ledger
	DecodeError error         // the ledger hash did not fully decode (the fields that did are in Ledger)
	Lease       string        // the lease token, "" when free
	LeaseLeft   time.Duration // until the lease expires, when held
	Done        bool          // the request event was already handled
	Reporting   bool          // a responder is publishing the outcome of the request right now
	Slots       []string      // the tokens of the host slots of the actions running on the host now
}

// Query names one snapshot: a container's keys and the request event.
type Query struct {
	Keys    schema.LedgerKeys
	EventID string
}

// Read reads one container's snapshot.
func (s *Store) Read(ctx context.Context, q Query, now time.Time) (Snapshot, error) {
	out, err := s.ReadMany(ctx, []Query{q}, now)
	if err != nil {
		return Snapshot{}, err
	}
	return out[0], nil
}

// ReadMany reads the snapshots of many requests in one round trip. now is the wall clock: running actions
// expire on it, like leases.
func (s *Store) ReadMany(ctx context.Context, qs []Query, now time.Time) ([]Snapshot, error) {
	type reads struct {
		ledger *redis.MapStringStringCmd
		lease  *redis.StringCmd
		ttl    *redis.DurationCmd
		done   *redis.StringCmd
		active *redis.StringSliceCmd
	}
	pipe := s.rdb.Pipeline()
	rs := make([]reads, len(qs))
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	for i, q := range qs {
		rs[i] = reads{ledger: pipe.HGetAll(ctx, q.Keys.Ledger), lease: pipe.Get(ctx, q.Keys.Lease),
			ttl: pipe.PTTL(ctx, q.Keys.Lease), done: pipe.Get(ctx, schema.DoneKey(q.EventID)),
			active: pipe.ZRangeByScore(ctx, q.Keys.Active, &redis.ZRangeBy{Min: nowMS, Max: "+inf"})}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read ledger %s: %w", qs[0].Keys.Ledger, err)
	}
	out := make([]Snapshot, len(qs))
	for i, r := range rs {
		l, derr := schema.DecodeLedger(r.ledger.Val())
		done := r.done.Val()
		out[i] = Snapshot{Ledger: l, DecodeError: derr, Lease: r.lease.Val(), Done: done == schema.DoneValue,
			Reporting: strings.HasPrefix(done, schema.DoneReporting), Slots: r.active.Val()}
		if out[i].Lease != "" && r.ttl.Val() > 0 {
			out[i].LeaseLeft = r.ttl.Val()
		}
	}
	return out, nil
}

// Get reads a ledger (for `respond reset`, views and the analyzer's context); a ledger that does not
// exist reads as the zero ledger with found false.
func (s *Store) Get(ctx context.Context, key string) (l schema.Ledger, found bool, err error) {
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return schema.Ledger{}, false, fmt.Errorf("read ledger %s: %w", key, err)
	}
	l, err = schema.DecodeLedger(m)
	if err != nil {
		err = fmt.Errorf("ledger %s: %w", key, err)
	}
	return l, len(m) > 0, err
}

// GetMany reads many ledgers (by key) in one round trip; ledgers that do not exist are left out, and those
// that do not fully decode are reported in problems.
func (s *Store) GetMany(ctx context.Context, keys []string) (map[string]schema.Ledger, []error, error) {
	out := make(map[string]schema.Ledger, len(keys))
	if len(keys) == 0 {
		return out, nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read ledgers: %w", err)
	}
	var problems []error
	for i, k := range keys {
		m := cmds[i].Val()
		if len(m) == 0 {
			continue
		}
		l, err := schema.DecodeLedger(m)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", k, err))
		}
		out[k] = l
	}
	return out, problems, nil
}

// LeaseOp says what a commit does with the container's lease.
type LeaseOp int

// Lease operations of a commit.
const (
	LeaseKeep    LeaseOp = iota // leave it alone
	LeaseTake                   // take it; fail with ErrLeaseHeld when anyone holds it
	LeaseRelease                // release it if the token still holds it
)

// Commit is one atomic change of a container's ledger: from the ledger as read to the ledger wanted. Only
// the fields that differ are written (schema.LedgerChanges).
type Commit struct {
	From     schema.Ledger // as read with the snapshot; its Rev is compared unless Force
	To       schema.Ledger
	Force    bool // write whatever the revision (results of an action already taken, a human reset)
	Lease    LeaseOp
	Token    string        // lease token
	LeaseTTL time.Duration // for LeaseTake
}

// DefaultLeaseTTL is the lease of a LeaseTake commit that names none.
const DefaultLeaseTTL = 15 * time.Second

// Apply commits a change: it fails with ErrConflict when the ledger's revision moved since the snapshot,
// and with ErrLeaseHeld when LeaseTake finds the lease taken. It returns the new revision.
func (s *Store) Apply(ctx context.Context, k schema.LedgerKeys, cm Commit) (string, error) {
	res, err := commitScript.Run(ctx, s.rdb, []string{k.Ledger, k.Lease}, cm.args()...).Int64Slice()
	if err != nil {
		return "", fmt.Errorf("commit ledger %s: %w", k.Ledger, err)
	}
	return commitResult(res)
}

// ApplyMany commits many changes, each on its own container's ledger and each a compare-and-set like
// Apply, in one round trip. It returns each commit's new revision or error (ErrConflict, ErrLeaseHeld);
// err is set when the round trip itself failed, and then nothing is known of any commit.
func (s *Store) ApplyMany(ctx context.Context, ks []schema.LedgerKeys, cms []Commit) (revs []string, errs []error, err error) {
	cmds := make([]*redis.Cmd, len(cms))
	run := func(todo []int) error {
		pipe := s.rdb.Pipeline()
		for _, i := range todo {
			cmds[i] = commitScript.EvalSha(ctx, pipe, []string{ks[i].Ledger, ks[i].Lease}, cms[i].args()...)
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
			if conn.IsNoScript(cmds[i].Err()) {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			if e := commitScript.Load(ctx, s.rdb).Err(); e != nil {
				return nil, nil, fmt.Errorf("commit ledgers: %w", e)
			}
			_ = run(missing)
		}
	}
	revs, errs = make([]string, len(cms)), make([]error, len(cms))
	for i, cmd := range cmds {
		res, e := cmd.Int64Slice()
		if e != nil {
			if conn.IsUnavailable(e) {
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
func (cm Commit) args() []any {
	op := ""
	switch cm.Lease {
	case LeaseTake:
		op = "take"
	case LeaseRelease:
		op = "release"
	}
	rev := cm.From.Rev
	if cm.Force {
		rev = "*"
	}
	ttl := cm.LeaseTTL.Milliseconds()
	if ttl <= 0 {
		ttl = DefaultLeaseTTL.Milliseconds()
	}
	set, del := schema.LedgerChanges(cm.From, cm.To)
	args := make([]any, 0, 5+2*len(set)+len(del))
	args = append(args, rev, op, cm.Token, ttl, len(set))
	for f, v := range set {
		args = append(args, f, v)
	}
	for _, f := range del {
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
		return "", ErrConflict
	}
}

// AcquireSlot admits one more running action on the host, identified by token, unless max are running;
// the slot expires after ttl unless renewed.
func (s *Store) AcquireSlot(ctx context.Context, k schema.LedgerKeys, token string, max int, ttl time.Duration, now time.Time) (bool, error) {
	ms := now.UnixMilli()
	n, err := slotScript.Run(ctx, s.rdb, []string{k.Active},
		ms, ms+ttl.Milliseconds(), token, max, (2 * ttl).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("acquire slot %s: %w", k.Active, err)
	}
	return n == 1, nil
}

// ReleaseSlot frees the host slot of token.
func (s *Store) ReleaseSlot(ctx context.Context, k schema.LedgerKeys, token string) error {
	if err := s.rdb.ZRem(ctx, k.Active, token).Err(); err != nil {
		return fmt.Errorf("release slot %s: %w", k.Active, err)
	}
	return nil
}

// Renew extends the lease and the host slot held by token; it reports whether the lease is still held.
func (s *Store) Renew(ctx context.Context, k schema.LedgerKeys, token string, ttl time.Duration, now time.Time) (bool, error) {
	n, err := renewScript.Run(ctx, s.rdb, []string{k.Lease, k.Active},
		token, ttl.Milliseconds(), now.Add(ttl).UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", k.Lease, err)
	}
	return n == 1, nil
}

// HoldOnce reports whether this is the first blast-radius hold of the host within period (the one that
// pages).
func (s *Store) HoldOnce(ctx context.Context, k schema.LedgerKeys, period time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, k.Hold, schema.DoneValue, period).Result()
	if err != nil {
		return false, fmt.Errorf("hold marker %s: %w", k.Hold, err)
	}
	return ok, nil
}

// ClaimReport claims the right to publish the outcome of a request: the done key holds the token for ttl
// until MarkDone replaces it, so two responders never both publish, and a responder that dies meanwhile
// lets the next delivery publish after ttl. It reports false when the key exists already.
func (s *Store) ClaimReport(ctx context.Context, eventID, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, schema.DoneKey(eventID), schema.DoneReporting+token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim report %s: %w", eventID, err)
	}
	return ok, nil
}

// ClaimReports is ClaimReport for many requests in one round trip.
func (s *Store) ClaimReports(ctx context.Context, eventIDs, tokens []string, ttl time.Duration) ([]bool, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(eventIDs))
	for i, id := range eventIDs {
		cmds[i] = pipe.SetNX(ctx, schema.DoneKey(id), schema.DoneReporting+tokens[i], ttl)
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

// MarkDone records that request events were handled, for ttl, in one round trip.
func (s *Store) MarkDone(ctx context.Context, ttl time.Duration, eventIDs ...string) error {
	if len(eventIDs) == 1 {
		if err := s.rdb.Set(ctx, schema.DoneKey(eventIDs[0]), schema.DoneValue, ttl).Err(); err != nil {
			return fmt.Errorf("mark done %s: %w", eventIDs[0], err)
		}
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, id := range eventIDs {
		pipe.Set(ctx, schema.DoneKey(id), schema.DoneValue, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark done: %w", err)
	}
	return nil
}
