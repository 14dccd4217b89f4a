// Package container holds hemostat's domain types for containers and their samples, shared by the monitor
// (which writes them), the exporter and the dashboard (which read them), and the pure stats maths.
package container

import (
	"slices"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
)

// Summary is one known container, stored as JSON in its host's container table (schema.ContainersKey)
// under Target(host, name).
type Summary struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Host         string            `json:"host"`
	Image        string            `json:"image"`
	State        string            `json:"state"`  // created, running, restarting, paused, exited, dead
	Health       string            `json:"health"` // healthy, unhealthy, starting, or "" without a healthcheck
	ExitCode     int               `json:"exit_code"`
	RestartCount int               `json:"restart_count"`
	OOMKilled    bool              `json:"oom_killed,omitempty"`
	StartedAt    time.Time         `json:"started_at,omitzero"`
	Labels       map[string]string `json:"labels,omitempty"`
	Mode         string            `json:"mode"`                // auto, suggest, observe (label hemostat.mode)
	Watched      bool              `json:"watched"`             // false when opted out or excluded
	Incidents    []string          `json:"incidents,omitempty"` // open incident classes
	UpdatedAt    time.Time         `json:"updated_at"`
}

// Target is the container's "host/name" key.
func (s Summary) Target() string { return event.Target(s.Host, s.Name) }

// Sample is one resource sample, stored in the hash hemostat:stats:{host/name} (field "sample" holds this JSON,
// field "history" a JSON array of the recent CPU and memory percentages for sparklines).
type Sample struct {
	Time    time.Time     `json:"time"`
	Source  string        `json:"source"` // cgroup or api
	Metrics event.Metrics `json:"metrics"`
	// Cumulative counters, for rates across samples.
	CPUTotalNS uint64 `json:"cpu_total_ns"`
	SystemNS   uint64 `json:"system_ns,omitempty"`
	OnlineCPUs int    `json:"online_cpus,omitempty"`
}

// History is the short series kept beside the latest sample for sparklines.
type History struct {
	CPU    []float64 `json:"cpu"`
	Memory []float64 `json:"memory"`
}

// Clone returns a copy that shares no memory with h.
func (h History) Clone() History {
	return History{CPU: slices.Clone(h.CPU), Memory: slices.Clone(h.Memory)}
}

// Labels hemostat reads on containers.
const (
	LabelEnable          = "hemostat.enable"
	LabelCPUThreshold    = "hemostat.cpu_threshold"
	LabelMemoryThreshold = "hemostat.memory_threshold"
	LabelMode            = "hemostat.mode"
	LabelProtected       = "hemostat.protected"
	LabelActions         = "hemostat.actions"
	LabelExec            = "hemostat.exec"
	LabelLLMActions      = "hemostat.llm_actions"
	LabelStopTimeout     = "hemostat.stop_timeout"
	LabelAutoheal        = "autoheal"
	LabelTest            = "hemostat.test"
	LabelSelf            = "hemostat.self" // on hemostat's own containers
	LabelComposeService  = "com.docker.compose.service"
	LabelComposeProject  = "com.docker.compose.project"
	LabelSwarmService    = "com.docker.swarm.service.name"
)

// Modes of the hemostat.mode label.
const (
	ModeAuto    = "auto"
	ModeSuggest = "suggest"
	ModeObserve = "observe"
)
