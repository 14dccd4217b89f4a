package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// child supervises a redis-server process: AOF written and fsynced before each reply, loopback only,
// restarted with backoff when it dies, shut down with SHUTDOWN (which flushes the AOF) on Close.
type child struct {
	o    Options
	path string
	addr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	tail   *logTail

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when supervise returns
}

// readyTimeout bounds the wait for a child to load its AOF and answer.
const readyTimeout = 5 * time.Minute

func startChild(o Options, path string) (*child, error) {
	addr, err := resolvePort(o.Addr)
	if err != nil {
		return nil, err
	}
	c := &child{o: o, path: path, addr: addr, done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.spawn(); err != nil {
		c.cancel()
		return nil, err
	}
	go c.supervise() // exits when Close cancels c.ctx
	return c, nil
}

func (c *child) Kind() Kind   { return RedisServer }
func (c *child) Addr() string { return c.addr }

// args is redis-server's configuration: durable before it answers, compacted in the background, never
// evicting, reachable only on loopback.
//
// appendfsync is "always", not "everysec": with everysec, while the previous second's fsync still runs
// (a busy disk), redis-server postpones even the write of its buffer to the file for up to two seconds and
// answers meanwhile, so a kill -9 then takes back writes acknowledged up to two seconds earlier, audit
// entries a reader has seen among them (it happened in CI, on a disk shared by parallel tests). With
// always it writes and fsyncs the commands of one event-loop pass before it sends their replies: one
// fsync per pass, not per command, and hemostat writes tens of commands a second on one host
// (BENCHMARKS.md has the cost).
func (c *child) args() []string {
	host, port, _ := net.SplitHostPort(c.addr)
	return []string{
		"--port", port, "--bind", host, "--protected-mode", "yes",
		"--dir", c.o.DataDir,
		"--appendonly", "yes", "--appendfsync", "always", "--appenddirname", "appendonlydir",
		"--aof-use-rdb-preamble", "yes", "--aof-load-truncated", "yes",
		"--auto-aof-rewrite-percentage", "100", "--auto-aof-rewrite-min-size", "64mb",
		"--save", "", "--dbfilename", "hemostat.rdb",
		"--maxmemory-policy", "noeviction",
		"--daemonize", "no", "--logfile", "", "--loglevel", "notice", "--always-show-logo", "no",
	}
}

// spawn starts the process and waits until it has loaded its AOF and answers PING. When it exits first,
// the error carries its last warning lines (a corrupt AOF names its file there).
func (c *child) spawn() error {
	cmd := exec.Command(c.path, c.args()...)
	detach(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	tail := &logTail{}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.path, err)
	}
	exited := make(chan struct{})
	logged := make(chan struct{})
	go func() { // exits at EOF, when the process has exited
		defer close(logged)
		c.relay(out, tail)
	}()
	go func() { // exits when the process exits
		<-logged
		_ = cmd.Wait()
		close(exited)
	}()
	c.mu.Lock()
	c.cmd, c.exited, c.tail = cmd, exited, tail
	c.mu.Unlock()
	if err := c.waitReady(exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("embedded redis-server (data dir %s): %w%s", c.o.DataDir, err, c.explain(tail.warnings()))
	}
	c.o.Logger.Info("embedded redis-server ready", "addr", c.addr, "pid", cmd.Process.Pid, "dir", c.o.DataDir)
	return nil
}

