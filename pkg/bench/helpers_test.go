package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// eventually polls cond every few milliseconds until it holds or timeout passes, and reports which.
func eventually(t testing.TB, timeout time.Duration, cond func() bool) bool {
	return testenv.Poll(timeout, cond)
}

// envInt reads a positive integer setting from the environment, def when unset.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// envDuration reads a positive duration setting from the environment, def when unset.
func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10m", name, v)
	}
	return d
}

// cpuPercent is the CPU use between two samples of one container, in percent of one core, from the
// samples' own times (the monitor's formula without the limit: these containers have none).
func cpuPercent(prev, cur container.Sample) float64 {
	dt := cur.Time.Sub(prev.Time)
	if dt <= 0 || cur.CPUTotalNS < prev.CPUTotalNS {
		return 0
	}
	return 100 * float64(cur.CPUTotalNS-prev.CPUTotalNS) / float64(dt.Nanoseconds())
}

// seedClient is the baseline's view of the engine: plain HTTP requests decoded into generic maps, as the
// seed's Python Docker SDK does (docker-py's stats(stream=False) sends stream=false and no one-shot).
// It lives here, not in pkg/docker, because it is deliberately the slow way.
type seedClient struct {
	hc   *http.Client
	base string
}

// newSeedClient speaks to the engine at host (unix:// or tcp://, as docker.Client.Host reports it) with
// API version.
func newSeedClient(host, version string) (*seedClient, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parse docker host %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &seedClient{hc: &http.Client{Transport: tr}, base: "http://docker/v" + version}, nil
	case "tcp", "http":
		return &seedClient{hc: &http.Client{}, base: "http://" + u.Host + "/v" + version}, nil
	}
	return nil, fmt.Errorf("docker host %q: the baseline speaks plain HTTP over unix or tcp only", host)
}

// get decodes the JSON answer of one GET into a generic map.
func (s *seedClient) get(ctx context.Context, path string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", path, resp.Status)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("get %s: decode: %w", path, err)
	}
	return out, nil
}

// poll is the seed's per-container work in one round: one stats call with stream=false (the daemon takes
// two collector ticks to answer, to fill precpu_stats) and two inspects.
func (s *seedClient) poll(ctx context.Context, id string) error {
	if _, err := s.get(ctx, "/containers/"+id+"/stats?stream=false"); err != nil {
		return err
	}
	for range 2 {
		if _, err := s.get(ctx, "/containers/"+id+"/json"); err != nil {
			return err
		}
	}
	return nil
}
