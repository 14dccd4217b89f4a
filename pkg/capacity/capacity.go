// Package capacity measures how far one Redis goes: its benchmark (capacity_test.go) runs N simulated
// hosts of M containers each against one private redis-server, through the real monitor, store, bus,
// analyze and respond code, and reads the server's own CPU, memory and per-command figures. This file
// holds the parsing of redis-server's INFO reply that the benchmark reads those figures from.
package capacity

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Info is one INFO reply, field by field ("used_cpu_sys" -> "12.345678").
type Info map[string]string

// ParseInfo reads an INFO reply: "field:value" lines, with "# Section" headers and blank lines skipped.
func ParseInfo(s string) Info {
	out := Info{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// CPU is the server's CPU time so far (used_cpu_sys + used_cpu_user, the main thread and the rest).
func (in Info) CPU() (time.Duration, error) {
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, err := strconv.ParseFloat(in[k], 64)
		if err != nil {
			return 0, fmt.Errorf("info %s: %q is not a number", k, in[k])
		}
		total += v
	}
	return time.Duration(total * float64(time.Second)), nil
}

// Int is an integer field (used_memory, connected_clients).
func (in Info) Int(field string) (int64, error) {
	v, err := strconv.ParseInt(in[field], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("info %s: %q is not an integer", field, in[field])
	}
	return v, nil
}

// CommandStat is one command's totals from INFO commandstats.
type CommandStat struct {
	Command string
	Calls   int64
	Usec    int64 // server time spent in the command
}

// Commands reads the cmdstat_<name> fields ("calls=3,usec=12,usec_per_call=4.00,...").
func (in Info) Commands() map[string]CommandStat {
	out := map[string]CommandStat{}
	for k, v := range in {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		st := CommandStat{Command: name}
		for kv := range strings.SplitSeq(v, ",") {
			f, val, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				continue
			}
			switch f {
			case "calls":
				st.Calls = n
			case "usec":
				st.Usec = n
			}
		}
		out[name] = st
	}
	return out
}

// CommandDelta returns what each command did between two INFO commandstats readings, the most server
// time first; commands not called in between are left out.
func CommandDelta(before, after map[string]CommandStat) []CommandStat {
	var out []CommandStat
	for name, a := range after {
		b := before[name]
		d := CommandStat{Command: name, Calls: a.Calls - b.Calls, Usec: a.Usec - b.Usec}
		if d.Calls > 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Usec != out[j].Usec {
			return out[i].Usec > out[j].Usec
		}
		return out[i].Command < out[j].Command
	})
	return out
}
