package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/monitor"
)

// docker connects to the engine and lists its containers, which later checks read.
func (r *run) docker(ctx context.Context) {
	if r.o.Docker == nil {
		r.dockerErr = fmt.Errorf("no Docker client configured")
	} else {
		cctx, cancel := r.timeout(ctx)
		r.dk, r.dockerErr = r.o.Docker(cctx)
		cancel()
	}
	if r.dockerErr != nil {
		fix := "Start the Docker engine, or point DOCKER_HOST at it (unix:///var/run/docker.sock, tcp://socket-proxy:2375)."
		if strings.Contains(strings.ToLower(r.dockerErr.Error()), "permission denied") {
			fix = "The user running hemostat cannot open the Docker socket: add it to the docker group (the deb and rpm " +
				"packages do), run the container with --group-add $(stat -c %g /var/run/docker.sock), or, with far " +
				"less privilege, use a socket proxy (examples/compose) and set DOCKER_HOST=tcp://<proxy>:2375."
		}
		r.add(Result{Name: "docker", Status: StatusFail, Summary: "the Docker engine cannot be reached: " + r.dockerErr.Error(),
			Fix: fix})
		return
	}
	api, engine := r.dk.Versions()
	cctx, cancel := r.timeout(ctx)
	r.containers, r.listErr = r.dk.List(cctx)
	cancel()
	if r.listErr != nil {
		r.add(Result{Name: "docker", Status: StatusFail,
			Summary: fmt.Sprintf("engine %s (API %s) at %s answers, but listing containers failed: %v", engine, api, r.dk.Host(), r.listErr),
			Fix:     "A socket proxy in front of the engine must allow GET /containers/json (examples/compose/socket-proxy.env)."})
		return
	}
	r.add(Result{Name: "docker", Status: StatusOK,
		Summary: fmt.Sprintf("engine %s at %s, API %s negotiated; %d containers", engine, r.dk.Host(), api, len(r.containers))})
}

// cgroup says which sampler `--sampler` would run, and whether the cgroup files of a running container
// can really be read from here (they cannot from a container without the host's pid namespace).
func (r *run) cgroup(ctx context.Context) {
	const name = "cgroup"
	const fixMount = "Run hemostat on the host, or in a container with the host's pid namespace (pid: host) and " +
		"/sys/fs/cgroup mounted read-only (examples/compose does both); or set --sampler api."
	if r.o.Sampler == monitor.SamplerAPI {
		r.add(Result{Name: name, Status: StatusOK, Summary: "sampler api (requested): the stats API, one call per container and round"})
		return
	}
	if r.o.Cgroup == nil {
		r.add(Result{Name: name, Status: StatusSkip, Summary: "no cgroup reader configured"})
		return
	}
	bad := StatusWarn
	consequence := "--sampler auto samples through the stats API instead (a second or two of daemon time per container)"
	if r.o.Sampler == monitor.SamplerCgroup {
		bad = StatusFail
		consequence = "--sampler cgroup will refuse to start"
	}
	if err := r.o.Cgroup.Available(); err != nil {
		r.add(Result{Name: name, Status: bad, Summary: fmt.Sprintf("cgroup files are not readable here (%v): %s", err, consequence), Fix: fixMount})
		return
	}
	version := r.o.Cgroup.Version()
	ref, pid, err := r.runningPID(ctx)
	switch {
	case err != nil:
		r.add(Result{Name: name, Status: StatusOK,
			Summary: fmt.Sprintf("cgroup v%d hierarchy readable; sampler cgroup (no running container to read: %v)", version, err)})
	case pid == 0:
		r.add(Result{Name: name, Status: StatusOK,
			Summary: fmt.Sprintf("cgroup v%d hierarchy readable; sampler cgroup (no running container to try it on)", version)})
	default:
		var st cgroup.Stats
		if err := r.o.Cgroup.Read(pid, &st); err != nil {
			r.add(Result{Name: name, Status: bad,
				Summary: fmt.Sprintf("cgroup v%d hierarchy visible, but %s's files cannot be read (%v): %s", version, ref, err, consequence),
				Fix:     fixMount})
			return
		}
		r.add(Result{Name: name, Status: StatusOK,
			Summary: fmt.Sprintf("sampler cgroup: v%d files of %s read directly (memory %d bytes, %d pids)", version, ref, st.MemoryWorkingSet, st.PIDs)})
	}
}

// runningPID finds a running container and its host pid; pid 0 when none runs.
func (r *run) runningPID(ctx context.Context) (string, int, error) {
	if r.dk == nil || r.listErr != nil {
		return "", 0, fmt.Errorf("Docker unavailable")
	}
	for _, c := range r.containers {
		if c.State != "running" {
			continue
		}
		cctx, cancel := r.timeout(ctx)
		pid, err := r.dk.PID(cctx, c.ID)
		cancel()
		if err != nil {
			return c.Name, 0, err
		}
		return c.Name, pid, nil
	}
	return "", 0, nil
}
