package doctor

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/respond"
)

// Problem is one hemostat.* label that an agent would misread or ignore.
type Problem struct {
	Label   string `json:"label"`
	Value   string `json:"value"`
	Status  Status `json:"status"` // warn or fail
	Message string `json:"message"`
}

// String is the problem in one line: label="value": message.
func (p Problem) String() string { return fmt.Sprintf("%s=%q: %s", p.Label, p.Value, p.Message) }

// knownLabels are every hemostat.* label an agent reads.
var knownLabels = []string{
	container.LabelEnable, container.LabelCPUThreshold, container.LabelMemoryThreshold, container.LabelMode,
	container.LabelProtected, container.LabelActions, container.LabelExec, container.LabelStopTimeout,
	container.LabelSelf, container.LabelTest, respond.LabelMaxActionsPerHour, respond.LabelBackoff,
	respond.LabelCooldown, respond.LabelBreakerCooloff, respond.LabelHealthyReset,
}

// CheckLabels returns the problems of one container's labels, sorted by label. A value is a problem when
// an agent would ignore it, or when the monitor and the responder would read it differently.
func CheckLabels(labels map[string]string) []Problem {
	var out []Problem
	add := func(label string, st Status, format string, args ...any) {
		out = append(out, Problem{Label: label, Value: labels[label], Status: st, Message: fmt.Sprintf(format, args...)})
	}
	for label, v := range labels {
		v = strings.TrimSpace(v)
		switch label {
		case container.LabelEnable, container.LabelSelf:
			if !isBool(v) {
				add(label, StatusFail, "not a boolean the monitor and the responder read alike: write true or false")
			}
		case container.LabelProtected:
			if !isBool(v) {
				add(label, StatusFail, "the responder reads only true/false/1/0: this container is NOT protected; write true")
			}
		case container.LabelMode:
			switch strings.ToLower(v) {
			case container.ModeAuto, container.ModeSuggest, container.ModeObserve:
			default:
				add(label, StatusFail, "unknown mode, read as auto: hemostat WILL act on this container; write auto, suggest or observe")
			}
		case container.LabelActions:
			var unknown []string
			n := 0
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a == "" {
					continue
				}
				n++
				if !slices.Contains(event.Actions, a) {
					unknown = append(unknown, a)
				}
			}
			switch {
			case len(unknown) > 0:
				add(label, StatusFail, "unknown action(s) %s, never allowed; the actions are %s", strings.Join(unknown, ", "), strings.Join(event.Actions, ", "))
			case n == 0:
				add(label, StatusWarn, "empty: no action is allowed, every incident on this container escalates to a human")
			}
		case container.LabelExec:
			if msg := checkExec(v); msg != "" {
				add(label, StatusFail, "%s", msg)
			}
		case container.LabelStopTimeout:
			if !isNonNegDuration(v) {
				add(label, StatusFail, "not a duration (10s) or seconds (10): ignored, --stop-timeout applies")
			}
		case container.LabelCPUThreshold, container.LabelMemoryThreshold:
			f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, "%")), 64)
			if err != nil || f <= 0 || f > 100 {
				add(label, StatusFail, "not a percentage in (0, 100]: ignored, the --cpu-threshold/--memory-threshold default applies")
			}
		case respond.LabelMaxActionsPerHour:
			if n, err := strconv.Atoi(v); err != nil || n <= 0 {
				add(label, StatusFail, "not a positive whole number: ignored, --max-actions-per-hour applies")
			}
		case respond.LabelBackoff, respond.LabelCooldown, respond.LabelBreakerCooloff, respond.LabelHealthyReset:
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				add(label, StatusFail, "not a positive duration (30s, 10m, 1h): ignored, the flag's value applies")
			}
		case container.LabelAutoheal, container.LabelTest:
		default:
			if strings.HasPrefix(label, "hemostat.") {
				add(label, StatusWarn, "not a label hemostat reads (a typo?): ignored; the labels are %s", strings.Join(knownLabels, ", "))
			}
		}
	}
	if b, c := labels[respond.LabelBackoff], labels[respond.LabelCooldown]; b != "" && c != "" {
		bd, err1 := time.ParseDuration(strings.TrimSpace(b))
		cd, err2 := time.ParseDuration(strings.TrimSpace(c))
		if err1 == nil && err2 == nil && cd < bd {
			add(respond.LabelCooldown, StatusWarn, "below hemostat.backoff (%s): the cooldown is raised to the backoff", b)
		}
	}
	if v, ok := labels[container.LabelActions]; ok && slices.Contains(strings.Split(strings.ReplaceAll(v, " ", ""), ","), event.ActionExec) &&
		len(respond.ExecCommands(labels[container.LabelExec])) == 0 {
		add(container.LabelActions, StatusWarn, "allows exec, but no command is declared in hemostat.exec: exec is always denied")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

// isBool reports the values that both the monitor (true/1/yes/on, case-insensitive) and the responder
// (strconv.ParseBool) read the same way.
func isBool(v string) bool {
	switch v {
	case "true", "false", "True", "False", "TRUE", "FALSE", "1", "0":
		return true
	}
	return false
}

func isNonNegDuration(v string) bool {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return true
	}
	n, err := strconv.Atoi(v)
	return err == nil && n >= 0
}

