package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hemostat/hemostat/cmd"
)

// environment is the text of `hemostat help environment`: every variable hemostat reads.
func environment(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	d := cmd.NewDeps(strings.NewReader(""), &out, &errb)
	if code := cmd.Run(context.Background(), d, []string{"help", "environment"}); code != 0 {
		t.Fatalf("hemostat help environment: exit %d: %s", code, errb.String())
	}
	return out.String()
}

var assignment = regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=`)

// checkEnvFile fails the test for every variable an example env file sets (commented out or not) that
// hemostat does not read: a renamed flag would otherwise leave the example silently stale.
func checkEnvFile(t *testing.T, path, env string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := map[string]bool{"DOCKER_HOST": true, "DOCKER_TLS_VERIFY": true, "DOCKER_CERT_PATH": true, "DOCKER_API_VERSION": true}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		m := assignment.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		name := m[1]
		listed := func(n string) bool { return regexp.MustCompile(`(?m)^\s+` + n + `\s`).MatchString(env) }
		if known[name] || listed(name) { // a variable of its own, such as HEMOSTAT_WEB_CONFIG_FILE
			continue
		}
		base := strings.TrimSuffix(name, "_FILE")
		if listed(base) {
			if base != name && !strings.Contains(env, name) {
				t.Errorf("%s: %s: %s has no _FILE form (only secrets do)", path, name, base)
			}
			continue
		}
		t.Errorf("%s: %s is not a variable hemostat reads (see hemostat help environment)", path, name)
	}
	if n == 0 {
		t.Errorf("%s sets no variable", path)
	}
}

// TestEnvExampleNamesRealVariables checks the example env files of the package and of the compose example.
func TestEnvExampleNamesRealVariables(t *testing.T) {
	env := environment(t)
	for _, path := range []string{filepath.Join(root, "packaging/hemostat.env"), filepath.Join(root, "examples/compose/hemostat.env")} {
		checkEnvFile(t, path, env)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				t.Errorf("%s:%d: %q is not commented out: the shipped file must leave the defaults alone", path, i+1, line)
			}
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(root, "packaging/systemd/hemostat.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/usr/bin/hemostat run\n",
		"\nUser=hemostat\n",
		"\nEnvironmentFile=/etc/hemostat/hemostat.env\n",
		"\nStateDirectory=hemostat\n",
		"\nRestartPreventExitStatus=2\n",
		"\nWantedBy=multi-user.target\n",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("hemostat.service lacks %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit's syntax is not verified")
	}
	// verify checks that ExecStart and EnvironmentFile exist: point them at files that do here.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	envFile, err := filepath.Abs(filepath.Join(root, "packaging/hemostat.env"))
	if err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer("ExecStart=/usr/bin/hemostat", "ExecStart="+sh,
		"EnvironmentFile=/etc/hemostat/hemostat.env", "EnvironmentFile="+envFile).Replace(string(unit))
	path := filepath.Join(t.TempDir(), "hemostat.service")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestPackageScripts parses every maintainer script and checks that the goreleaser configuration names
// only files that exist (the generated man pages and completions aside).
func TestPackageScripts(t *testing.T) {
	cfg, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:- )?(?:src|preinstall|postinstall|preremove|postremove|dockerfile): (\S+)`).FindAllSubmatch(cfg, -1) {
		src := string(m[1])
		if strings.HasPrefix(src, "manpages/") {
			continue // written by the before hook
		}
		fi, err := os.Stat(filepath.Join(root, src))
		if err != nil {
			t.Errorf(".goreleaser.yaml names %s: %v", src, err)
			continue
		}
		if strings.HasSuffix(src, ".sh") {
			if fi.Mode()&0o111 == 0 {
				t.Errorf("%s is not executable", src)
			}
			if out, err := exec.Command("sh", "-n", filepath.Join(root, src)).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", src, err, out)
			}
		}
	}
}

// stubs writes fake getent, groupadd, useradd, usermod and systemctl into a directory: the account
// databases are files in state, and every call is appended to state/calls.
func stubs(t *testing.T, state string) string {
	t.Helper()
	dir := t.TempDir()
	scripts := map[string]string{
		"getent":    `[ -e "$STATE/$1-$2" ]`,
		"groupadd":  `for a; do last=$a; done; touch "$STATE/group-$last"`,
		"useradd":   `for a; do last=$a; done; touch "$STATE/passwd-$last"`,
		"usermod":   `:`,
		"systemctl": `:`,
	}
	for name, body := range scripts {
		script := "#!/bin/sh\necho \"" + name + " $*\" >> \"$STATE/calls\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runScript(t *testing.T, script, state, bin string, args ...string) string {
	t.Helper()
	c := exec.Command("sh", append([]string{filepath.Join(root, "packaging/scripts", script)}, args...)...)
	c.Env = append(os.Environ(), "STATE="+state, "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
	calls, _ := os.ReadFile(filepath.Join(state, "calls"))
	os.Remove(filepath.Join(state, "calls"))
	return string(calls)
}

// TestPreinstallCreatesTheUser runs the pre-install script against fake account tools: a first install
// makes the docker group (when Docker is not there yet), the hemostat group and the system user in
// docker; an upgrade only makes sure the user is still in docker.
func TestPreinstallCreatesTheUser(t *testing.T) {
	state := t.TempDir()
	bin := stubs(t, state)
	calls := runScript(t, "preinstall.sh", state, bin, "install")
	for _, want := range []string{"groupadd --system docker", "groupadd --system hemostat",
		"useradd --system --gid hemostat --groups docker"} {
		if !strings.Contains(calls, want) {
			t.Errorf("first install: no %q in\n%s", want, calls)
		}
	}
	if !strings.Contains(calls, " hemostat\n") || strings.Contains(calls, "usermod") {
		t.Errorf("first install:\n%s", calls)
	}
	calls = runScript(t, "preinstall.sh", state, bin, "upgrade", "1.0.0")
	if strings.Contains(calls, "groupadd") || strings.Contains(calls, "useradd") ||
		!strings.Contains(calls, "usermod --append --groups docker hemostat") {
		t.Errorf("upgrade:\n%s", calls)
	}
}
