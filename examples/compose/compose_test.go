// Package compose_test checks examples/compose: the socket proxy's allow-list against what the agents
// really call, the compose file with docker-compose config, and the scrape target against the exporter.
package compose_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/cmd"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/export"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// profile is a socket proxy allow-list: per method, an anchored regular expression over the request path,
// read from the same env file the compose example gives the proxy (wollomatic/socket-proxy's SP_ALLOW_*).
type profile map[string]*regexp.Regexp

func loadProfile(t *testing.T, path string) profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := profile{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		method, isAllow := strings.CutPrefix(k, "SP_ALLOW_")
		if !ok || !isAllow {
			t.Fatalf("%s: %q is not an SP_ALLOW_<METHOD>=<regexp> line", path, line)
		}
		re, err := regexp.Compile("^" + v + "$") // as the proxy compiles it
		if err != nil {
			t.Fatalf("%s: %s: %v", path, k, err)
		}
		p[method] = re
	}
	if len(p) == 0 {
		t.Fatalf("%s allows nothing", path)
	}
	return p
}

func (p profile) allows(method, path string) bool {
	re := p[method]
	return re != nil && re.MatchString(path)
}

// recorder is a reverse proxy to the real engine that enforces a profile, as the socket proxy does (403
// for a path, 405 for a method), and records every request.
type recorder struct {
	t       *testing.T
	profile profile
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex
	seen    map[string]int // "METHOD /path" with ids and names replaced by {ref}
	denied  []string
}

var versioned = regexp.MustCompile(`^/v1\.[0-9]+`)

func newRecorder(t *testing.T, p profile) (*recorder, string) {
	t.Helper()
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		sock = strings.TrimPrefix(h, "unix://")
	} else if h != "" {
		t.Skipf("DOCKER_HOST=%s: the recording proxy speaks to a unix socket only", h)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	r := &recorder{t: t, profile: p, seen: map[string]int{}, proxy: &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "docker"
		},
		Transport:     tr,
		FlushInterval: -1, // the event stream
	}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, "tcp://" + srv.Listener.Addr().String()
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	key := req.Method + " " + normalise(req.URL.Path)
	ok := r.profile.allows(req.Method, req.URL.Path)
	r.mu.Lock()
	r.seen[key]++
	if !ok {
		r.denied = append(r.denied, req.Method+" "+req.URL.Path)
	}
	r.mu.Unlock()
	if !ok {
		code := http.StatusForbidden
		if r.profile[req.Method] == nil {
			code = http.StatusMethodNotAllowed
		}
		http.Error(w, "refused by the socket proxy profile", code)
		return
	}
	r.proxy.ServeHTTP(w, req)
}

var ref = regexp.MustCompile(`^(/(?:containers|exec|services))/[^/]+`)

// normalise drops the API version and replaces the id or name after containers/, exec/ and services/.
func normalise(p string) string {
	p = versioned.ReplaceAllString(p, "")
	if p != "/containers/json" {
		p = ref.ReplaceAllString(p, "$1/{ref}")
	}
	return p
}

func (r *recorder) saw(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[key] > 0
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.seen))
	for k, n := range r.seen {
		out = append(out, fmt.Sprintf("%s (%d)", k, n))
	}
	sort.Strings(out)
	return out
}

