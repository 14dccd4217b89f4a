package event

import (
	"fmt"
	"slices"
	"time"
)

// Payload is the typed data of one event type.
type Payload interface {
	EventType() string
	Validate() error
}

func missing(field string) error { return &DecodeError{Field: "data." + field, Reason: "missing"} }

func oneOf(field, v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return &DecodeError{Field: "data." + field, Reason: fmt.Sprintf("%q is not one of %v", v, allowed)}
	}
	return nil
}

func unit(field string, v float64) error {
	if v < 0 || v > 1 {
		return &DecodeError{Field: "data." + field, Reason: fmt.Sprintf("%v is outside 0..1", v)}
	}
	return nil
}

// Metrics is one resource sample as the seed published it.
type Metrics struct {
	CPUPercent      float64 `json:"cpu_percent"`
	MemoryPercent   float64 `json:"memory_percent"`
	MemoryUsage     uint64  `json:"memory_usage"`
	MemoryLimit     uint64  `json:"memory_limit"`
	NetworkRxBytes  uint64  `json:"network_rx_bytes"`
	NetworkTxBytes  uint64  `json:"network_tx_bytes"`
	BlkioReadBytes  uint64  `json:"blkio_read_bytes"`
	BlkioWriteBytes uint64  `json:"blkio_write_bytes"`
	PIDs            uint64  `json:"pids"`
}

// Anomaly is one threshold crossing that contributed to an alert.
type Anomaly struct {
	Type      string  `json:"type"`
	Severity  string  `json:"severity"` // info, warning, critical
	Threshold float64 `json:"threshold"`
	Actual    float64 `json:"actual"`
}

