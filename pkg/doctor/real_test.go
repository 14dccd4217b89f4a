package doctor_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/doctor"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// realDocker adapts *docker.Client as cmd does.
type realDocker struct{ *docker.Client }

func (c realDocker) Versions() (string, string) { return c.APIVersion, c.ServerVersion }

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// tlsSink is a local HTTPS server that counts the requests it gets: the probe must send none.
func tlsSink(t *testing.T) (*httptest.Server, *atomic.Int64, *x509.CertPool) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { n.Add(1) }))
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return ts, &n, pool
}

func TestNetProberSendsNothing(t *testing.T) {
	ts, requests, pool := tlsSink(t)
	ctx := context.Background()
	p := doctor.NetProber{RootCAs: pool, Proxy: noProxy, Timeout: 2 * time.Second}
	found, err := p.Probe(ctx, ts.URL+"/services/T000/B000/secret")
	if err != nil || !strings.Contains(found, "TLS 1.") {
		t.Fatalf("probe: %q, %v", found, err)
	}
	// The certificate is checked: without the test CA the handshake fails.
	if _, err := (doctor.NetProber{Proxy: noProxy, Timeout: 2 * time.Second}).Probe(ctx, ts.URL); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("untrusted certificate: %v", err)
	}
	closed := testenv.FreePort(t)
	if _, err := p.Probe(ctx, "https://127.0.0.1:"+strconv.Itoa(closed)+"/x"); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("closed port: %v", err)
	}
	// Through a proxy, only the proxy is reached.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts until the listener closes at the end of the test
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	viaProxy := doctor.NetProber{Proxy: func(*http.Request) (*url.URL, error) {
		return url.Parse("http://" + l.Addr().String())
	}}
	if found, err := viaProxy.Probe(ctx, "https://hooks.slack.invalid/services/x"); err != nil || !strings.Contains(found, "through proxy http://127.0.0.1") {
		t.Errorf("through a proxy: %q, %v", found, err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the sink got %d HTTP requests, want none", n)
	}
}

// TestAgainstRealRedisAndDocker runs every check against the test redis-server, the Docker engine (with a
// container carrying a label the responder would misread) and a local HTTPS sink.
func TestAgainstRealRedisAndDocker(t *testing.T) {
	redisURL := testenv.RequireRedis(t)
	dk := testenv.RequireDocker(t)
	_, name := testenv.RunContainer(t, dk, docker.CreateOptions{Name: "doctor",
		Labels: map[string]string{"hemostat.enable": "true", "hemostat.protected": "yes"}})
	ts, requests, pool := tlsSink(t)
	st, err := conn.Open(conn.Options{URL: redisURL})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := doctor.Options{
		Docker:   func(context.Context) (doctor.Docker, error) { return realDocker{dk}, nil },
		Redis:    func(context.Context) (doctor.Redis, error) { return st, nil },
		RedisURL: conn.Redact(redisURL),
		Cgroup:   cgroup.NewReader(cgroup.Options{}),
		Sampler:  monitor.SamplerAuto,
		Watch:    monitor.WatchRules{Mode: monitor.WatchLabeled, Include: []string{name}},
		Sinks:    doctor.Sinks{WebhookURL: ts.URL + "/hook/secret"},
		Prober:   doctor.NetProber{RootCAs: pool, Proxy: noProxy},
	}
	rep := doctor.Run(context.Background(), o)
	var text bytes.Buffer
	if err := doctor.WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	got := statuses(rep)
	for check, want := range map[string]doctor.Status{"docker": "ok", "redis": "ok", "redis-eviction": "ok",
		"clock": "ok", "notifications": "ok", "labels": "fail", "watch": "ok"} {
		if got[check] != want {
			t.Errorf("%s: %s, want %s", check, got[check], want)
		}
	}
	// The test server runs without persistence (scripts/test), and cgroup files may or may not be readable
	// here: either way the check must answer, not skip.
	for _, check := range []string{"redis-persistence", "cgroup"} {
		if got[check] == doctor.StatusSkip || got[check] == "" {
			t.Errorf("%s: %q", check, got[check])
		}
	}
	labels := find(t, rep, "labels")
	if !strings.Contains(strings.Join(labels.Details, "\n"), name+`: hemostat.protected="yes"`) {
		t.Errorf("labels details do not name %s: %q", name, labels.Details)
	}
	if !strings.Contains(find(t, rep, "watch").Summary, "watches 1 of") {
		t.Errorf("watch: %q", find(t, rep, "watch").Summary)
	}
	if strings.Contains(text.String(), "secret") {
		t.Errorf("the webhook's secret path reached the report")
	}
	if requests.Load() != 0 {
		t.Errorf("the webhook got %d requests", requests.Load())
	}
	var js bytes.Buffer
	if err := doctor.WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name, Status, Summary, Fix string
		} `json:"checks"`
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil || decoded.OK || len(decoded.Checks) != len(rep.Checks) {
		t.Errorf("json: %v ok=%v %d checks\n%s", err, decoded.OK, len(decoded.Checks), js.String())
	}
}