// checkNothingDenied fails the test for every request the profile refused: the agents need an endpoint
// the compose example's proxy would not let through.
func (r *recorder) checkNothingDenied(what string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.denied {
		r.t.Errorf("%s called %s, which the profile refuses: allow it in the profile (and say why there) or stop calling it", what, d)
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// TestAgentsStayWithinTheProxyProfile runs monitor, analyze (with an LLM, so its inspector reads inspect
// and logs) and respond through a proxy that enforces socket-proxy.env, on a container that crashes once:
// the monitor detects the crash, the rules ask for a restart, the responder restarts and verifies. Then
// doctor runs through the same proxy. Any request the profile refuses fails the test.
func TestAgentsStayWithinTheProxyProfile(t *testing.T) {
	dk := testenv.RequireDocker(t)
	redisURL := testenv.RequireRedis(t)
	rec, host := newRecorder(t, loadProfile(t, "socket-proxy.env"))
	t.Setenv("DOCKER_HOST", host)
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"message":"no model here","type":"server_error"}}`, http.StatusServiceUnavailable)
	}))
	defer llm.Close()

	id, name := testenv.RunContainer(t, dk, docker.CreateOptions{Name: "proxy",
		Cmd: []string{"-exit-code", "3", "-exit-after", "3s", "-once", "-log-every", "200ms"}})
	logs := &testenv.SyncBuffer{} // stdout and stderr of every agent
	d := cmd.NewDeps(strings.NewReader(""), logs, logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { // hemostat run, until cancel
		done <- cmd.Run(ctx, d, []string{"run", "--redis-url", redisURL, "--host-name", "proxytest-" + id[:8],
			"--agents", "monitor,analyze,respond", "--include", name, "--sampler", "api", "--interval", "1s",
			"--llm-provider", "openai", "--llm-base-url", llm.URL, "--openai-api-key", "test", "--llm-retries", "0",
			"--stable-for", "1s", "--settle", "15s", "--log-level", "debug"})
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("hemostat run did not stop within 30s")
		}
	}
	defer stop()
	defer func() {
		if t.Failed() {
			t.Logf("requests:\n  %s\nhemostat run:\n%s", strings.Join(rec.requests(), "\n  "), logs.String())
		}
	}()
	eventually(t, 90*time.Second, "the responder's restart", func() bool { return rec.saw("POST /containers/{ref}/restart") })
	eventually(t, 30*time.Second, "the analyzer's inspector reading the logs", func() bool { return rec.saw("GET /containers/{ref}/logs") })
	eventually(t, 30*time.Second, "a stats sample", func() bool { return rec.saw("GET /containers/{ref}/stats") })
	eventually(t, 60*time.Second, "the container running again", func() bool {
		st, err := dk.ContainerState(context.Background(), id)
		return err == nil && st.Running
	})
	stop()
	for _, want := range []string{"GET /events", "GET /containers/json", "GET /containers/{ref}/json"} {
		if !rec.saw(want) {
			t.Errorf("never saw %s: the scenario no longer exercises it", want)
		}
	}

	var out bytes.Buffer
	dd := cmd.NewDeps(strings.NewReader(""), &out, &out)
	code := cmd.Run(context.Background(), dd, []string{"--redis-url", redisURL, "doctor", "-o", "json", "--include", name})
	var rep struct {
		Checks []struct{ Name, Status, Summary string } `json:"checks"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("doctor (exit %d): %v\n%s", code, err, out.String())
	}
	for _, c := range rep.Checks {
		if (c.Name == "docker" || c.Name == "clock" || c.Name == "watch") && c.Status != "ok" {
			t.Errorf("doctor through the proxy: %s %s: %s", c.Name, c.Status, c.Summary)
		}
	}
	if !rec.saw("GET /info") {
		t.Error("doctor read no clock through the proxy")
	}
	rec.checkNothingDenied("hemostat")
	t.Logf("requests through the proxy:\n  %s", strings.Join(rec.requests(), "\n  "))

	// Everything the default profile lets through, the opt-in profile does too.
	actions := loadProfile(t, "socket-proxy-actions.env")
	for _, k := range rec.requests() {
		f := strings.Fields(k)
		method, path := f[0], f[1]
		concrete := strings.ReplaceAll(path, "{ref}", "abc123")
		if method != "HEAD" && path != "/_ping" {
			concrete = "/v1.41" + concrete
		}
		if !actions.allows(method, concrete) {
			t.Errorf("socket-proxy-actions.env refuses %s %s, which socket-proxy.env allows", method, concrete)
		}
	}
}

