package e2e_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/alert/alerttest"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

var updateACL = flag.Bool("update", false, "regenerate examples/redis/users.acl from the commands the agents send")

// aclFile is the file of least-privilege users, derived from the code by TestACLUsers -update.
const aclFile = "../../examples/redis/users.acl"

// aclAgents are the users of the file that run an agent or read hemostat's state, each with the process
// that logs in as it. The admin user (operators' CLI commands) is all-powerful and not derived.
var aclAgents = []string{"monitor", "analyze", "respond", "alert", "export", "dash"}

// aclPassword is the placeholder password of a user in the file (to be replaced: examples/redis/README.md).
func aclPassword(user string) string { return "change-me-" + user }

// aclExtra are the rights a consumer needs on paths one crash does not take: claiming another consumer's
// pending entries (pkg/bus/consume.go) and dead-lettering a refused entry with its count (--signing-key).
// Each entry of aclPaths gives a user the keys ("R " read, "W " write, "RW " both) of a path the crash
// does not take, with the code that takes it.
var (
	aclConsumerCommands = []string{"xack", "xautoclaim", "xclaim", "xgroup|create", "xpending", "xadd", "hincrby", "multi", "exec"}
	aclConsumerKeys     = []string{event.StreamDeadLetter, schema.KeyBusRejected}
	aclScriptCommands   = []string{"eval", "evalsha", "script|load"} // go-redis's Script: EVALSHA, then EVAL on NOSCRIPT
	aclPaths            = map[string][]string{
		// pkg/store/containers/containers.go: the upgrade from the shared container table removes the host's
		// fields from it at the first write, only while it exists.
		"monitor": {"RW " + schema.KeyContainersLegacy},
		// pkg/store/incidents/analysis.go: an OOM kill's alert counts kills per target in a window.
		"analyze": {"RW " + schema.OOMKey("*")},
		// pkg/respond/respond.go, schema.RespondKeys: holds, and the shadow ledger of --dry-run and shadow mode.
		"respond": {"RW " + schema.Prefix + "respond:hold:*", "RW " + schema.Prefix + "shadow:*"},
		// pkg/store/notify/notify.go: failed deliveries, and Slack threads (--slack-token).
		"alert": {"RW " + schema.KeyNotifyFailed, "RW " + schema.NotifyThreadKey("*")},
	}
	// Commands of paths the crash may not take, with the code that takes them.
	aclPathCommands = map[string][]string{
		// pkg/store/containers/containers.go: the removal of the host's fields from the legacy container table.
		"monitor": {"hscan", "hdel"},
		// pkg/store/incidents/followups.go: the take script runs only when a follow-up is due (a poll that
		// finds none reads the earliest with ZRANGE), and the crash may heal before one is.
		"respond": {"zrangebyscore"},
	}
)

