package monitor

import (
	"path"
	"strings"

	"github.com/hemostat/hemostat/pkg/container"
)

// Watch modes.
const (
	WatchAll     = "all"     // every container not opted out
	WatchLabeled = "labeled" // only containers labelled hemostat.enable=true or autoheal=true
)

// WatchRules decide which containers the monitor detects on.
type WatchRules struct {
	Mode    string   // all or labeled
	Include []string // name globs; empty means every name
	Exclude []string // name globs
}

// Watched reports whether a container is watched: never hemostat's own (label hemostat.self=true) or one
// labelled hemostat.enable=false; in labeled mode only those labelled hemostat.enable=true or
// autoheal=true; then the name must match an include glob (when any) and no exclude glob.
func (w WatchRules) Watched(name string, labels map[string]string) bool {
	if isTrue(labels[container.LabelSelf]) {
		return false
	}
	enable, set := labels[container.LabelEnable]
	if set && isFalse(enable) {
		return false
	}
	if w.Mode == WatchLabeled && !isTrue(enable) && !isTrue(labels[container.LabelAutoheal]) {
		return false
	}
	if len(w.Include) > 0 && !matchAny(w.Include, name) {
		return false
	}
	return !matchAny(w.Exclude, name)
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, err := path.Match(g, name); err == nil && ok {
			return true
		}
	}
	return false
}

func isTrue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

func isFalse(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "false", "0", "no", "off":
		return true
	}
	return false
}
