package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// EmbeddedOptions configure the embedded Redis-protocol store of `hemostat run`.
type EmbeddedOptions struct {
	Addr          string        // loopback address to serve on, e.g. 127.0.0.1:6379
	DataDir       string        // where the snapshot lives; "" keeps nothing on disk
	SnapshotEvery time.Duration // default 1s
	Logger        *slog.Logger
}

// Embedded is an in-process Redis-protocol server (miniredis) with TTLs on the wall clock and its state
// (the audit trail included) snapshotted to disk, so `hemostat dash` and `hemostat audit` in another
// terminal work unchanged and a restart keeps the history.
type Embedded struct {
	m      *miniredis.Miniredis
	o      EmbeddedOptions
	c      *redis.Client
	mu     sync.Mutex // serialises snapshots
	stop   context.CancelFunc
	done   chan struct{}
	closed bool
}

const snapshotFile = "hemostat-state.json"

// StartEmbedded restores the snapshot from DataDir, if any, and starts serving on Addr.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.StartAddr(o.Addr); err != nil {
		return nil, fmt.Errorf("embedded store on %s: %w", o.Addr, err)
	}
	e := &Embedded{m: m, o: o, c: redis.NewClient(&redis.Options{Addr: m.Addr(), PoolSize: 4})}
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			m.Close()
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if err := e.restore(); err != nil {
			m.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan struct{})
	go e.loop(ctx) // exits when Close cancels ctx
	return e, nil
}

// Addr is the address the store serves on.
func (e *Embedded) Addr() string { return e.m.Addr() }

// URL is the redis:// URL of the store.
func (e *Embedded) URL() string { return "redis://" + e.m.Addr() + "/0" }

// Close takes a last snapshot and stops serving.
func (e *Embedded) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	e.stop()
	<-e.done
	err := e.Snapshot()
	e.c.Close()
	e.m.Close()
	return err
}

func (e *Embedded) loop(ctx context.Context) {
	defer close(e.done)
	t := time.NewTicker(e.o.SnapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.Snapshot(); err != nil {
				e.o.Logger.Warn("embedded store snapshot failed", "err", err)
			}
		}
	}
}

type dumpKey struct {
	Type   string            `json:"type"`
	TTLms  int64             `json:"ttl_ms,omitempty"`
	String string            `json:"string,omitempty"`
	Hash   map[string]string `json:"hash,omitempty"`
	List   []string          `json:"list,omitempty"`
	Set    []string          `json:"set,omitempty"`
	ZSet   []redis.Z         `json:"zset,omitempty"`
	Stream []dumpEntry       `json:"stream,omitempty"`
	Groups []dumpGroup       `json:"groups,omitempty"`
}

type dumpEntry struct {
	ID     string   `json:"id"`
	Values []string `json:"values"`
}

type dumpGroup struct {
	Name string `json:"name"`
	From string `json:"from"` // restore the group here: before its oldest pending entry, so unacked work is redelivered
}

// Snapshot writes the whole state to DataDir atomically.
func (e *Embedded) Snapshot() error {
	if e.o.DataDir == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := e.c.Keys(ctx, "*").Result()
	if err != nil {
		return err
	}
	sort.Strings(keys)
	state := make(map[string]dumpKey, len(keys))
	for _, k := range keys {
		d, err := e.dump(ctx, k)
		if err != nil {
			if errors.Is(err, redis.Nil) {
				continue
			}
			return fmt.Errorf("snapshot %s: %w", k, err)
		}
		state[k] = d
	}
	b, err := json.Marshal(state)
	if err != nil {
		return err
	}
	tmp := filepath.Join(e.o.DataDir, snapshotFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(e.o.DataDir, snapshotFile))
}

func (e *Embedded) dump(ctx context.Context, k string) (dumpKey, error) {
	typ, err := e.c.Type(ctx, k).Result()
	if err != nil {
		return dumpKey{}, err
	}
	d := dumpKey{Type: typ}
	if ttl, err := e.c.PTTL(ctx, k).Result(); err == nil && ttl > 0 {
		d.TTLms = ttl.Milliseconds()
	}
	switch typ {
	case "string":
		d.String, err = e.c.Get(ctx, k).Result()
	case "hash":
		d.Hash, err = e.c.HGetAll(ctx, k).Result()
	case "list":
		d.List, err = e.c.LRange(ctx, k, 0, -1).Result()
	case "set":
		d.Set, err = e.c.SMembers(ctx, k).Result()
	case "zset":
		d.ZSet, err = e.c.ZRangeWithScores(ctx, k, 0, -1).Result()
	case "stream":
		var msgs []redis.XMessage
		msgs, err = e.c.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			return d, err
		}
		for _, m := range msgs {
			de := dumpEntry{ID: m.ID}
			fields := make([]string, 0, len(m.Values))
			for f := range m.Values {
				fields = append(fields, f)
			}
			sort.Strings(fields)
			for _, f := range fields {
				de.Values = append(de.Values, f, fmt.Sprint(m.Values[f]))
			}
			d.Stream = append(d.Stream, de)
		}
		groups, gerr := e.c.XInfoGroups(ctx, k).Result()
		if gerr != nil {
			return d, nil // a stream without groups
		}
		for _, g := range groups {
			from := g.LastDeliveredID
			if g.Pending > 0 {
				if p, err := e.c.XPending(ctx, k, g.Name).Result(); err == nil && p.Lower != "" {
					from = beforeID(p.Lower)
				}
			}
			d.Groups = append(d.Groups, dumpGroup{Name: g.Name, From: from})
		}
	default:
		return d, redis.Nil
	}
	return d, err
}

// beforeID returns the stream id just before id, so a group restored there delivers id again.
func beforeID(id string) string {
	ms, seq, _ := strings.Cut(id, "-")
	s, _ := strconv.ParseUint(seq, 10, 64)
	if s > 0 {
		return ms + "-" + strconv.FormatUint(s-1, 10)
	}
	m, _ := strconv.ParseUint(ms, 10, 64)
	if m == 0 {
		return "0-0"
	}
	return strconv.FormatUint(m-1, 10) + "-18446744073709551615"
}

func (e *Embedded) restore() error {
	b, err := os.ReadFile(filepath.Join(e.o.DataDir, snapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	var state map[string]dumpKey
	if err := json.Unmarshal(b, &state); err != nil {
		return fmt.Errorf("snapshot %s is corrupt: %w", filepath.Join(e.o.DataDir, snapshotFile), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pipe := e.c.Pipeline()
	for k, d := range state {
		switch d.Type {
		case "string":
			pipe.Set(ctx, k, d.String, 0)
		case "hash":
			if len(d.Hash) > 0 {
				pipe.HSet(ctx, k, d.Hash)
			}
		case "list":
			if len(d.List) > 0 {
				pipe.RPush(ctx, k, anys(d.List)...)
			}
		case "set":
			if len(d.Set) > 0 {
				pipe.SAdd(ctx, k, anys(d.Set)...)
			}
		case "zset":
			if len(d.ZSet) > 0 {
				pipe.ZAdd(ctx, k, d.ZSet...)
			}
		case "stream":
			for _, en := range d.Stream {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, ID: en.ID, Values: anys(en.Values)})
			}
			for _, g := range d.Groups {
				pipe.XGroupCreateMkStream(ctx, k, g.Name, g.From)
			}
		}
		if d.TTLms > 0 {
			pipe.PExpire(ctx, k, time.Duration(d.TTLms)*time.Millisecond)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	e.o.Logger.Info("embedded store restored", "keys", len(state), "dir", e.o.DataDir)
	return nil
}

// anys converts strings to the []any the driver's variadic commands take.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}