// TestACLUsers runs every agent as its own process, each logged in as its own user of
// examples/redis/users.acl, on a private redis-server that enforces the file, through a crash healed end
// to end; the dash reads as its user in a tmux pane. ACL LOG must stay empty: an agent that sends a
// command or touches a key or channel its user lacks fails the test. With -update the users get every
// right, a MONITOR records what each sends, and the file is written from that record.
func TestACLUsers(t *testing.T) {
	t.Parallel()
	admit(t, "acl")
	dc := testenv.RequireDocker(t)
	if _, err := exec.LookPath("tmux"); err != nil && !testenv.InCI() {
		t.Skip("tmux not installed")
	}
	ctx := context.Background()
	var srv *testenv.RedisServer
	var admin *redis.Client
	if *updateACL {
		srv = testenv.StartRedis(t)
		admin = redis.NewClient(&redis.Options{Addr: addrOf(srv)})
		for _, u := range aclAgents {
			if err := admin.Do(ctx, "ACL", "SETUSER", u, "reset", "on", ">"+aclPassword(u), "+@all", "~*", "&*").Err(); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		src, err := os.ReadFile(aclFile)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "users.acl")
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		srv = testenv.StartRedisWith(t, "--aclfile", path)
		admin = redis.NewClient(&redis.Options{Addr: addrOf(srv), Username: "admin", Password: aclPassword("admin")})
		if err := admin.Ping(ctx).Err(); err != nil {
			t.Fatalf("admin of %s: %v", aclFile, err)
		}
		if err := redis.NewClient(&redis.Options{Addr: addrOf(srv)}).Ping(ctx).Err(); err == nil {
			t.Errorf("the default user of %s answers without a password; want it off", aclFile)
		}
	}
	t.Cleanup(func() { admin.Close() })
	// The recorder's own commands (CLIENT LIST, COMMAND GETKEYSANDFLAGS) are sent as a user of its own.
	if err := admin.Do(ctx, "ACL", "SETUSER", "recorder", "reset", "on", ">"+aclPassword("recorder"), "+@all", "~*", "&*").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Do(ctx, "ACL", "LOG", "RESET")
	recClient := redis.NewClient(&redis.Options{Addr: addrOf(srv), Username: "recorder", Password: aclPassword("recorder")})
	t.Cleanup(func() { recClient.Close() })
	rec := startRecorder(t, addrOf(srv), recClient)

	url := func(user string) string {
		return fmt.Sprintf("redis://%s:%s@%s/0", user, aclPassword(user), addrOf(srv))
	}
	s := &scenario{t: t, name: "acl", host: "e2e-acl", url: url("admin"), rdb: admin, dc: dc,
		slack: alerttest.NewSlack(t), logs: &testenv.SyncBuffer{}}
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	common := []string{"--host-name", s.host, "--log-level", "debug", "--claim-idle", "3s"}
	agents := map[string][]string{
		"monitor": {"--include", "e2e-acl-*", "--interval", "500ms", "--reconcile-interval", "5s", "--consecutive", "2",
			"--recovery-hysteresis", "1s"},
		"analyze": nil,
		"respond": {"--backoff", "1s", "--cooldown", "5s", "--stable-for", "1s", "--settle", "10s"},
		"alert":   {"--slack-webhook-url", s.slack.WebhookURL("e2e-secret")},
		"export":  {"--listen", listen},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the agents' logs:\n%s", lastLines(s.logs.String(), 200))
		}
	})
	var stops []func()
	for _, name := range aclAgents[:5] {
		args := append(append([]string{name, "--redis-url", url(name)}, common...), agents[name]...)
		stops = append(stops, startAgent(t, s.logs, name, args))
	}
	s.eventually(30*time.Second, "all five agents heartbeating", func() bool {
		keys, _ := admin.Keys(ctx, "hemostat:agents:*").Result()
		return len(keys) >= 5
	})
	dash := startDash(t, url("dash"), s.host)

	id, name := s.container(docker.CreateOptions{Cmd: []string{"-once", "-exit-code", "3", "-exit-after", "1s"}})
	s.waitAlert(name, event.ClassCrashed, detectTimeout)
	c, _ := s.waitComplete(name, remediateTimeout, "verified restart", isSuccess)
	if !c.Verified {
		t.Errorf("restart not verified: %+v", c)
	}
	if st := s.state(id); st.State != "running" {
		t.Errorf("container is %s after the remediation, want running", st.State)
	}
	s.eventually(20*time.Second, "the remediated notification", func() bool { return len(s.notifications(name, "Remediated")) == 1 })
	s.eventually(20*time.Second, "the incident closed", func() bool {
		return admin.ZCard(ctx, schema.KeyIncidentsOpen).Val() == 0
	})
	s.eventually(20*time.Second, "the exporter's metrics of "+name, func() bool {
		resp, err := http.Get("http://" + listen + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), name)
	})
	s.eventually(20*time.Second, "the dash showing "+name, func() bool { return strings.Contains(dash.screen(), name) })

	// The CLI's readers, as the dash's user.
	for _, args := range [][]string{{"audit", "-o", "json"}, {"audit", "verify"}, {"incident"}} {
		cmd := exec.Command(binary, append(args, "--redis-url", url("dash"), "--host-name", s.host)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("hemostat %s as dash: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// The container removed (the monitor forgets it), then every agent stopped: their last writes are
	// recorded and checked too.
	ctxRm, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := dc.RemoveContainer(ctxRm, id); err != nil {
		t.Fatalf("remove %s: %v", name, err)
	}
	s.eventually(20*time.Second, "the monitor forgetting "+name, func() bool {
		fields, _ := admin.HKeys(ctx, schema.ContainersKey(s.host)).Result()
		return !strings.Contains(strings.Join(fields, " "), name)
	})
	dash.stop()
	for _, stop := range stops {
		stop()
	}
	rec.stop()

	if *updateACL {
		if err := os.WriteFile(aclFile, []byte(rec.file()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", aclFile)
		return
	}
	log, err := admin.Do(ctx, "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		t.Errorf("denied by %s: %v (regenerate with go test ./pkg/e2e -run TestACLUsers -update)", aclFile, e)
	}

	// Negative proofs.
	as := func(user string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addrOf(srv), Username: user, Password: aclPassword(user)})
		t.Cleanup(func() { c.Close() })
		return c
	}
	denied := func(user, what string, err error) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("%s as %s: %v, want NOPERM", what, user, err)
		}
	}
	mon := as("monitor")
	denied("monitor", "XADD remediation_needed", mon.XAdd(ctx, &redis.XAddArgs{Stream: event.RemediationNeededStream("h"), Values: []any{"x", "1"}}).Err())
	denied("monitor", "XADD audit", mon.XAdd(ctx, &redis.XAddArgs{Stream: event.StreamAudit, Values: []any{"x", "1"}}).Err())
	denied("monitor", "FLUSHALL", mon.FlushAll(ctx).Err())
	an := as("analyze")
	denied("analyze", "HSET ledger", an.HSet(ctx, schema.LedgerKey("h/web"), "breaker", "closed").Err())
	d := as("dash")
	denied("dash", "SET", d.Set(ctx, "hemostat:x", "1", 0).Err())
	denied("dash", "XADD remediation_needed", d.XAdd(ctx, &redis.XAddArgs{Stream: event.RemediationNeededStream("h"), Values: []any{"x", "1"}}).Err())
	denied("dash", "HSET incident", d.HSet(ctx, schema.IncidentKey("h/web/crashed"), "state", "closed").Err())
	denied("dash", "DEL audit", d.Del(ctx, event.StreamAudit).Err())
	denied("dash", "PUBLISH", d.Publish(ctx, event.RemediationNeededStream("h"), "x").Err())
	if err := d.XRevRangeN(ctx, event.StreamAudit, "+", "-", 1).Err(); err != nil {
		t.Errorf("XREVRANGE audit as dash: %v, want it readable", err)
	}
}

