package cgroup

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// defaultCgroupRoot is where cgroup hierarchies are conventionally mounted.
const defaultCgroupRoot = "/sys/fs/cgroup"

// v1Controllers are the v1 hierarchies the reader uses.
var v1Controllers = [...]string{"cpuacct", "memory", "blkio", "pids"}

// mount is one mounted cgroup hierarchy: dir is where it is mounted (under the reader's CgroupRoot), root
// is the cgroup path that dir shows (usually "/"; a subtree inside a container or a bind mount).
type mount struct {
	dir  string
	root string
}

// layout is the set of cgroup hierarchies visible to the reader.
type layout struct {
	v1 map[string]mount // controller name -> its hierarchy
	v2 *mount           // the unified hierarchy, when mounted
	// v2Controllers tells whether the unified hierarchy has the memory controller (pure v2, not the empty
	// unified mount of a hybrid host).
	v2Controllers bool
}

// version is the cgroup version used for containers: 1 when the v1 memory and cpuacct hierarchies are
// mounted, else 2 when the unified hierarchy carries controllers, else 0.
func (l *layout) version() int {
	if _, ok := l.v1["memory"]; ok {
		if _, ok := l.v1["cpuacct"]; ok {
			return 1
		}
	}
	if l.v2 != nil && l.v2Controllers {
		return 2
	}
	return 0
}

// detectLayout finds the cgroup mounts from procRoot/self/mountinfo, rebased under cgRoot, and falls
// back to the standard layout under cgRoot (v2 at the root, v1 one directory per controller) when
// mountinfo is unreadable or lists no cgroup mount under cgRoot.
func detectLayout(procRoot, cgRoot string) *layout {
	l := &layout{v1: map[string]mount{}}
	if f, err := os.Open(filepath.Join(procRoot, "self", "mountinfo")); err == nil {
		parseMountinfo(f, cgRoot, l)
		f.Close()
	}
	if len(l.v1) == 0 && l.v2 == nil {
		standardLayout(cgRoot, l)
	}
	if l.v2 != nil {
		if data, err := os.ReadFile(filepath.Join(l.v2.dir, "cgroup.controllers")); err == nil {
			for _, c := range strings.Fields(string(data)) {
				if c == "memory" {
					l.v2Controllers = true
				}
			}
		}
	}
	return l
}

// parseMountinfo records the cgroup and cgroup2 mounts of a mountinfo file into l. A line is
// "id parent maj:min root mountpoint opts [optional...] - fstype source superopts".
func parseMountinfo(f *os.File, cgRoot string, l *layout) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		dir, ok := rebase(unescapeMount(fields[4]), cgRoot)
		if !ok {
			continue
		}
		m := mount{dir: dir, root: unescapeMount(fields[3])}
		if fstype == "cgroup2" {
			if l.v2 == nil || (l.v2.root != "/" && m.root == "/") {
				l.v2 = &m
			}
			continue
		}
		for _, opt := range strings.Split(fields[sep+3], ",") {
			for _, c := range v1Controllers {
				if opt != c {
					continue
				}
				// Prefer the first full mount of a hierarchy over a bind mount of a subtree.
				if old, seen := l.v1[c]; !seen || (old.root != "/" && m.root == "/") {
					l.v1[c] = m
				}
			}
		}
	}
}

// rebase maps a mount point to where the reader sees it: unchanged when it is under cgRoot or when
// cgRoot is the default; moved under cgRoot when it is under the default root (a fixture tree, or the
// host's cgroups mounted elsewhere); else not used.
func rebase(mp, cgRoot string) (string, bool) {
	if under(mp, cgRoot) {
		return mp, true
	}
	if cgRoot == defaultCgroupRoot {
		return mp, true
	}
	if under(mp, defaultCgroupRoot) {
		return cgRoot + mp[len(defaultCgroupRoot):], true
	}
	return "", false
}

// under reports whether path p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir) && (strings.HasSuffix(dir, "/") || p[len(dir)] == '/')
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, \011, \012, \134).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// standardLayout assumes the conventional mounts under cgRoot: a pure v2 host has cgroup.controllers at
// the root; a v1 host has one directory per hierarchy (cpu and cpuacct often joined), and a hybrid host
// the unified hierarchy at cgRoot/unified.
func standardLayout(cgRoot string, l *layout) {
	if exists(filepath.Join(cgRoot, "cgroup.controllers")) {
		l.v2 = &mount{dir: cgRoot, root: "/"}
		return
	}
	for _, c := range v1Controllers {
		names := []string{c}
		if c == "cpuacct" {
			names = append(names, "cpu,cpuacct", "cpuacct,cpu")
		}
		for _, n := range names {
			if d := filepath.Join(cgRoot, n); exists(d) {
				l.v1[c] = mount{dir: d, root: "/"}
				break
			}
		}
	}
	if d := filepath.Join(cgRoot, "unified"); exists(filepath.Join(d, "cgroup.controllers")) {
		l.v2 = &mount{dir: d, root: "/"}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
