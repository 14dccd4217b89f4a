package embedded

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// inProcess is miniredis with the two costs that grew with the retained state taken out:
//   - TTLs advance on a ticker (once a second) instead of on every command: miniredis's ClockTTL runs
//     through every key, sorted, before each command, and the agents' blocking reads send commands
//     all the time;
//   - writes go to an append-only journal: a hook sees each write command's keys and marks them dirty,
//     and every FlushEvery the dirty keys' new state (for a stream, its new entries and its groups) is
//     appended as one record and fsynced. When the journal has grown well past the live state, it is
//     rewritten from that state in the background.
type inProcess struct {
	o   Options
	m   *miniredis.Miniredis
	srv *server.Server // m's, serving the clients: the hook runs their writes on it
	rdb *redis.Client  // over an in-memory pipe: reads the state for the journal
	j   *journal       // nil without a data dir

	rewriteMin int64 // rewriteMin when the store started

	dirtyMu sync.Mutex
	dirty   map[string]struct{}
	all     bool                     // a command touched keys it does not name (FLUSHDB): dump everything
	multi   map[*server.Peer]*queued // keys queued by each connection's open MULTI
	running map[*server.Peer]bool    // connections whose write the hook is running
	prev    map[string]struct{}      // keys of the last flush, dumped once more (see flush)
	streams map[string]*streamState  // what the journal holds of each stream; flush goroutine only
	stats   struct{ replayErrors, records int }
	durable map[string]bool // keys whose writes are journaled before any read (Options.DurableReads)
	flushMu sync.Mutex      // one flush at a time: the loop's, a durable read's, the last one

	replay    *server.Peer // the replay's connection, straight to the server
	replayBuf *bytes.Buffer
	replayW   *bufio.Writer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// streamState is what the journal holds of a stream.
type streamState struct {
	last   string          // id of the last entry written
	first  string          // id of the first entry, after the trims written
	groups map[string]bool // groups written
}

const (
	defaultFlushEvery = 500 * time.Millisecond
	defaultTTLTick    = time.Second
)

// rewriteMin is how far past the live state the journal grows before a rewrite (a variable for tests).
var rewriteMin int64 = 16 << 20

// journalClient names the journal's own connections: their reads never wait for a flush.
const journalClient = "hemostat-journal"

// ErrOneDatabase refuses SELECT of another database on the journaled in-process store.
const errOneDatabase = "ERR the embedded store keeps database 0 only"

func startInProcess(o Options) (*inProcess, error) {
	if o.FlushEvery <= 0 {
		o.FlushEvery = defaultFlushEvery
	}
	if o.TTLTick <= 0 {
		o.TTLTick = defaultTTLTick
	}
	p := &inProcess{o: o, m: miniredis.NewMiniRedis(), dirty: map[string]struct{}{}, prev: map[string]struct{}{},
		multi: map[*server.Peer]*queued{}, running: map[*server.Peer]bool{}, streams: map[string]*streamState{}, durable: map[string]bool{}}
	p.rewriteMin = rewriteMin
	if o.DurableReads == nil {
		o.DurableReads = []string{event.StreamAudit}
	}
	for _, k := range o.DurableReads {
		p.durable[k] = true
	}
	// Until the listener starts, the store is reachable only on this pipe: the replay is served to no one.
	p.rdb = redis.NewClient(&redis.Options{Protocol: 2, PoolSize: 2, MaxRetries: -1, ClientName: journalClient,
		Dialer: func(context.Context, string, string) (net.Conn, error) { return p.m.Dial() }})
	if o.DataDir != "" {
		path := filepath.Join(o.DataDir, JournalFile)
		start := time.Now()
		size, err := replayJournal(path, o.Logger, p.apply)
		if err != nil {
			p.rdb.Close()
			p.m.Close()
			return nil, err
		}
		if p.j, err = openJournal(path, size); err != nil {
			p.rdb.Close()
			p.m.Close()
			return nil, err
		}
		keys := len(p.m.Keys())
		o.Logger.Info("embedded store restored", "file", path, "records", p.stats.records, "keys", keys,
			"bytes", size, "took", time.Since(start).Round(time.Millisecond))
		if p.stats.replayErrors > 0 {
			o.Logger.Debug("embedded store: replayed commands that failed (records overlapping a rewrite)", "count", p.stats.replayErrors)
		}
		// What was replayed is in the file already: the hook starts from a clean slate, and each stream's
		// journal position is where the replay left it.
		if err := p.loadStreams(context.Background()); err != nil {
			p.rdb.Close()
			p.m.Close()
			p.j.close()
			return nil, fmt.Errorf("embedded store: read the replayed streams: %w", err)
		}
	}
	if err := p.m.StartAddr(o.Addr); err != nil {
		p.rdb.Close()
		p.m.Close()
		if p.j != nil {
			p.j.close()
		}
		return nil, fmt.Errorf("embedded store on %s: %w", o.Addr, err)
	}
	if p.j != nil {
		p.srv = p.m.Server()
		p.srv.SetPreHook(p.hook)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.tickTTLs() // exits when Close cancels p.ctx
	if p.j != nil {
		p.wg.Add(1)
		go p.flushLoop() // exits when Close cancels p.ctx
	}
	return p, nil
}

func (p *inProcess) Kind() Kind   { return InProcess }
func (p *inProcess) Addr() string { return p.m.Addr() }

// apply runs one record's commands, dispatched straight to the server (as its Lua scripts do). A
// command's error is counted, not fatal: records written while a rewrite ran overlap its output (an
// entry added twice), and they are idempotent otherwise.
func (p *inProcess) apply(cmds [][]string) error {
	p.stats.records++
	if p.replay == nil {
		if _, err := p.m.Dial(); err != nil { // starts the server without a listener
			return err
		}
		p.replayBuf = &bytes.Buffer{}
		p.replayW = bufio.NewWriter(p.replayBuf)
		p.replay = server.NewPeer(p.replayW)
	}
	srv := p.m.Server()
	for _, c := range cmds {
		p.replayBuf.Reset()
		srv.Dispatch(p.replay, c)
		p.replayW.Flush()
		if b := p.replayBuf.Bytes(); len(b) > 0 && b[0] == '-' {
			p.stats.replayErrors++
		}
	}
	return nil
}

// tickTTLs advances the store's TTLs by the time elapsed, once every TTLTick.
func (p *inProcess) tickTTLs() {
	defer p.wg.Done()
	t := time.NewTicker(p.o.TTLTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// flushLoop writes the dirty keys every FlushEvery, and starts a rewrite when the journal has grown.
func (p *inProcess) flushLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.o.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			if err := p.flushNow(); err != nil {
				p.o.Logger.Error("embedded store: journal write failed; will retry", "err", err)
				continue
			}
			f, err := p.j.startRewrite(p.rewriteMin)
			if err != nil {
				p.o.Logger.Error("embedded store: journal rewrite failed", "err", err)
			} else if f != nil {
				p.wg.Add(1)
				go p.rewrite(f) // exits when the rewrite is written or has failed
			}
		}
	}
}

// flushNow flushes, one flush at a time.
func (p *inProcess) flushNow() error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	return p.flush()
}