func addrOf(s *testenv.RedisServer) string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// startAgent runs one agent as its own process; the function returned (also called at cleanup) stops it
// with SIGINT.
func startAgent(t *testing.T, logs io.Writer, name string, args []string) func() {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hemostat %s: %v", name, err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { stopAgent(t, cmd, name) }) }
	t.Cleanup(stop)
	return stop
}

func stopAgent(t *testing.T, cmd *exec.Cmd, name string) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("hemostat %s exited with %v after SIGINT", name, err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("hemostat %s did not stop within 30s of SIGINT", name)
	}
}

// dashPane is `hemostat dash` in a detached tmux session on a private socket.
type dashPane struct{ socket string }

func (d dashPane) screen() string {
	out, _ := exec.Command("tmux", "-L", d.socket, "-f", "/dev/null", "capture-pane", "-p", "-t", "dash").Output()
	return string(out)
}

func startDash(t *testing.T, url, host string) dashPane {
	t.Helper()
	d := dashPane{socket: fmt.Sprintf("hemostat-acl-%d", os.Getpid())}
	cmd := exec.Command("tmux", "-L", d.socket, "-f", "/dev/null", "new-session", "-d", "-s", "dash", "-x", "200", "-y", "50",
		binary, "dash", "--redis-url", url, "--host-name", host, "--refresh", "500ms", "--no-color")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start the dash in tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dash screen:\n%s", d.screen())
		}
		d.stop()
	})
	return d
}

func (d dashPane) stop() {
	_ = exec.Command("tmux", "-L", d.socket, "-f", "/dev/null", "kill-server").Run()
}

// recorder follows MONITOR and records, per user, the commands sent and the keys and channels they name.
type recorder struct {
	t     *testing.T
	admin *redis.Client
	conn  net.Conn
	done  chan struct{}

	stopOnce sync.Once
	ended    bool

	mu       sync.Mutex
	users    map[string]string // client address -> user
	commands map[string]map[string]bool
	keys     map[string]map[string]string // user -> key pattern -> "R", "W" or "RW"
	channels map[string]map[string]bool
	unknown  map[string]bool
	// seenDefault are the clients last seen logged in as the default user (the test's own, or not yet
	// authenticated): their commands are not recorded.
	seenDefault map[string]bool
}

