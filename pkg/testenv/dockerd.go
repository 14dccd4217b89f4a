package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
)

// Dockerd is a second Docker engine on this machine, for tests of several hosts: a dockerd of its own
// (data, exec root, socket, containerd namespace) in a network namespace of its own, with no bridge. Its
// containers must use network mode none (docker.CreateOptions' default).
//
// The network namespace is not optional: a second dockerd in the host's namespace removed the first
// engine's docker0 bridge when it stopped, and every `docker run` on the host failed until it was recreated.
type Dockerd struct {
	Host   string         // unix:///…/docker.sock, for DOCKER_HOST
	Client *docker.Client // connected to it
	dir    string
	ns     string // containerd namespace
	cmd    *exec.Cmd
	exited chan struct{} // closed when dockerd exited
	log    *os.File
}

var dockerdSeq atomic.Int64

// dockerdStartTimeout bounds a second engine's start (containerd, the vfs driver, the API socket).
const dockerdStartTimeout = 90 * time.Second

// StartDockerd starts a second Docker engine with the test image (copied from host, the first engine)
// loaded, and stops it at cleanup, then checks the first engine's networking is intact
// (CheckHostNetwork). It skips when it cannot (not root, no dockerd or unshare, the engine fails to
// start), but fails under CI=true.
func StartDockerd(t testing.TB, host *docker.Client) *Dockerd {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "a second dockerd needs root")
	}
	for _, bin := range []string{"dockerd", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(t, "a second dockerd: %s not found: %v", bin, err)
		}
	}
	image := TestImage(t, host)
	d, err := startDockerd()
	if err != nil {
		unavailable(t, "a second dockerd: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop the second dockerd: %v", err)
		}
		CheckHostNetwork(t, host)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := host.CopyImage(ctx, image, d.Client); err != nil {
		t.Fatalf("copy the test image to the second dockerd: %v", err)
	}
	return d
}

func startDockerd() (*Dockerd, error) {
	// A short directory: the containerd socket under it must fit a unix socket path (108 bytes).
	dir, err := os.MkdirTemp("", "hsd")
	if err != nil {
		return nil, err
	}
	d := &Dockerd{dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"),
		ns: fmt.Sprintf("hemostat-test-%d-%d", os.Getpid(), dockerdSeq.Add(1))}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.log, err = os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := d.launch(); err != nil {
		_ = d.Stop()
		return nil, err
	}
	return d, nil
}

// launch starts dockerd on d's directories and waits until it answers.
func (d *Dockerd) launch() error {
	dir := d.dir
	d.exited = make(chan struct{})
	// unshare execs dockerd in place: the process is dockerd, in a network namespace that only has lo.
	d.cmd = exec.Command("unshare", "--net", "dockerd",
		"--config-file", filepath.Join(dir, "daemon.json"),
		"-H", d.Host,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip-masq=false",
		"--containerd-namespace", d.ns, "--containerd-plugins-namespace", d.ns+"-plugins",
		// vfs: no mounts to share with the first engine's driver; slow for big images, not for the test app
		"--storage-driver", "vfs")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.cmd = nil
		return fmt.Errorf("start dockerd: %w", err)
	}
	cmd, exited := d.cmd, d.exited
	go func() { _ = cmd.Wait(); close(exited) }() // exits when dockerd does
	deadline := time.Now().Add(dockerdStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		if d.Client == nil {
			d.Client, err = docker.New(ctx, docker.Options{Host: d.Host})
		} else {
			err = d.Client.Ping(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("dockerd exited: %s", d.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer on %s within %s: %v; log: %s", d.Host, dockerdStartTimeout, err, d.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *Dockerd) logTail() string {
	b, _ := os.ReadFile(d.log.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops the engine (SIGTERM, then SIGKILL after 30 s), kills what it left of its containerd (shims of
// its namespace), unmounts what is left under its directory and removes it. It is safe to call twice.
func (d *Dockerd) Stop() error {
	if d.dir == "" {
		return nil
	}
	errs := []error{d.halt()}
	if d.Client != nil {
		d.Client.Close()
	}
	for _, pid := range d.leftovers() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range mountsUnder(d.dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	d.log.Close()
	if err := os.RemoveAll(d.dir); err != nil {
		errs = append(errs, err)
	}
	d.dir = ""
	return errors.Join(errs...)
}

// halt stops the dockerd process: SIGTERM, then SIGKILL after 30 s.
func (d *Dockerd) halt() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("dockerd did not stop within 30s of SIGTERM; killed")
	}
}

// Restart stops the engine's process and starts it again on the same directories: its containers and
// images stay (stopped, or started again by their restart policy), and Client works again.
func (d *Dockerd) Restart() error {
	if err := d.halt(); err != nil {
		return err
	}
	return d.launch()
}

// leftovers returns the processes that belong to this engine and outlived it: those whose command line names
// its directory or its containerd namespace (containerd, shims).
func (d *Dockerd) leftovers() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(b, []byte{0})
		for i, a := range args {
			s := string(a)
			if strings.Contains(s, d.dir+"/") || s == "-namespace" && i+1 < len(args) && string(args[i+1]) == d.ns {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// mountsUnder returns the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			out = append(out, f[1])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// CheckHostNetwork fails the test unless the first engine's networking works: docker0 exists and a
// container on the default bridge network runs and exits 0.
func CheckHostNetwork(t testing.TB, host *docker.Client) {
	t.Helper()
	if _, err := net.InterfaceByName("docker0"); err != nil {
		t.Errorf("the host engine's docker0 bridge is gone: %v", err)
		return
	}
	id, name := CreateContainer(t, host, docker.CreateOptions{Name: "hemostat-netcheck", NetworkMode: "bridge",
		Cmd: []string{"-exit-after", "10ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := host.StartContainer(ctx, id); err != nil {
		t.Errorf("the host engine cannot run %s on the bridge network: %v", name, err)
		return
	}
	if !Poll(time.Minute, func() bool {
		d, err := host.Inspect(ctx, id)
		return err == nil && d.State == "exited"
	}) {
		t.Errorf("%s on the bridge network did not exit", name)
		return
	}
	if d, err := host.Inspect(ctx, id); err != nil || d.ExitCode != 0 {
		t.Errorf("%s on the bridge network: exit %d, %v; want 0", name, d.ExitCode, err)
	}
}
