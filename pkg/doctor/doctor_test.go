package doctor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/doctor"
	"github.com/hemostat/hemostat/pkg/monitor"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fakeDocker is an engine with a fixed container list and clock.
type fakeDocker struct {
	containers []docker.Container
	listErr    error
	pidErr     error
	skew       time.Duration
}

func (f *fakeDocker) Host() string                                  { return "unix:///var/run/docker.sock" }
func (f *fakeDocker) Versions() (string, string)                    { return "1.47", "28.0.1" }
func (f *fakeDocker) SystemTime(context.Context) (time.Time, error) { return now.Add(f.skew), nil }
func (f *fakeDocker) List(context.Context) ([]docker.Container, error) {
	return f.containers, f.listErr
}
func (f *fakeDocker) PID(context.Context, string) (int, error) {
	if f.pidErr != nil {
		return 0, f.pidErr
	}
	return 4242, nil
}

// fakeRedis answers INFO and CONFIG GET from maps; a nil config map means CONFIG is forbidden.
type fakeRedis struct {
	info   map[string]map[string]string
	config map[string]string
	skew   time.Duration
}

func (f *fakeRedis) ServerInfo(_ context.Context, section string) (map[string]string, error) {
	return f.info[section], nil
}
func (f *fakeRedis) ServerConfig(_ context.Context, p string) (map[string]string, error) {
	if f.config == nil {
		return nil, errors.New("ERR unknown command 'CONFIG'")
	}
	if v, ok := f.config[p]; ok {
		return map[string]string{p: v}, nil
	}
	return map[string]string{}, nil
}
func (f *fakeRedis) ServerTime(context.Context) (time.Time, error) { return now.Add(f.skew), nil }

type fakeCgroup struct {
	availErr, readErr error
}

func (f fakeCgroup) Available() error { return f.availErr }
func (f fakeCgroup) Version() int     { return 2 }
func (f fakeCgroup) Read(_ int, st *cgroup.Stats) error {
	st.MemoryWorkingSet, st.PIDs = 1<<20, 3
	return f.readErr
}

// fakeProber records the URLs it is asked about and fails those listed.
type fakeProber struct {
	probed []string
	fail   map[string]error
}

func (f *fakeProber) Probe(_ context.Context, u string) (string, error) {
	f.probed = append(f.probed, u)
	if err := f.fail[u]; err != nil {
		return "", err
	}
	return "TLS 1.3", nil
}

func goodRedis() *fakeRedis {
	return &fakeRedis{
		info: map[string]map[string]string{
			"server":      {"redis_version": "7.2.4", "redis_mode": "standalone"},
			"persistence": {"aof_enabled": "1", "aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"},
			"memory":      {"maxmemory": "0", "maxmemory_policy": "noeviction"},
			"replication": {"role": "master", "connected_slaves": "0"},
		},
		config: map[string]string{"appendonly": "yes", "appendfsync": "everysec", "save": "3600 1"},
	}
}

func goodDocker() *fakeDocker {
	return &fakeDocker{containers: []docker.Container{
		{ID: "a1", Name: "web", State: "running", Labels: map[string]string{"hemostat.enable": "true", "hemostat.actions": "restart,stop"}},
		{ID: "b2", Name: "db", State: "exited", Labels: map[string]string{"hemostat.protected": "true"}},
	}}
}

// options is a configuration under which every check passes; mutate it per case.
func options(dk *fakeDocker, rd *fakeRedis) doctor.Options {
	return doctor.Options{
		Docker:   func(context.Context) (doctor.Docker, error) { return dk, nil },
		Redis:    func(context.Context) (doctor.Redis, error) { return rd, nil },
		RedisURL: "redis://redis:6379/0",
		Cgroup:   fakeCgroup{},
		Sampler:  monitor.SamplerAuto,
		Watch:    monitor.WatchRules{Mode: monitor.WatchAll},
		Sinks:    doctor.Sinks{SlackWebhookURL: "https://hooks.slack.com/services/T/B/secret"},
		Prober:   &fakeProber{},
		Now:      func() time.Time { return now },
	}
}

func statuses(rep doctor.Report) map[string]doctor.Status {
	out := map[string]doctor.Status{}
	for _, c := range rep.Checks {
		out[c.Name] = c.Status
	}
	return out
}

func find(t *testing.T, rep doctor.Report, name string) doctor.Result {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, rep.Checks)
	return doctor.Result{}
}