func startRecorder(t *testing.T, addr string, admin *redis.Client) *recorder {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	opt := admin.Options()
	auth := "*1\r\n$4\r\nPING\r\n"
	if opt.Username != "" {
		auth = resp("AUTH", opt.Username, opt.Password)
	}
	if _, err := conn.Write([]byte(auth + resp("MONITOR"))); err != nil {
		t.Fatal(err)
	}
	r := &recorder{t: t, admin: admin, conn: conn, done: make(chan struct{}), users: map[string]string{},
		commands: map[string]map[string]bool{}, keys: map[string]map[string]string{}, channels: map[string]map[string]bool{},
		unknown: map[string]bool{}, seenDefault: map[string]bool{}}
	go r.read()
	go r.pollClients()
	t.Cleanup(r.stop)
	return r
}

const recorderEnd = "hemostat-acl-recorder-end"

func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func (r *recorder) stop() {
	r.stopOnce.Do(func() {
		// MONITOR lags: read up to a marker sent now, so the last commands are recorded.
		r.admin.Echo(context.Background(), recorderEnd)
		testenv.Poll(10*time.Second, func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.ended })
		r.conn.Close()
		<-r.done
	})
}

// pollClients maps client addresses to users every few milliseconds while the recorder runs, so that a
// short-lived client (a CLI command) is known by the time its commands are read from MONITOR.
func (r *recorder) pollClients() {
	for {
		select {
		case <-r.done:
			return
		case <-time.After(5 * time.Millisecond):
			r.refreshClients()
		}
	}
}

func (r *recorder) refreshClients() {
	list, err := r.admin.ClientList(context.Background()).Result()
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range strings.Split(list, "\n") {
		var a, user string
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "addr="); ok {
				a = v
			}
			if v, ok := strings.CutPrefix(f, "user="); ok {
				user = v
			}
		}
		if a != "" && user != "default" { // a new connection is default until its HELLO ... AUTH
			r.users[a] = user
			delete(r.seenDefault, a)
		} else if a != "" {
			r.seenDefault[a] = true
		}
	}
}

func (r *recorder) read() {
	defer close(r.done)
	sc := bufio.NewScanner(r.conn)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	last := ""
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "+") || !strings.Contains(line, "[") {
			continue
		}
		i, j := strings.Index(line, "["), strings.Index(line, "]")
		if i < 0 || j < i {
			continue
		}
		fields := strings.Fields(line[i+1 : j])
		if len(fields) != 2 {
			continue
		}
		args := parseQuoted(line[j+1:])
		if len(args) == 0 {
			continue
		}
		if len(args) == 2 && strings.EqualFold(args[0], "echo") && args[1] == recorderEnd {
			r.mu.Lock()
			r.ended = true
			r.mu.Unlock()
		}
		user := last
		if fields[1] != "lua" { // a script's commands follow its EVALSHA, and are checked as its caller
			user = r.userOf(fields[1])
			last = user
		}
		if user == "" || user == "admin" || user == "default" || user == "recorder" {
			continue
		}
		r.note(user, args)
	}
}

func (r *recorder) userOf(addr string) string {
	r.mu.Lock()
	u, ok := r.users[addr]
	r.mu.Unlock()
	if ok {
		return u
	}
	r.refreshClients()
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok = r.users[addr]; !ok && !r.seenDefault[addr] {
		r.unknown[addr] = true
	}
	return u
}

// containers are the commands with subcommands: ACL names them command|subcommand.
var containers = map[string]bool{"client": true, "config": true, "xgroup": true, "xinfo": true, "script": true,
	"command": true, "object": true, "memory": true, "function": true, "latency": true, "slowlog": true, "pubsub": true}

func (r *recorder) note(user string, args []string) {
	name := strings.ToLower(args[0])
	if containers[name] && len(args) > 1 {
		name += "|" + strings.ToLower(args[1])
	}
	switch name {
	case "auth", "hello", "monitor":
		return
	}
	var channels []string
	switch name {
	case "publish", "spublish":
		if len(args) > 1 {
			channels = args[1:2]
		}
	case "subscribe", "psubscribe", "ssubscribe":
		channels = args[1:]
	}
	keys := r.keysOf(args)
	r.mu.Lock()
	defer r.mu.Unlock()
	add(r.commands, user, name)
	for _, c := range channels {
		add(r.channels, user, pattern(c)) // a host's request stream's mirror stands for every host's
	}
	for k, perm := range keys {
		if r.keys[user] == nil {
			r.keys[user] = map[string]string{}
		}
		r.keys[user][k] = mergePerm(r.keys[user][k], perm)
	}
}

func add(m map[string]map[string]bool, user, v string) {
	if m[user] == nil {
		m[user] = map[string]bool{}
	}
	m[user][v] = true
}

func mergePerm(a, b string) string {
	if a == "" || a == b {
		return b
	}
	return "RW"
}

