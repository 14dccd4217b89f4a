package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/cmd"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// watch puts containers in their hosts' container tables, as a monitor would: respond reset acts only on
// known ones.
func watch(t *testing.T, url string, targets ...string) {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	defer rdb.Close()
	for _, target := range targets {
		host, _, _ := strings.Cut(target, "/")
		if err := rdb.HSet(context.Background(), schema.ContainersKey(host), target, "{}").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.SAdd(context.Background(), schema.KeyHosts, host).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func auditRunCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	d := cmd.NewDeps(strings.NewReader(""), &out, &errb)
	code = cmd.Run(context.Background(), d, args)
	return code, out.String(), errb.String()
}

func TestAuditAndResetCommands(t *testing.T) {
	t.Setenv("USER", "alice")
	url := testenv.RequireRedis(t)
	g := []string{"--redis-url", url, "--host-name", "node-a"}
	with := func(args ...string) []string { return append(append([]string{}, args...), g...) }

	code, out, _ := auditRunCLI(t, with("audit", "-o", "json")...)
	if code != cmd.ExitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty trail: code %d, out %q", code, out)
	}
	if code, _, errs := auditRunCLI(t, with("audit", "verify")...); code != cmd.ExitOK {
		t.Errorf("verify of an empty trail: code %d (%s)", code, errs)
	}
	if code, _, errs := auditRunCLI(t, with("respond", "reset", "web-1")...); code != cmd.ExitNotFound {
		t.Errorf("reset of a container no monitor watches: code %d (%s), want %d", code, errs, cmd.ExitNotFound)
	}
	if code, out, _ := auditRunCLI(t, with("audit", "-o", "json")...); code != cmd.ExitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("a refused reset wrote to the trail: %s", out)
	}
	watch(t, url, "node-a/web-1", "node-a/web-2")
	for _, name := range []string{"web-1", "web-2", "web-1"} {
		if code, out, errs := auditRunCLI(t, with("respond", "reset", name)...); code != cmd.ExitOK || !strings.Contains(out, "node-a/"+name) {
			t.Fatalf("reset %s: code %d out %q err %q", name, code, out, errs)
		}
	}
	code, out, _ = auditRunCLI(t, with("audit", "web-1", "-o", "json")...)
	var recs []map[string]any
	if err := json.Unmarshal([]byte(out), &recs); err != nil || code != cmd.ExitOK {
		t.Fatalf("audit web-1 -o json: code %d, %v: %s", code, err, out)
	}
	if len(recs) != 2 || recs[0]["actor"] != "human:alice" || recs[0]["container"] != "web-1" || recs[0]["action"] != "reset" {
		t.Errorf("audit web-1 = %v", recs)
	}
	code, out, _ = auditRunCLI(t, with("audit", "--limit", "1", "-o", "jsonl")...)
	if code != cmd.ExitOK || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"seq":3`) {
		t.Errorf("audit --limit 1 -o jsonl: code %d out %q", code, out)
	}
	if code, out, _ := auditRunCLI(t, with("audit")...); code != cmd.ExitOK || !strings.Contains(out, "CONTAINER") || strings.Count(out, "\n") != 4 {
		t.Errorf("audit table: code %d out %q", code, out)
	}
	if code, out, _ := auditRunCLI(t, with("audit", "verify")...); code != cmd.ExitOK || !strings.Contains(out, "intact: 3 entries") {
		t.Errorf("verify: code %d out %q", code, out)
	}

	// Delete the middle entry: verify exits 4 and names where the chain breaks.
	o, _ := redis.ParseURL(url)
	rdb := redis.NewClient(o)
	defer rdb.Close()
	msgs := rdb.XRange(context.Background(), event.StreamAudit, "-", "+").Val()
	rdb.XDel(context.Background(), event.StreamAudit, msgs[1].ID)
	code, _, errs := auditRunCLI(t, with("audit", "verify")...)
	if code != cmd.ExitIntegrity || !strings.Contains(errs, msgs[2].ID) || !strings.Contains(errs, "seq 2") {
		t.Errorf("verify after a deletion: code %d, stderr %q (want %s named)", code, errs, msgs[2].ID)
	}
	code, out, _ = auditRunCLI(t, with("audit", "verify", "-o", "json")...)
	if code != cmd.ExitIntegrity || !strings.Contains(out, `"ok": false`) || !strings.Contains(out, msgs[2].ID) {
		t.Errorf("verify -o json after a deletion: code %d out %q", code, out)
	}
}

// A bare name is the container on the one host that has it; on several hosts it is a usage error that lists
// them as host/name, and host/name picks one.
func TestAuditBareNameOnSeveralHosts(t *testing.T) {
	t.Setenv("USER", "alice")
	url := testenv.RequireRedis(t)
	watch(t, url, "node-a/web-1", "node-b/web-1", "node-b/api")
	for _, target := range []string{"node-a/web-1", "node-b/web-1", "node-b/api"} {
		host, name, _ := strings.Cut(target, "/")
		if code, _, errs := auditRunCLI(t, "respond", "reset", name, "--redis-url", url, "--host-name", host); code != cmd.ExitOK {
			t.Fatalf("reset %s: code %d (%s)", target, code, errs)
		}
	}
	hostsOf := func(out string) []string {
		var recs []map[string]any
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatalf("audit -o json: %v: %s", err, out)
		}
		var hosts []string
		for _, r := range recs {
			hosts = append(hosts, fmt.Sprint(r["host"], "/", r["container"]))
		}
		return hosts
	}
	tests := []struct {
		name, arg, thisHost string
		wantCode            int
		wantErr             string   // in stderr
		want                []string // host/container of the records
	}{
		{"on two hosts", "web-1", "node-c", cmd.ExitUsage, `"web-1" is on 2 hosts; name one as host/name: node-a/web-1, node-b/web-1`, nil},
		{"on two hosts, one of them this one", "web-1", "node-a", cmd.ExitUsage, "node-a/web-1, node-b/web-1", nil},
		{"host/name", "node-b/web-1", "node-a", cmd.ExitOK, "", []string{"node-b/web-1"}},
		{"on one host, another one", "api", "node-a", cmd.ExitOK, "", []string{"node-b/api"}},
		{"on no host", "nosuch", "node-a", cmd.ExitOK, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := auditRunCLI(t, "audit", tt.arg, "-o", "json", "--redis-url", url, "--host-name", tt.thisHost)
			if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("audit %s: exit %d, stderr %q; want %d and %q", tt.arg, code, errs, tt.wantCode, tt.wantErr)
			}
			if code != cmd.ExitOK {
				return
			}
			if diff := cmp.Diff(tt.want, hostsOf(out)); diff != "" {
				t.Errorf("audit %s (-want +got):\n%s", tt.arg, diff)
			}
		})
	}
}

func TestAuditExitCodes(t *testing.T) {
	url := testenv.RequireRedis(t)
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"bad format", []string{"audit", "-o", "yaml", "--redis-url", url}, cmd.ExitUsage},
		{"bad since", []string{"audit", "--since", "yesterday-ish", "--redis-url", url}, cmd.ExitUsage},
		{"bad result", []string{"audit", "--result", "great", "--redis-url", url}, cmd.ExitUsage},
		{"follow needs a stream format", []string{"audit", "--follow", "-o", "json", "--redis-url", url}, cmd.ExitUsage},
		{"two containers", []string{"audit", "a", "b", "--redis-url", url}, cmd.ExitUsage},
		{"since a duration", []string{"audit", "--since", "7d", "--redis-url", url}, cmd.ExitOK},
		{"redis unreachable", []string{"audit", "--redis-url", "redis://127.0.0.1:1/0"}, cmd.ExitUnavailable},
		{"verify with redis unreachable", []string{"audit", "verify", "--redis-url", "redis://127.0.0.1:1/0"}, cmd.ExitUnavailable},
		{"reset needs a container", []string{"respond", "reset", "--redis-url", url}, cmd.ExitUsage},
		{"respond with a bad percent", []string{"respond", "--max-unhealthy-percent", "0", "--redis-url", url}, cmd.ExitUsage},
		{"respond with an unknown action", []string{"respond", "--actions", "restart,reboot", "--redis-url", url}, cmd.ExitUsage},
		{"export with a web config that does not validate", []string{"export", "--web.config.file", "/nonexistent/web.yml", "--redis-url", url}, cmd.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errs := auditRunCLI(t, tt.args...); code != tt.want {
				t.Errorf("%v: exit %d, want %d (%s)", tt.args, code, tt.want, errs)
			}
		})
	}
}

// syncBuffer is safe for one writer and a polling reader.
type syncBuffer = testenv.SyncBuffer

func TestAuditFollow(t *testing.T) {
	url := testenv.RequireRedis(t)
	g := []string{"--redis-url", url, "--host-name", "node-a"}
	watch(t, url, "node-a/old-1", "node-a/new-1")
	if code, _, errs := auditRunCLI(t, append([]string{"respond", "reset", "old-1"}, g...)...); code != cmd.ExitOK {
		t.Fatal(errs)
	}
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		d := cmd.NewDeps(strings.NewReader(""), &out, &errb)
		done <- cmd.Run(ctx, d, append([]string{"audit", "--follow", "-o", "jsonl"}, g...))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"container":"old-1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the existing entry was not printed: %q %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _, errs := auditRunCLI(t, append([]string{"respond", "reset", "new-1"}, g...)...); code != cmd.ExitOK {
		t.Fatal(errs)
	}
	for !strings.Contains(out.String(), `"container":"new-1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the new entry was not followed: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != cmd.ExitOK {
		t.Errorf("follow exit code %d (%s)", code, errb.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("follow printed %d lines, want 2: %q", n, out.String())
	}
}