// waitReady polls until the server answers and INFO persistence says loading:0.
func (c *child) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	rdb := redis.NewClient(&redis.Options{Addr: c.addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	for {
		select {
		case <-exited:
			return errors.New("redis-server exited before it was ready")
		default:
		}
		var err error
		if nc, derr := net.DialTimeout("tcp", c.addr, time.Second); derr != nil {
			err = derr // not listening yet: asking go-redis would only log its retries
		} else {
			nc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var info string
			info, err = rdb.Info(ctx, "persistence").Result()
			cancel()
			if err == nil && loaded(info) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready on %s after %s: %v", c.addr, readyTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("redis-server exited before it was ready")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// loaded says INFO persistence reports loading:0 (not async_loading:0, which a substring would match).
func loaded(info string) bool {
	for l := range strings.Lines(info) {
		if strings.TrimSpace(l) == "loading:0" {
			return true
		}
	}
	return false
}

// relay copies the child's log to the logger: its warnings as warnings, the rest at debug. A truncated
// AOF tail that was dropped is a warning of its own.
func (c *child) relay(r io.Reader, tail *logTail) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		msg, level := parseRedisLog(line)
		tail.add(msg, level == '#')
		switch {
		case strings.Contains(msg, "aof-load-truncated") || strings.Contains(msg, "short read"):
			c.o.Logger.Warn("embedded redis-server: the AOF ended in a torn record; it was dropped and the rest loaded", "dir", c.o.DataDir, "redis", msg)
		case level == '#' && alarming(msg):
			c.o.Logger.Warn("embedded redis-server", "redis", msg)
		case level == '#':
			c.o.Logger.Info("embedded redis-server", "redis", msg)
		default:
			c.o.Logger.Debug("embedded redis-server", "redis", msg)
		}
	}
}

// alarming says a line of redis-server's warning level is worth a warning here: it logs its start-up
// notes ("Server initialized") at that level too, and the memory overcommit advice on every start.
func alarming(msg string) bool {
	if strings.Contains(msg, "overcommit") {
		return false
	}
	for _, w := range []string{"WARNING", "Bad", "Can't", "Failed", "Fatal", "error", "Error", "refus", "denied", "corrupt", "Unrecoverable"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// parseRedisLog splits "pid:R 02 Dec 2026 01:50:00.000 # message" into the message and its level
// character ('.', '-', '*' or '#').
func parseRedisLog(line string) (string, byte) {
	for _, lv := range []string{" # ", " * ", " - ", " . "} {
		if i := strings.Index(line, lv); i >= 0 {
			return line[i+3:], lv[1]
		}
	}
	return line, '*'
}

// aofFile finds the AOF file redis-server names in a log line.
var aofFile = regexp.MustCompile(`append only file (\S+?):`)

// explain adds the full path of an AOF file named in redis-server's last warning.
func (c *child) explain(msg string) string {
	if m := aofFile.FindStringSubmatch(msg); m != nil {
		return msg + " (file " + filepath.Join(c.o.DataDir, "appendonlydir", m[1]) + "; the store did not start empty)"
	}
	return msg
}

// supervise restarts the child when it dies, with backoff from 100ms to 30s, reset after a minute up.
func (c *child) supervise() {
	defer close(c.done)
	backoff := 100 * time.Millisecond
	for {
		c.mu.Lock()
		exited, started := c.exited, time.Now()
		c.mu.Unlock()
		select {
		case <-c.ctx.Done():
			return
		case <-exited:
		}
		if c.ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		state, tail := c.cmd.ProcessState, c.tail
		c.mu.Unlock()
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		for {
			c.o.Logger.Error("embedded redis-server exited; restarting", "exit", state, "in", backoff, "last_log", tail.last())
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			err := c.spawn()
			if err == nil {
				break
			}
			c.mu.Lock()
			tail = c.tail
			c.mu.Unlock()
			c.o.Logger.Error("embedded redis-server did not restart", "err", err)
			if c.ctx.Err() != nil {
				return
			}
		}
	}
}

// Close shuts the server down with SHUTDOWN, which fsyncs the AOF, and waits for it to exit.
func (c *child) Close() error {
	c.cancel()
	<-c.done
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	select {
	case <-exited:
		return nil
	default:
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.addr, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := rdb.Shutdown(ctx).Err() // the connection closes as the server exits
	cancel()
	rdb.Close()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("embedded redis-server did not stop within 30s (SHUTDOWN: %v); killed", err)
	}
	if st := cmd.ProcessState; st != nil && !st.Success() {
		c.mu.Lock()
		tail := c.tail
		c.mu.Unlock()
		return fmt.Errorf("embedded redis-server stopped with %s: %s", st, tail.last())
	}
	return nil
}

// resolvePort replaces port 0 with a free port: redis-server needs a concrete one.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("embedded store address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("embedded store address %s: %w", addr, err)
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// logTail keeps the child's last log lines, for errors.
type logTail struct {
	mu    sync.Mutex
	lines []string
	warns []string
}

func (t *logTail) add(line string, warning bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 20 {
		t.lines = t.lines[1:]
	}
	if warning {
		t.warns = append(t.warns, line)
		if len(t.warns) > 5 {
			t.warns = t.warns[1:]
		}
	}
}

// warnings is ": " and the last warning line, or the last line when there was none.
func (t *logTail) warnings() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.warns) > 0 {
		return ": " + t.warns[len(t.warns)-1]
	}
	if len(t.lines) > 0 {
		return ": " + t.lines[len(t.lines)-1]
	}
	return ""
}

func (t *logTail) last() string {
	if t == nil {
		return ""
	}
	return strings.TrimPrefix(t.warnings(), ": ")
}
