package monitor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/monitor"
)

type stubStats struct{ calls int }

func (s *stubStats) Stats(context.Context, string) (container.Sample, error) {
	s.calls++
	return container.Sample{Source: "api"}, nil
}

func TestNewSampler(t *testing.T) {
	missing := cgroup.NewReader(cgroup.Options{ProcRoot: t.TempDir(), CgroupRoot: t.TempDir()})
	for _, tc := range []struct {
		name, kind string
		reader     *cgroup.Reader
		want       string
		wantErr    bool
	}{
		{"api", monitor.SamplerAPI, missing, monitor.SamplerAPI, false},
		{"auto without cgroup files falls back to the api", monitor.SamplerAuto, missing, monitor.SamplerAPI, false},
		{"cgroup without cgroup files is an error", monitor.SamplerCgroup, missing, "", true},
		{"unknown", "magic", missing, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := monitor.NewSampler(tc.kind, &stubStats{}, tc.reader)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestAutoSamplerFallsBackWithoutPid(t *testing.T) {
	api := &stubStats{}
	s := &monitor.AutoSampler{Cgroup: monitor.CgroupSampler{Reader: cgroup.NewReader(cgroup.Options{})}, API: monitor.APISampler{Client: api}}
	got, err := s.Sample(context.Background(), monitor.ContainerRef{ID: "c1", Name: "web"})
	if err != nil || got.Source != "api" || api.calls != 1 || s.Fallbacks.Load() != 1 || !s.UsesAPI() {
		t.Errorf("got %+v, %v; api calls %d, fallbacks %d", got, err, api.calls, s.Fallbacks.Load())
	}
	if _, err := (monitor.CgroupSampler{Reader: cgroup.NewReader(cgroup.Options{})}).Sample(context.Background(), monitor.ContainerRef{Name: "web"}); err == nil {
		t.Error("cgroup sample without a pid succeeded")
	} else if errors.Is(err, context.Canceled) {
		t.Errorf("unexpected error %v", err)
	}
}
