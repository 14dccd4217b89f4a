package embedded

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2/server"
)

// readOnly are the commands that change no key; every other command is taken as a write.
var readOnly = set("GET", "MGET", "STRLEN", "GETRANGE", "SUBSTR", "EXISTS", "TYPE", "TTL", "PTTL", "EXPIRETIME",
	"PEXPIRETIME", "KEYS", "SCAN", "RANDOMKEY", "DBSIZE", "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS",
	"HSCAN", "HSTRLEN", "HRANDFIELD", "HTTL", "HPTTL", "LRANGE", "LLEN", "LINDEX", "LPOS", "SMEMBERS", "SISMEMBER",
	"SMISMEMBER", "SCARD", "SSCAN", "SRANDMEMBER", "SINTER", "SUNION", "SDIFF", "SINTERCARD", "ZRANGE", "ZRANGEBYSCORE",
	"ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZSCORE", "ZMSCORE", "ZCARD", "ZCOUNT",
	"ZLEXCOUNT", "ZRANK", "ZREVRANK", "ZSCAN", "ZRANDMEMBER", "ZUNION", "ZINTER", "ZDIFF", "XRANGE", "XREVRANGE",
	"XLEN", "XREAD", "XINFO", "XPENDING", "PFCOUNT", "GETBIT", "BITCOUNT", "BITPOS", "GEOPOS", "GEODIST", "GEOHASH",
	"GEORADIUS_RO", "GEORADIUSBYMEMBER_RO", "GEOSEARCH", "LCS", "EVAL_RO", "EVALSHA_RO", "FCALL_RO", "SORT_RO",
	"OBJECT", "MEMORY", "DUMP", "PING", "ECHO", "INFO", "TIME", "AUTH", "HELLO", "CLIENT", "COMMAND", "CONFIG",
	"SCRIPT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "PUBLISH",
	"SPUBLISH", "PUBSUB", "QUIT", "RESET", "WAIT", "WATCH", "UNWATCH", "READONLY", "READWRITE", "CLUSTER", "LASTSAVE",
	"SAVE", "BGSAVE", "BGREWRITEAOF", "SHUTDOWN", "DEBUG", "LATENCY", "SLOWLOG", "ROLE", "LOLWUT")

// whole are the write commands whose effects reach keys they do not name: the next flush dumps everything.
var whole = set("FLUSHDB", "FLUSHALL", "SWAPDB", "MOVE", "RESTORE", "MIGRATE", "FUNCTION", "FCALL")

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// hook runs before every command, those of Lua scripts included: it marks the keys a write names as
// dirty, before the write runs (for the durable reads) and again after it ran. The hook runs before its
// command, and a command can wait there (for the store's lock, on a loaded machine) while flushes take
// the marks and read its keys: without the second mark its change would reach the journal only with the
// key's next write. So the hook runs a write itself, through the server, and marks its keys once it is done.
func (p *inProcess) hook(c *server.Peer, cmd string, args ...string) bool {
	switch cmd {
	case "SELECT":
		if len(args) == 1 && args[0] != "0" {
			c.WriteError(errOneDatabase)
			return true
		}
		return false
	case "MULTI":
		p.dirtyMu.Lock()
		p.multi[c] = &queued{}
		p.dirtyMu.Unlock()
		return false
	case "DISCARD":
		p.dirtyMu.Lock()
		delete(p.multi, c)
		p.dirtyMu.Unlock()
		return false
	}
	if readOnly[cmd] {
		if c.ClientName != journalClient && p.durableRead(cmd, args) && !nested(c) {
			// A reader must not see what a crash could still take back: write the key first.
			if err := p.flushNow(); err != nil {
				c.WriteError("ERR the embedded store could not write its journal: " + err.Error())
				return true
			}
		}
		return false
	}
	if nested(c) {
		// A Lua script's call: the script holds the store's lock from before this mark until after its
		// call ran, so no flush reads the key in between.
		p.mark(c, cmd, args)
		return false
	}
	p.dirtyMu.Lock()
	if p.running[c] {
		p.dirtyMu.Unlock()
		return false // the dispatch below
	}
	p.running[c] = true
	p.dirtyMu.Unlock()
	q := p.mark(c, cmd, args)
	if beforeRun != nil {
		beforeRun(cmd, args)
	}
	p.srv.Dispatch(c, append([]string{cmd}, args...))
	p.dirtyMu.Lock()
	delete(p.running, c)
	for _, k := range q.keys {
		p.dirty[k] = struct{}{}
	}
	p.all = p.all || q.all
	p.dirtyMu.Unlock()
	return true
}