// flush appends the state of the keys written since the last flush, and of those of the last flush once
// more: a write's first mark, before it runs, may have been taken by the last flush before it ran, and a
// durable read that comes before its second mark counts on this flush to write it.
func (p *inProcess) flush() error {
	p.dirtyMu.Lock()
	cur, all := p.dirty, p.all
	p.dirty, p.all = map[string]struct{}{}, false
	keys := make([]string, 0, len(cur)+len(p.prev))
	for k := range cur {
		keys = append(keys, k)
	}
	for k := range p.prev {
		if _, ok := cur[k]; !ok {
			keys = append(keys, k)
		}
	}
	p.prev = cur
	p.dirtyMu.Unlock()
	ctx := context.Background()
	var cmds [][]string
	held := p.streams // what the journal holds of each stream
	if all {
		ks, err := p.rdb.Keys(ctx, "*").Result()
		if err != nil {
			p.remark(keys, true)
			return err
		}
		cmds = append(cmds, []string{"FLUSHDB"})
		held = nil // every stream written whole
		keys = ks
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	var failed []string
	moved := make(map[string]*streamState, len(keys)) // what the journal holds once the record is written
	for _, k := range keys {
		c, next, err := p.dumpKey(ctx, k, held[k], false, nil)
		if err != nil {
			failed = append(failed, k)
			continue
		}
		cmds = append(cmds, c...)
		moved[k] = next
	}
	if len(failed) > 0 {
		p.remark(failed, false)
	}
	if len(cmds) == 0 {
		return nil
	}
	if err := p.j.append(encodeRecord(cmds)); err != nil {
		p.remark(keys, all) // the positions stay where the file has them
		return err
	}
	// Only now: a position moved past entries that did not reach the file would skip them for good.
	if all {
		clear(p.streams)
	}
	for k, st := range moved {
		if st == nil {
			delete(p.streams, k)
		} else {
			p.streams[k] = st
		}
	}
	return nil
}

func (p *inProcess) remark(keys []string, all bool) {
	p.dirtyMu.Lock()
	defer p.dirtyMu.Unlock()
	for _, k := range keys {
		p.dirty[k] = struct{}{}
	}
	p.all = p.all || all
}

// rewrite writes the live state to f, the rewrite's file, and puts it in place of the journal, with the
// records appended meanwhile.
func (p *inProcess) rewrite(f *os.File) {
	defer p.wg.Done()
	start := time.Now()
	werr := p.writeAll(f)
	size, err := p.j.finishRewrite(f, werr)
	if err != nil {
		p.o.Logger.Error("embedded store: journal rewrite failed", "err", err)
		return
	}
	p.o.Logger.Info("embedded store: journal rewritten from the live state", "file", p.j.path, "bytes", size,
		"took", time.Since(start).Round(time.Millisecond))
}

// writeAll writes every key's whole state to f, in records of about a thousand commands (a long stream
// a page at a time), through a buffer: the rewrite holds a page of the state, not all of it.
func (p *inProcess) writeAll(f io.Writer) error {
	ctx := p.ctx
	keys, err := p.rdb.Keys(ctx, "*").Result()
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	write := func(cmds [][]string) error {
		if len(cmds) == 0 {
			return nil
		}
		_, err := w.Write(encodeRecord(cmds))
		return err
	}
	var cmds [][]string
	for _, k := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, _, err := p.dumpKey(ctx, k, nil, true, func(page [][]string) error {
			if err := write(cmds); err != nil {
				return err
			}
			cmds = nil
			return write(page)
		})
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		cmds = append(cmds, c...)
		if len(cmds) >= streamPage {
			if err := write(cmds); err != nil {
				return err
			}
			cmds = nil
		}
	}
	if err := write(cmds); err != nil {
		return err
	}
	return w.Flush()
}

// Close stops serving, writes what is dirty and closes the journal.
func (p *inProcess) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	p.m.Close() // no more writes
	p.cancel()
	p.wg.Wait()
	var err error
	if p.j != nil {
		// Every client is gone: what changed is in dirty or prev, and nothing moves now.
		if ferr := p.flushAfterStop(); ferr != nil {
			err = ferr
		}
		if cerr := p.j.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	p.rdb.Close()
	return err
}

// flushAfterStop is the last flush, on the pipe only (the listener is closed).
func (p *inProcess) flushAfterStop() error {
	// m.Close dropped the pipe server too; Dial starts another one without a listener.
	p.rdb.Close()
	p.rdb = redis.NewClient(&redis.Options{Protocol: 2, PoolSize: 1, MaxRetries: -1, ClientName: journalClient,
		Dialer: func(context.Context, string, string) (net.Conn, error) { return p.m.Dial() }})
	defer p.m.Close()
	// The whole state, not only the keys marked since the last flushes: the hook marks a key before its
	// command runs, and a command that waited longer than a flush interval (a loaded machine) may have
	// landed after both flushes that looked at its key. Every command has landed now.
	p.remark(nil, true)
	return p.flushNow()
}