func TestEverythingHealthy(t *testing.T) {
	rep := doctor.Run(context.Background(), options(goodDocker(), goodRedis()))
	want := map[string]doctor.Status{"docker": "ok", "cgroup": "ok", "redis": "ok", "redis-mode": "ok", "redis-persistence": "ok",
		"redis-eviction": "ok", "clock": "ok", "notifications": "ok", "labels": "ok", "watch": "ok"}
	if diff := cmp.Diff(want, statuses(rep)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%+v", diff, rep.Checks)
	}
	if !rep.OK || rep.Counts[doctor.StatusOK] != len(want) {
		t.Errorf("OK %v counts %v", rep.OK, rep.Counts)
	}
	for _, c := range rep.Checks {
		if c.Fix != "" {
			t.Errorf("%s: a passing check offers a fix: %q", c.Name, c.Fix)
		}
	}
}

func TestDockerUnreachable(t *testing.T) {
	o := options(goodDocker(), goodRedis())
	o.Docker = func(context.Context) (doctor.Docker, error) {
		return nil, errors.New("docker unavailable at unix:///var/run/docker.sock: permission denied")
	}
	rep := doctor.Run(context.Background(), o)
	want := map[string]doctor.Status{"docker": "fail", "cgroup": "ok", "redis": "ok", "redis-mode": "ok", "redis-persistence": "ok",
		"redis-eviction": "ok", "clock": "ok", "notifications": "ok", "labels": "skip", "watch": "skip"}
	if diff := cmp.Diff(want, statuses(rep)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if rep.OK {
		t.Error("report OK with Docker unreachable")
	}
	if fix := find(t, rep, "docker").Fix; !strings.Contains(fix, "docker group") || !strings.Contains(fix, "socket proxy") {
		t.Errorf("permission denied fix: %q", fix)
	}
}

func TestSamplerChoice(t *testing.T) {
	unreadable := errors.New("open /sys/fs/cgroup/memory: permission denied")
	for _, tc := range []struct {
		name     string
		sampler  string
		cg       fakeCgroup
		pidErr   error
		want     doctor.Status
		contains string
	}{
		{"api requested", monitor.SamplerAPI, fakeCgroup{availErr: unreadable}, nil, "ok", "sampler api"},
		{"auto reads a container", monitor.SamplerAuto, fakeCgroup{}, nil, "ok", "v2 files of web read directly"},
		{"auto without cgroup files", monitor.SamplerAuto, fakeCgroup{availErr: unreadable}, nil, "warn", "stats API"},
		{"cgroup without cgroup files", monitor.SamplerCgroup, fakeCgroup{availErr: unreadable}, nil, "fail", "refuse to start"},
		{"auto, another pid namespace", monitor.SamplerAuto, fakeCgroup{readErr: errors.New("open /proc/4242/cgroup: no such file")}, nil, "warn", "web's files cannot be read"},
		{"cgroup, another pid namespace", monitor.SamplerCgroup, fakeCgroup{readErr: errors.New("no such file")}, nil, "fail", "web's files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dk := goodDocker()
			dk.pidErr = tc.pidErr
			o := options(dk, goodRedis())
			o.Sampler, o.Cgroup = tc.sampler, tc.cg
			got := find(t, doctor.Run(context.Background(), o), "cgroup")
			if got.Status != tc.want || !strings.Contains(got.Summary, tc.contains) {
				t.Errorf("got %s %q, want %s containing %q", got.Status, got.Summary, tc.want, tc.contains)
			}
			if got.Status != doctor.StatusOK && !strings.Contains(got.Fix, "pid: host") {
				t.Errorf("fix %q does not say how to make the files readable", got.Fix)
			}
		})
	}
}

func TestRedisChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*fakeRedis)
		check  string
		want   doctor.Status
		says   string
	}{
		{"too old for XAUTOCLAIM", func(r *fakeRedis) { r.info["server"]["redis_version"] = "6.0.16" }, "redis", "fail", "too old"},
		{"6.2 is enough", func(r *fakeRedis) { r.info["server"]["redis_version"] = "6.2.0" }, "redis", "ok", "6.2.0"},
		{"RDB only", func(r *fakeRedis) { r.config["appendonly"] = "no" }, "redis-persistence", "warn", "RDB snapshots only"},
		{"no persistence", func(r *fakeRedis) { r.config["appendonly"], r.config["save"] = "no", "" }, "redis-persistence", "warn", "no persistence"},
		{"CONFIG forbidden, INFO says AOF", func(r *fakeRedis) { r.config = nil }, "redis-persistence", "ok", "append-only file on"},
		{"failed AOF write", func(r *fakeRedis) { r.info["persistence"]["aof_last_write_status"] = "err" }, "redis-persistence", "fail", "failed writes"},
		{"evicting with a limit", func(r *fakeRedis) {
			r.info["memory"]["maxmemory_policy"], r.info["memory"]["maxmemory"] = "allkeys-lru", "1073741824"
		}, "redis-eviction", "fail", "allkeys-lru"},
		{"volatile policy with a limit", func(r *fakeRedis) {
			r.info["memory"]["maxmemory_policy"], r.info["memory"]["maxmemory"] = "volatile-ttl", "1000"
		}, "redis-eviction", "fail", "volatile-ttl"},
		{"evicting policy without a limit", func(r *fakeRedis) { r.info["memory"]["maxmemory_policy"] = "allkeys-lru" }, "redis-eviction", "warn", "the day a limit is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := goodRedis()
			tc.change(rd)
			rep := doctor.Run(context.Background(), options(goodDocker(), rd))
			got := find(t, rep, tc.check)
			if got.Status != tc.want || !strings.Contains(got.Summary, tc.says) {
				t.Errorf("got %s %q, want %s containing %q", got.Status, got.Summary, tc.want, tc.says)
			}
			if got.Status != doctor.StatusOK && got.Fix == "" {
				t.Error("no fix offered")
			}
			if rep.OK != (tc.want != doctor.StatusFail) {
				t.Errorf("report OK = %v with a %s check", rep.OK, tc.want)
			}
		})
	}
}

func TestRedisUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name        string
		defaultURL  bool
		want        doctor.Status
		wantSummary string
	}{
		{"configured URL", false, "fail", "no Redis at redis://redis:6379/0"},
		{"default URL: run would embed a store", true, "warn", "embedded store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(goodDocker(), goodRedis())
			o.Redis = func(context.Context) (doctor.Redis, error) {
				return nil, errors.New("redis unavailable: connection refused")
			}
			o.RedisDefault = tc.defaultURL
			rep := doctor.Run(context.Background(), o)
			got := find(t, rep, "redis")
			if got.Status != tc.want || !strings.Contains(got.Summary, tc.wantSummary) {
				t.Errorf("got %s %q", got.Status, got.Summary)
			}
			for _, name := range []string{"redis-persistence", "redis-eviction"} {
				if s := find(t, rep, name).Status; s != doctor.StatusSkip {
					t.Errorf("%s: %s, want skip", name, s)
				}
			}
			if c := find(t, rep, "clock"); c.Status != doctor.StatusOK || strings.Contains(c.Summary, "Redis") {
				t.Errorf("clock without Redis: %s %q", c.Status, c.Summary)
			}
		})
	}
}

func TestClockSkew(t *testing.T) {
	for _, tc := range []struct {
		redis, docker time.Duration
		want          doctor.Status
	}{
		{0, 200 * time.Millisecond, "ok"},
		{3 * time.Second, 0, "warn"},
		{0, -2 * time.Minute, "fail"},
	} {
		rd, dk := goodRedis(), goodDocker()
		rd.skew, dk.skew = tc.redis, tc.docker
		got := find(t, doctor.Run(context.Background(), options(dk, rd)), "clock")
		if got.Status != tc.want {
			t.Errorf("redis %v docker %v: %s %q, want %s", tc.redis, tc.docker, got.Status, got.Summary, tc.want)
		}
		if tc.want != doctor.StatusOK && !strings.Contains(got.Fix, "NTP") {
			t.Errorf("fix %q", got.Fix)
		}
	}
}