// TestOptInActionsNeedTheActionsProfile drives the engine calls of exec, scale and cleanup (the ones the
// responder makes, through pkg/docker) through the two profiles: the default one refuses them, the
// actions one allows every request they make.
func TestOptInActionsNeedTheActionsProfile(t *testing.T) {
	dk := testenv.RequireDocker(t)
	ctx := context.Background()
	project := fmt.Sprintf("hemostat-proxytest-%d", time.Now().UnixNano()%1e9)
	compose := map[string]string{"com.docker.compose.project": project, "com.docker.compose.service": "app"}
	target, _ := testenv.RunContainer(t, dk, docker.CreateOptions{Name: "replica", Labels: clone(compose)})
	gone, _ := testenv.RunContainer(t, dk, docker.CreateOptions{Name: "exited", Labels: clone(compose),
		Cmd: []string{"-exit-after", "10ms"}})
	eventually(t, 20*time.Second, "the replica to exit", func() bool {
		s, err := dk.ContainerState(ctx, gone)
		return err == nil && s.Status == "exited"
	})

	base, baseHost := newRecorder(t, loadProfile(t, "socket-proxy.env"))
	viaBase, err := docker.New(ctx, docker.Options{Host: baseHost})
	if err != nil {
		t.Fatal(err)
	}
	defer viaBase.Close()
	if _, err := viaBase.ExecCommand(ctx, target, []string{"/app", "-probe", "http://127.0.0.1:1/"}, 0); err == nil {
		t.Error("the default profile let exec through")
	}
	if base.saw("POST /exec/{ref}/start") || len(base.denied) == 0 {
		t.Errorf("the default profile did not refuse exec: %q", base.requests())
	}

	rec, host := newRecorder(t, loadProfile(t, "socket-proxy-actions.env"))
	c, err := docker.New(ctx, docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecCommand(ctx, target, []string{"/app", "-probe", "http://127.0.0.1:1/"}, 0); err != nil {
		t.Errorf("exec through the actions profile: %v", err)
	}
	// Outside a swarm the engine answers the inspect with an error; the request is what matters here.
	if _, err := c.ScaleService(ctx, project+"_app", 5); err == nil || !(errors.Is(err, docker.ErrNotApplicable) || errors.Is(err, docker.ErrNotFound)) {
		t.Errorf("scale outside a swarm: %v", err)
	}
	removed, err := c.CleanupReplicas(ctx, target)
	if err != nil || len(removed) != 1 || removed[0] != gone {
		t.Errorf("cleanup removed %q (%v), want the exited replica %s", removed, err, gone)
	}
	for _, want := range []string{"POST /containers/{ref}/exec", "POST /exec/{ref}/start", "GET /exec/{ref}/json",
		"GET /services/{ref}", "DELETE /containers/{ref}"} {
		if !rec.saw(want) {
			t.Errorf("never saw %s", want)
		}
	}
	rec.checkNothingDenied("the opt-in actions")
	if t.Failed() {
		t.Logf("requests:\n  %s", strings.Join(rec.requests(), "\n  "))
	}
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// composeCommand is docker-compose (v1, Debian's), or else the docker compose plugin.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}
	}
	if testenv.InCI() {
		t.Fatal("neither docker-compose nor docker compose is installed")
	}
	t.Skip("neither docker-compose nor docker compose is installed")
	return nil
}

// TestComposeFileIsValid runs `docker-compose config` on the example with each proxy profile. It pulls
// nothing and starts nothing.
func TestComposeFileIsValid(t *testing.T) {
	base := composeCommand(t)
	for _, profile := range []string{"", "socket-proxy-actions.env"} {
		args := append(append([]string(nil), base[1:]...), "-f", "compose.yaml", "config")
		c := exec.Command(base[0], args...)
		c.Env = append(os.Environ(), "HEMOSTAT_PROXY_PROFILE="+profile)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s (profile %q): %v\n%s", strings.Join(c.Args, " "), profile, err, out)
		}
		cfg := string(out)
		for _, want := range []string{"DOCKER_HOST: tcp://socket-proxy:2375", "/sys/fs/cgroup:ro", "pid: host",
			"--appendonly", "noeviction", "SP_ALLOW_GET:", "internal: true", "/var/run/docker.sock:ro"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("config (profile %q) lacks %q", profile, want)
			}
		}
		if n := len(regexp.MustCompile(`(?m)^.*docker\.sock.*$`).FindAllString(cfg, -1)); n != 1 {
			t.Errorf("the Docker socket is mounted into more than the proxy:\n%s", cfg)
		}
		if profile != "" && !strings.Contains(cfg, "SP_ALLOW_DELETE:") {
			t.Errorf("HEMOSTAT_PROXY_PROFILE=%s did not select the actions profile", profile)
		}
	}
}

// TestPrometheusScrapesTheExporter: the scrape target is the compose service hemostat on the exporter's
// default port, which the compose file sets too.
func TestPrometheusScrapesTheExporter(t *testing.T) {
	_, port, err := net.SplitHostPort(export.DefaultListen)
	if err != nil {
		t.Fatal(err)
	}
	prom, err := os.ReadFile("../prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), `targets: ["hemostat:`+port+`"]`) {
		t.Errorf("prometheus.yml does not scrape hemostat:%s", port)
	}
	compose, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(compose), `HEMOSTAT_LISTEN: ":`+port+`"`) || !strings.Contains(string(compose), "\n  hemostat:\n") {
		t.Errorf("compose.yaml does not define the hemostat service listening on :%s", port)
	}
	if port == "9090" {
		t.Error("the exporter's default port is Prometheus's own")
	}
}