// checkExec explains a hemostat.exec value that the responder would misread: JSON that does not parse is
// split on spaces as a plain command, brackets and quotes included.
func checkExec(v string) string {
	if v == "" {
		return "empty: no command is declared, exec is always denied"
	}
	if strings.HasPrefix(v, "[") {
		var many [][]string
		var one []string
		if json.Unmarshal([]byte(v), &many) != nil && json.Unmarshal([]byte(v), &one) != nil {
			return `not valid JSON, so it is read as plain words, brackets and quotes included; write [["cmd","arg"]] or cmd arg; other`
		}
	}
	for _, c := range respond.ExecCommands(v) {
		if len(c) == 0 || c[0] == "" {
			return "declares an empty command"
		}
	}
	return ""
}

// labels checks the hemostat.* labels of every container the engine has.
func (r *run) labels() {
	const name = "labels"
	if r.dk == nil || r.listErr != nil {
		r.add(Result{Name: name, Status: StatusSkip, Summary: "Docker unavailable"})
		return
	}
	res := Result{Name: name, Status: StatusOK}
	labelled, bad := 0, 0
	for _, c := range r.containers {
		has := false
		for k := range c.Labels {
			if strings.HasPrefix(k, "hemostat.") || k == container.LabelAutoheal {
				has = true
			}
		}
		if !has {
			continue
		}
		labelled++
		ps := CheckLabels(c.Labels)
		if len(ps) > 0 {
			bad++
		}
		for _, p := range ps {
			res.Status = worst(res.Status, p.Status)
			res.Details = append(res.Details, c.Name+": "+p.String())
		}
	}
	res.Summary = fmt.Sprintf("%d of %d containers carry hemostat labels; %d with problems", labelled, len(r.containers), bad)
	if bad == 0 {
		res.Summary = fmt.Sprintf("%d of %d containers carry hemostat labels, all readable", labelled, len(r.containers))
	} else {
		res.Fix = "Correct the labels (docker compose up -d, or recreate the container): the README's label table lists the values."
	}
	r.add(res)
}

// watch catches watch rules that leave the monitor with nothing to watch.
func (r *run) watch() {
	const name = "watch"
	if r.dk == nil || r.listErr != nil {
		r.add(Result{Name: name, Status: StatusSkip, Summary: "Docker unavailable"})
		return
	}
	w := r.o.Watch
	if w.Mode == "" {
		w.Mode = monitor.WatchAll
	}
	watched, running := 0, 0
	for _, c := range r.containers {
		if w.Watched(c.Name, c.Labels) {
			watched++
			if c.State == "running" {
				running++
			}
		}
	}
	desc := "--watch " + w.Mode
	if len(w.Include) > 0 {
		desc += ", --include " + strings.Join(w.Include, ",")
	}
	if len(w.Exclude) > 0 {
		desc += ", --exclude " + strings.Join(w.Exclude, ",")
	}
	switch {
	case len(r.containers) == 0:
		r.add(Result{Name: name, Status: StatusOK, Summary: desc + ": no containers yet"})
	case watched == 0 && w.Mode == monitor.WatchLabeled:
		r.add(Result{Name: name, Status: StatusFail,
			Summary: fmt.Sprintf("%s: none of the %d containers is labelled hemostat.enable=true or autoheal=true, so the monitor watches nothing", desc, len(r.containers)),
			Fix:     "Label the containers to heal (labels: hemostat.enable: \"true\" in compose), or use --watch all."})
	case watched == 0:
		r.add(Result{Name: name, Status: StatusFail,
			Summary: fmt.Sprintf("%s: the rules exclude all %d containers, so the monitor watches nothing", desc, len(r.containers)),
			Fix:     "Loosen --include/--exclude (HEMOSTAT_INCLUDE, HEMOSTAT_EXCLUDE) or the hemostat.enable=false labels."})
	default:
		r.add(Result{Name: name, Status: StatusOK, Summary: fmt.Sprintf("%s: watches %d of %d containers (%d running)", desc, watched, len(r.containers), running)})
	}
}

// dryRun says when the responder only simulates.
func (r *run) dryRun() {
	if r.o.DryRun {
		r.add(Result{Name: "dry-run", Status: StatusWarn,
			Summary: "--dry-run: every action is simulated against the shadow ledger; nothing is restarted",
			Fix:     "When `hemostat audit` shows the decisions you want, unset HEMOSTAT_DRY_RUN."})
	}
}