func TestSinks(t *testing.T) {
	secret := "https://hooks.example.com/hemostat/s3cr3t?token=abc"
	for _, tc := range []struct {
		name   string
		sinks  doctor.Sinks
		fail   map[string]error
		want   doctor.Status
		probed []string
		says   string
	}{
		{"none", doctor.Sinks{}, nil, "warn", nil, "no notification sink"},
		{"webhook reachable", doctor.Sinks{WebhookURL: secret}, nil, "ok", []string{secret}, "webhook https://hooks.example.com (TLS 1.3)"},
		{"webhook unreachable", doctor.Sinks{WebhookURL: secret}, map[string]error{secret: errors.New("connect: connection refused")}, "fail", []string{secret}, "no sink reachable"},
		{"bot token without channel", doctor.Sinks{SlackToken: "xoxb-1"}, nil, "fail", []string{"https://slack.com/api"}, "Slack API https://slack.com"},
		{"user token", doctor.Sinks{SlackToken: "xoxp-1", SlackChannel: "#ops", SlackAPIURL: "https://slack.example/api"}, nil, "warn", []string{"https://slack.example/api"}, "Slack API"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(goodDocker(), goodRedis())
			p := &fakeProber{fail: tc.fail}
			o.Sinks, o.Prober = tc.sinks, p
			got := find(t, doctor.Run(context.Background(), o), "notifications")
			if got.Status != tc.want || !strings.Contains(got.Summary, tc.says) {
				t.Errorf("got %s %q %q, want %s containing %q", got.Status, got.Summary, got.Details, tc.want, tc.says)
			}
			if diff := cmp.Diff(tc.probed, p.probed); diff != "" {
				t.Errorf("probed (-want +got):\n%s", diff)
			}
			all := got.Summary + strings.Join(got.Details, " ") + got.Fix
			if strings.Contains(all, "s3cr3t") || strings.Contains(all, "token=") || strings.Contains(all, "xoxp-1") || strings.Contains(all, "xoxb-1") {
				t.Errorf("a secret reached the report: %q", all)
			}
		})
	}
}