// keysOf asks the server which arguments are keys and how the command uses them (COMMAND
// GETKEYSANDFLAGS), as key patterns: a key with a hash tag or an id stands for all of its kind.
func (r *recorder) keysOf(args []string) map[string]string {
	cmd := make([]any, 0, len(args)+2)
	cmd = append(cmd, "COMMAND", "GETKEYSANDFLAGS")
	for _, a := range args {
		cmd = append(cmd, a)
	}
	res, err := r.admin.Do(context.Background(), cmd...).Slice()
	if err != nil {
		return nil // no keys
	}
	out := map[string]string{}
	for _, e := range res {
		kf, ok := e.([]any)
		if !ok || len(kf) != 2 {
			continue
		}
		key, _ := kf[0].(string)
		flags, _ := kf[1].([]any)
		perm := ""
		for _, f := range flags {
			switch f {
			case "RO", "access":
				perm = mergePerm(perm, "R")
			case "RW", "OW", "RM", "insert", "delete", "update":
				perm = mergePerm(perm, "W")
			}
		}
		out[pattern(key)] = mergePerm(out[pattern(key)], perm)
	}
	return out
}

// pattern generalises a key to the pattern of its kind.
func pattern(key string) string {
	if i := strings.Index(key, "{"); i >= 0 {
		return key[:i] + "*"
	}
	for _, p := range []string{"hemostat:done:", "hemostat:audit:req:", "hemostat:alert:seen:", "hemostat:incident:", "hemostat:events:", event.StreamRemediationNeeded + ":"} {
		if strings.HasPrefix(key, p) {
			return p + "*"
		}
	}
	if strings.HasPrefix(key, "hemostat:agents:") {
		parts := strings.SplitN(key, ":", 4)
		if len(parts) == 4 {
			return "hemostat:agents:" + parts[2] + ":*"
		}
	}
	return key
}

// file renders the users: one line each, as redis-server's --aclfile reads them (it allows no comments).
func (r *recorder) file() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.unknown) > 0 {
		r.t.Errorf("commands from clients of no known user: %v", r.unknown)
	}
	var b strings.Builder
	b.WriteString("user default off resetkeys resetchannels -@all\n")
	b.WriteString("user admin on >" + aclPassword("admin") + " ~* &* +@all\n")
	for _, u := range aclAgents {
		cmds := r.commands[u]
		keys := r.keys[u]
		if keys == nil {
			keys = map[string]string{}
		}
		if cmds["eval"] || cmds["evalsha"] {
			for _, c := range aclScriptCommands {
				add(r.commands, u, c)
			}
		}
		for _, c := range aclPathCommands[u] {
			add(r.commands, u, c)
		}
		for _, p := range aclPaths[u] {
			perm, k, _ := strings.Cut(p, " ")
			k = pattern(k)
			for _, c := range perm {
				keys[k] = mergePerm(keys[k], string(c))
			}
		}
		if cmds["xreadgroup"] {
			for _, c := range aclConsumerCommands {
				add(r.commands, u, c)
			}
			for _, k := range aclConsumerKeys {
				keys[k] = mergePerm(keys[k], "W")
			}
		}
		fmt.Fprintf(&b, "user %s on >%s resetkeys resetchannels -@all", u, aclPassword(u))
		for _, c := range sorted(r.commands[u]) {
			b.WriteString(" +" + c)
		}
		own := schema.AgentKey(u, "*")
		for k, perm := range keys { // another agent's heartbeat is read as one of them all
			if strings.HasPrefix(k, schema.Prefix+"agents:") && k != own && perm == "R" {
				delete(keys, k)
				keys[schema.AgentKeyPattern] = "R"
			}
		}
		kl := make([]string, 0, len(keys))
		for k := range keys {
			kl = append(kl, k)
		}
		sort.Strings(kl)
		for _, k := range kl {
			switch keys[k] {
			case "R":
				b.WriteString(" %R~" + k)
			case "W":
				b.WriteString(" %W~" + k)
			default:
				b.WriteString(" ~" + k)
			}
		}
		for _, c := range sorted(r.channels[u]) {
			b.WriteString(" &" + c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseQuoted splits MONITOR's quoted arguments ("XADD" "key" "a\"b").
func parseQuoted(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		var b strings.Builder
		for i++; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case 'x':
					if i+2 < len(s) {
						if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
							b.WriteByte(byte(v))
							i += 2
							continue
						}
					}
					b.WriteByte('x')
				default:
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
	}
	return out
}