// Severities of an anomaly or alert.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// ContainerUnhealthy is published by the monitor on hemostat:health_alert when an incident opens.
type ContainerUnhealthy struct {
	ContainerID   string            `json:"container_id"`
	ContainerName string            `json:"container_name"`
	Image         string            `json:"image"`
	Status        string            `json:"status"`
	Class         string            `json:"class"`
	Severity      string            `json:"severity,omitempty"`
	Metrics       Metrics           `json:"metrics"`
	Anomalies     []Anomaly         `json:"anomalies"`
	HealthStatus  string            `json:"health_status"`
	ExitCode      int               `json:"exit_code"`
	RestartCount  int               `json:"restart_count"`
	EventTime     time.Time         `json:"event_time"`
	OOMKilled     bool              `json:"oom_killed,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Escalation    bool              `json:"escalation,omitempty"` // re-alert because the class escalated or the re-alert interval passed
}

// EventType implements Payload.
func (*ContainerUnhealthy) EventType() string { return TypeContainerUnhealthy }

// Validate implements Payload.
func (p *ContainerUnhealthy) Validate() error {
	switch {
	case p.ContainerID == "":
		return missing("container_id")
	case p.ContainerName == "":
		return missing("container_name")
	case p.Class == "":
		return missing("class")
	}
	return oneOf("class", p.Class, Classes)
}

// RemediationNeeded is published by the analyzer when an action should be taken.
type RemediationNeeded struct {
	Container      string    `json:"container"`
	ContainerID    string    `json:"container_id"`
	Action         string    `json:"action"`
	Reason         string    `json:"reason"`
	Confidence     float64   `json:"confidence"`
	AnalysisMethod string    `json:"analysis_method"`
	RootCause      string    `json:"root_cause,omitempty"`
	Evidence       []string  `json:"evidence,omitempty"`
	Command        []string  `json:"command,omitempty"`
	Class          string    `json:"class,omitempty"`
	DurationMS     float64   `json:"duration_ms,omitempty"`
	EventTime      time.Time `json:"event_time,omitzero"` // Docker's time of the detection, carried for time to remediate
	// ProposedAction is what an LLM proposed outside the actions it may choose; Action is then none.
	ProposedAction string `json:"proposed_action,omitempty"`
}

// EventType implements Payload.
func (*RemediationNeeded) EventType() string { return TypeRemediationNeeded }

// Validate implements Payload.
func (p *RemediationNeeded) Validate() error {
	switch {
	case p.Container == "":
		return missing("container")
	case p.Action == "":
		return missing("action")
	}
	if err := oneOf("action", p.Action, Actions); err != nil {
		return err
	}
	if p.ProposedAction != "" {
		if err := oneOf("proposed_action", p.ProposedAction, Actions); err != nil {
			return err
		}
	}
	return unit("confidence", p.Confidence)
}

// FalseAlarm is published by the analyzer when an alert needs no action.
type FalseAlarm struct {
	Container      string  `json:"container"`
	ContainerID    string  `json:"container_id,omitempty"`
	Reason         string  `json:"reason"`
	Confidence     float64 `json:"confidence"`
	AnalysisMethod string  `json:"analysis_method"`
	Class          string  `json:"class,omitempty"`
	DurationMS     float64 `json:"duration_ms,omitempty"`
}

// EventType implements Payload.
func (*FalseAlarm) EventType() string { return TypeFalseAlarm }

// Validate implements Payload.
func (p *FalseAlarm) Validate() error {
	if p.Container == "" {
		return missing("container")
	}
	return unit("confidence", p.Confidence)
}

// Result is the outcome of a remediation.
type Result struct {
	Status  string `json:"status"`
	Details string `json:"details,omitempty"`
	Error   string `json:"error,omitempty"`
}

// RemediationComplete is published by the responder for every request, whatever it decided.
type RemediationComplete struct {
	Container      string    `json:"container"`
	ContainerID    string    `json:"container_id,omitempty"`
	Action         string    `json:"action"`
	Result         Result    `json:"result"`
	DryRun         bool      `json:"dry_run"`
	Reason         string    `json:"reason"`
	Confidence     float64   `json:"confidence"`
	AnalysisMethod string    `json:"analysis_method"`
	Verified       bool      `json:"verified"`
	DurationMS     float64   `json:"duration_ms"`
	Class          string    `json:"class,omitempty"`
	RootCause      string    `json:"root_cause,omitempty"`
	Evidence       []string  `json:"evidence,omitempty"`
	RetryAfterMS   int64     `json:"retry_after_ms,omitempty"`  // cooldown left when denied
	EventTime      time.Time `json:"event_time,omitzero"`       // Docker's time of the detection
	ProposedAction string    `json:"proposed_action,omitempty"` // an LLM's refused proposal, when escalated for it
	// The incident's reconciliation, when the request belongs to one.
	FollowUp     bool      `json:"follow_up,omitempty"`    // hemostat looked again on its own schedule
	Attempts     int       `json:"attempts,omitempty"`     // actions executed for the incident so far
	MaxAttempts  int       `json:"max_attempts,omitempty"` // actions the breaker allows within its window
	GaveUp       bool      `json:"gave_up,omitempty"`      // this decision opened the breaker: no action until reset or cool-off
	BreakerUntil time.Time `json:"breaker_until,omitzero"` // when the breaker's cool-off ends
	Errors       []string  `json:"errors,omitempty"`       // the incident's verification errors, when it gave up
	NextAt       time.Time `json:"next_at,omitzero"`       // when hemostat looks again; zero: it will not
	Relapse      string    `json:"relapse,omitempty"`      // "relapsed 4s after restart 2"
	OpenedAt     time.Time `json:"opened_at,omitzero"`     // when the incident opened
}

// EventType implements Payload.
func (*RemediationComplete) EventType() string { return TypeRemediationComplete }

// Validate implements Payload.
func (p *RemediationComplete) Validate() error {
	switch {
	case p.Container == "":
		return missing("container")
	case p.Action == "":
		return missing("action")
	case p.Result.Status == "":
		return missing("result.status")
	}
	return oneOf("result.status", p.Result.Status, Statuses)
}

// ContainerRecovered is published by the monitor when an incident's condition has cleared.
type ContainerRecovered struct {
	ContainerID   string    `json:"container_id"`
	ContainerName string    `json:"container_name"`
	Class         string    `json:"class"`
	OpenedAt      time.Time `json:"opened_at,omitzero"`
	Attempts      int       `json:"attempts,omitempty"` // actions hemostat took for the incident
}

// EventType implements Payload.
func (*ContainerRecovered) EventType() string { return TypeContainerRecovered }

// Validate implements Payload.
func (p *ContainerRecovered) Validate() error {
	switch {
	case p.ContainerName == "":
		return missing("container_name")
	case p.Class == "":
		return missing("class")
	}
	return nil
}