func TestCheckLabels(t *testing.T) {
	type p struct {
		label  string
		status doctor.Status
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   []p
	}{
		{"all good", map[string]string{"hemostat.enable": "true", "hemostat.protected": "false", "hemostat.mode": "Observe",
			"hemostat.actions": "restart, exec", "hemostat.exec": `[["/app","-probe","http://127.0.0.1:8080/health"]]`,
			"hemostat.stop_timeout": "10", "hemostat.cpu_threshold": "50%", "hemostat.memory_threshold": "90",
			"hemostat.max_actions_per_hour": "2", "hemostat.backoff": "1m", "hemostat.cooldown": "2h",
			"hemostat.breaker_cooloff": "30m", "hemostat.healthy_reset": "5m", "autoheal": "true", "com.example": "x"}, nil},
		{"protected yes is not protected", map[string]string{"hemostat.protected": "yes"}, []p{{"hemostat.protected", "fail"}}},
		{"enable on", map[string]string{"hemostat.enable": "on"}, []p{{"hemostat.enable", "fail"}}},
		{"mode typo acts", map[string]string{"hemostat.mode": "observ"}, []p{{"hemostat.mode", "fail"}}},
		{"unknown action", map[string]string{"hemostat.actions": "restart,reboot"}, []p{{"hemostat.actions", "fail"}}},
		{"no action", map[string]string{"hemostat.actions": " , "}, []p{{"hemostat.actions", "warn"}}},
		{"exec JSON broken", map[string]string{"hemostat.exec": `[["/app","-probe"]`}, []p{{"hemostat.exec", "fail"}}},
		{"exec plain", map[string]string{"hemostat.exec": "/app -probe x; /bin/true"}, nil},
		{"exec allowed without commands", map[string]string{"hemostat.actions": "exec"}, []p{{"hemostat.actions", "warn"}}},
		{"stop timeout", map[string]string{"hemostat.stop_timeout": "ten"}, []p{{"hemostat.stop_timeout", "fail"}}},
		{"threshold", map[string]string{"hemostat.cpu_threshold": "150"}, []p{{"hemostat.cpu_threshold", "fail"}}},
		{"tuning", map[string]string{"hemostat.max_actions_per_hour": "0", "hemostat.backoff": "soon"},
			[]p{{"hemostat.backoff", "fail"}, {"hemostat.max_actions_per_hour", "fail"}}},
		{"cooldown below backoff", map[string]string{"hemostat.backoff": "10m", "hemostat.cooldown": "1m"}, []p{{"hemostat.cooldown", "warn"}}},
		{"typo", map[string]string{"hemostat.protect": "true"}, []p{{"hemostat.protect", "warn"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []p
			for _, pr := range doctor.CheckLabels(tc.labels) {
				got = append(got, p{pr.Label, pr.Status})
				if pr.Message == "" {
					t.Errorf("%s: no explanation", pr.Label)
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(p{})); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLabelsCheckNamesTheContainer(t *testing.T) {
	dk := goodDocker()
	dk.containers = append(dk.containers, docker.Container{ID: "c3", Name: "cache", State: "running",
		Labels: map[string]string{"hemostat.protected": "yes"}})
	got := find(t, doctor.Run(context.Background(), options(dk, goodRedis())), "labels")
	if got.Status != doctor.StatusFail || len(got.Details) != 1 || !strings.HasPrefix(got.Details[0], `cache: hemostat.protected="yes"`) {
		t.Errorf("got %s %q %q", got.Status, got.Summary, got.Details)
	}
}

func TestWatchRulesThatWatchNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules monitor.WatchRules
		want  doctor.Status
	}{
		{"all", monitor.WatchRules{Mode: monitor.WatchAll}, "ok"},
		{"labeled, one labelled", monitor.WatchRules{Mode: monitor.WatchLabeled}, "ok"},
		{"labeled, none matches the include", monitor.WatchRules{Mode: monitor.WatchLabeled, Include: []string{"db"}}, "fail"},
		{"exclude everything", monitor.WatchRules{Mode: monitor.WatchAll, Exclude: []string{"*"}}, "fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(goodDocker(), goodRedis())
			o.Watch = tc.rules
			got := find(t, doctor.Run(context.Background(), o), "watch")
			if got.Status != tc.want {
				t.Errorf("got %s %q", got.Status, got.Summary)
			}
		})
	}
}

func TestDryRunIsAWarning(t *testing.T) {
	o := options(goodDocker(), goodRedis())
	o.DryRun = true
	rep := doctor.Run(context.Background(), o)
	if got := find(t, rep, "dry-run"); got.Status != doctor.StatusWarn || !rep.OK {
		t.Errorf("got %s, report OK %v", got.Status, rep.OK)
	}
}

func TestRedisMode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		tls    string
		repl   map[string]string
		want   doctor.Status
		says   string
		detail string
	}{
		{"standalone master", conn.ModeStandalone, "", map[string]string{"role": "master", "connected_slaves": "0"},
			"ok", "standalone, TLS off, role master, 0 replica(s); no failover", ""},
		{"a replica refuses writes", conn.ModeStandalone, "on", map[string]string{"role": "slave"},
			"fail", "READONLY", ""},
		{"sentinel without a replica", conn.ModeSentinel, "on, with a client certificate", map[string]string{"role": "master", "connected_slaves": "0"},
			"warn", "through Sentinel, TLS on, with a client certificate, role master, 0 replica(s): the sentinels have no replica", ""},
		{"sentinel with a replica", conn.ModeSentinel, "on", map[string]string{"role": "master", "connected_slaves": "1",
			"slave0": "ip=10.0.0.2,port=6379,state=online,offset=42,lag=0"},
			"ok", "through Sentinel, TLS on, role master, 1 replica(s)", "asynchronous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := goodRedis()
			rd.info["replication"] = tc.repl
			o := options(goodDocker(), rd)
			o.RedisMode, o.RedisTLS = tc.mode, tc.tls
			got := find(t, doctor.Run(context.Background(), o), "redis-mode")
			if got.Status != tc.want || !strings.Contains(got.Summary, tc.says) {
				t.Errorf("got %s %q, want %s containing %q", got.Status, got.Summary, tc.want, tc.says)
			}
			if !strings.Contains(strings.Join(got.Details, "\n"), tc.detail) {
				t.Errorf("details %q do not say %q", got.Details, tc.detail)
			}
			if got.Status != doctor.StatusOK && got.Fix == "" {
				t.Error("no fix offered")
			}
		})
	}
}

func TestRedisClusterRefused(t *testing.T) {
	o := options(goodDocker(), goodRedis())
	o.Redis = func(context.Context) (doctor.Redis, error) {
		return nil, fmt.Errorf("%w: 127.0.0.1:7000 is a Redis Cluster node (INFO cluster says cluster_enabled:1)", conn.ErrCluster)
	}
	rep := doctor.Run(context.Background(), o)
	got := find(t, rep, "redis")
	if got.Status != doctor.StatusFail || !strings.Contains(got.Summary, "Cluster") || !strings.Contains(got.Fix, "--redis-sentinels") {
		t.Errorf("got %s %q fix %q", got.Status, got.Summary, got.Fix)
	}
	for _, name := range []string{"redis-mode", "redis-persistence", "redis-eviction"} {
		if s := find(t, rep, name).Status; s != doctor.StatusSkip {
			t.Errorf("%s: %s, want skip", name, s)
		}
	}
}