// queued is what a write marks: the keys it names, or all of them.
type queued struct {
	keys []string
	all  bool
}

// mark marks the keys the write names as dirty, and returns them. EXEC returns those of the commands it
// runs, queued since MULTI.
func (p *inProcess) mark(c *server.Peer, cmd string, args []string) queued {
	p.dirtyMu.Lock()
	defer p.dirtyMu.Unlock()
	var q queued
	switch {
	case cmd == "EXEC":
		if t := p.multi[c]; t != nil {
			q = *t
		}
		delete(p.multi, c)
	case whole[cmd]:
		q.all = true
	default:
		q.keys = keysOf(cmd, args)
	}
	for _, k := range q.keys {
		p.dirty[k] = struct{}{}
	}
	p.all = p.all || q.all
	if t := p.multi[c]; t != nil {
		t.keys = append(t.keys, q.keys...)
		t.all = t.all || q.all
	}
	return q
}

// beforeRun, when set (by tests), is called between the hook's first mark of a write's keys and the
// write: the time a loaded machine may leave a command waiting there.
var beforeRun func(cmd string, args []string)

// durableRead says the command reads a key of Options.DurableReads that has writes not yet journaled.
func (p *inProcess) durableRead(cmd string, args []string) bool {
	switch cmd {
	case "XRANGE", "XREVRANGE", "XREAD", "XLEN", "XINFO":
	default:
		return false
	}
	p.dirtyMu.Lock()
	defer p.dirtyMu.Unlock()
	for _, a := range args {
		if p.durable[a] {
			if _, dirty := p.dirty[a]; dirty {
				return true
			}
			if _, dirty := p.prev[a]; dirty {
				return true
			}
		}
	}
	return false
}

// nested says c is a Lua script's call: the script holds the store's lock, so nothing may wait on the
// store for it. miniredis keeps that in the unexported field nested of the connection's context.
func nested(c *server.Peer) bool {
	if c.Ctx == nil {
		return false
	}
	v := reflect.ValueOf(c.Ctx)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return false
	}
	f := v.FieldByName("nested")
	return f.IsValid() && f.Kind() == reflect.Bool && f.Bool()
}

// keysOf returns the keys a write command names (a superset: a name that is no key costs a lookup).
func keysOf(cmd string, args []string) []string {
	if len(args) == 0 {
		return nil
	}
	switch cmd {
	case "DEL", "UNLINK", "TOUCH", "PFMERGE", "SUNIONSTORE", "SINTERSTORE", "SDIFFSTORE", "ZUNIONSTORE",
		"ZINTERSTORE", "ZDIFFSTORE", "BITOP", "SORT", "LMPOP", "BLMPOP", "ZMPOP", "BZMPOP", "GEORADIUS",
		"GEORADIUSBYMEMBER", "GEOSEARCHSTORE":
		return args
	case "BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX":
		return args[:len(args)-1]
	case "MSET", "MSETNX":
		var ks []string
		for i := 0; i < len(args); i += 2 {
			ks = append(ks, args[i])
		}
		return ks
	case "RENAME", "RENAMENX", "COPY", "LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH", "SMOVE", "ZRANGESTORE":
		return args[:min(2, len(args))]
	case "XGROUP":
		if len(args) > 1 {
			return args[1:2]
		}
		return nil
	case "XREADGROUP":
		for i, a := range args {
			if len(a) == 7 && upper(a) == "STREAMS" {
				rest := args[i+1:]
				return rest[:len(rest)/2]
			}
		}
		return nil
	case "EVAL", "EVALSHA":
		if len(args) < 2 {
			return nil
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 || n > len(args)-2 {
			return nil
		}
		return args[2 : 2+n]
	}
	return args[:1]
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// dumpKey returns the commands that bring key k to its present state. For a stream that the journal
// already holds (st, and whole is false), they add only what is new: its entries past the last one
// written, its trim and its groups. next is what the journal holds of the stream once they are written
// (nil when k is no stream): the caller records it only then. With spill, a stream's entries go to it a
// page at a time, ahead of the commands returned (the rewrite: not the whole stream in memory at once).
func (p *inProcess) dumpKey(ctx context.Context, k string, st *streamState, whole bool, spill func([][]string) error) (cmds [][]string, next *streamState, err error) {
	typ, err := p.rdb.Type(ctx, k).Result()
	if err != nil {
		return nil, nil, err
	}
	switch typ {
	case "none":
		if !whole {
			return [][]string{{"DEL", k}}, nil, nil
		}
		return nil, nil, nil
	case "string":
		v, err := p.rdb.Get(ctx, k).Result()
		if err != nil {
			return nil, nil, err
		}
		cmds = [][]string{{"SET", k, v}}
	case "hash":
		m, err := p.rdb.Do(ctx, "HGETALL", k).StringSlice()
		if err != nil {
			return nil, nil, err
		}
		cmds = [][]string{{"DEL", k}, append([]string{"HSET", k}, m...)}
	case "list":
		l, err := p.rdb.LRange(ctx, k, 0, -1).Result()
		if err != nil {
			return nil, nil, err
		}
		cmds = [][]string{{"DEL", k}, append([]string{"RPUSH", k}, l...)}
	case "set":
		l, err := p.rdb.SMembers(ctx, k).Result()
		if err != nil {
			return nil, nil, err
		}
		cmds = [][]string{{"DEL", k}, append([]string{"SADD", k}, l...)}
	case "zset":
		zs, err := p.rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil {
			return nil, nil, err
		}
		c := []string{"ZADD", k}
		for _, z := range zs {
			c = append(c, strconv.FormatFloat(z.Score, 'g', -1, 64), fmt.Sprint(z.Member))
		}
		cmds = [][]string{{"DEL", k}, c}
	case "stream":
		cmds, next, err = p.dumpStream(ctx, k, st, whole, spill)
		if err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("key %s: type %s is not journaled", k, typ)
	}
	if typ == "hash" || typ == "list" || typ == "set" || typ == "zset" {
		if len(cmds[1]) == 2 { // emptied between TYPE and the read
			return [][]string{{"DEL", k}}, nil, nil
		}
	}
	pttl, err := p.rdb.PTTL(ctx, k).Result()
	if err != nil {
		return nil, nil, err
	}
	if pttl > 0 {
		at := time.Now().Add(pttl).UnixMilli()
		cmds = append(cmds, []string{"PEXPIREAT", k, strconv.FormatInt(at, 10)})
	} else if typ == "stream" && !whole {
		cmds = append(cmds, []string{"PERSIST", k})
	}
	return cmds, next, nil
}

// streamPage is how many entries of a stream are read at once.
const streamPage = 1000

// dumpStream returns the commands for a stream, and what the journal holds of it once they are written.
func (p *inProcess) dumpStream(ctx context.Context, k string, st *streamState, whole bool, spill func([][]string) error) ([][]string, *streamState, error) {
	var cmds [][]string
	from := "-" // every entry: the journal holds none of them
	if whole || st == nil {
		cmds = append(cmds, []string{"DEL", k})
	} else if st.last != "" { // "" when it was journaled empty (XGROUP CREATE ... MKSTREAM)
		from = "(" + st.last
	}
	next := &streamState{groups: map[string]bool{}}
	if st != nil && !whole {
		next.last, next.first = st.last, st.first
	}
	for page := from; ; {
		entries, err := p.rdb.Do(ctx, "XRANGE", k, page, "+", "COUNT", streamPage).Slice()
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			id, fields, err := entry(e)
			if err != nil {
				return nil, nil, fmt.Errorf("stream %s: %w", k, err)
			}
			cmds = append(cmds, append([]string{"XADD", k, id}, fields...))
			next.last = id
			if from == "-" && next.first == "" {
				next.first = id
			}
		}
		if len(entries) < streamPage {
			break
		}
		page = "(" + next.last
		if spill != nil {
			if err := spill(cmds); err != nil {
				return nil, nil, err
			}
			cmds = nil
		}
	}
	if from != "-" {
		// Trimmed since: the first entry moved.
		first, err := p.rdb.Do(ctx, "XRANGE", k, "-", "+", "COUNT", "1").Slice()
		if err != nil {
			return nil, nil, err
		}
		if len(first) == 0 {
			if next.first != "" {
				cmds = append(cmds, []string{"XTRIM", k, "MAXLEN", "0"})
			}
			next.first = ""
		} else if id, _, err := entry(first[0]); err == nil && id != next.first {
			cmds = append(cmds, []string{"XTRIM", k, "MINID", id})
			next.first = id
		}
	}
	groups, err := p.rdb.Do(ctx, "XINFO", "GROUPS", k).Slice()
	if err != nil {
		return nil, nil, err
	}
	for _, g := range groups {
		name, lastID := groupInfo(g)
		if name == "" {
			continue
		}
		next.groups[name] = true
		cmds = append(cmds, []string{"XGROUP", "DESTROY", k, name}, []string{"XGROUP", "CREATE", k, name, lastID, "MKSTREAM"})
		pending, err := p.rdb.Do(ctx, "XPENDING", k, name, "-", "+", strconv.Itoa(1<<30)).Slice()
		if err != nil {
			return nil, nil, err
		}
		for _, pe := range pending {
			f, ok := pe.([]any)
			if !ok || len(f) < 4 {
				continue
			}
			cmds = append(cmds, []string{"XCLAIM", k, name, fmt.Sprint(f[1]), "0", fmt.Sprint(f[0]),
				"IDLE", fmt.Sprint(f[2]), "RETRYCOUNT", fmt.Sprint(f[3]), "FORCE", "JUSTID"})
		}
	}
	if st != nil && !whole {
		for g := range st.groups {
			if !next.groups[g] {
				cmds = append(cmds, []string{"XGROUP", "DESTROY", k, g})
			}
		}
	}
	return cmds, next, nil
}

// entry reads one entry of an XRANGE reply: its id and its fields and values, in order.
func entry(e any) (string, []string, error) {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return "", nil, errors.New("unexpected XRANGE reply")
	}
	id, ok := pair[0].(string)
	if !ok {
		return "", nil, errors.New("unexpected XRANGE id")
	}
	raw, _ := pair[1].([]any)
	fields := make([]string, len(raw))
	for i, f := range raw {
		if s, ok := f.(string); ok {
			fields[i] = s // the reply's own string: no copy
		} else {
			fields[i] = fmt.Sprint(f)
		}
	}
	return id, fields, nil
}

// groupInfo reads a group's name and last delivered id from an XINFO GROUPS reply.
func groupInfo(g any) (name, lastID string) {
	f, ok := g.([]any)
	if !ok {
		return "", ""
	}
	for i := 0; i+1 < len(f); i += 2 {
		switch fmt.Sprint(f[i]) {
		case "name":
			name = fmt.Sprint(f[i+1])
		case "last-delivered-id":
			lastID = fmt.Sprint(f[i+1])
		}
	}
	return name, lastID
}

// loadStreams records what the journal holds of each stream after a replay: all of it.
func (p *inProcess) loadStreams(ctx context.Context) error {
	keys, err := p.rdb.Keys(ctx, "*").Result()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if t, err := p.rdb.Type(ctx, k).Result(); err != nil || t != "stream" {
			continue
		}
		st := &streamState{groups: map[string]bool{}}
		if first, err := p.rdb.XRangeN(ctx, k, "-", "+", 1).Result(); err == nil && len(first) == 1 {
			st.first = first[0].ID
		}
		if last, err := p.rdb.XRevRangeN(ctx, k, "+", "-", 1).Result(); err == nil && len(last) == 1 {
			st.last = last[0].ID
		}
		groups, err := p.rdb.Do(ctx, "XINFO", "GROUPS", k).Slice()
		if err != nil {
			return err
		}
		for _, g := range groups {
			if name, _ := groupInfo(g); name != "" {
				st.groups[name] = true
			}
		}
		p.streams[k] = st
	}
	return nil
}
