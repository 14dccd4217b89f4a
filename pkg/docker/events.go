package docker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Event is one container event from the engine, in hemostat's terms.
type Event struct {
	ID     string // container id
	Name   string // container name, from the event's attributes
	Image  string
	Action string // raw action, e.g. "die", "health_status: unhealthy"
	// Health is the status of a health_status event (healthy, unhealthy, starting), "" otherwise.
	Health string
	// ExitCode is the exit code of a die event, -1 when the event carries none.
	ExitCode int
	// Signal is the signal of a kill event ("15", "SIGKILL", ...), "" otherwise.
	Signal     string
	Attributes map[string]string // every attribute, container labels included
	Time       time.Time         // Docker's time of the event
	TimeNano   int64
}

// Kind is the action without a health_status or exec argument: "health_status", "die", "exec_start", ...
func (e Event) Kind() string {
	k, _, _ := strings.Cut(e.Action, ":")
	return k
}

// ErrEventsOverflow ends an event stream whose consumer let the buffer fill up: events were lost, so the
// consumer should reconnect with since and reconcile.
var ErrEventsOverflow = errors.New("event buffer full")

// ContainerActions are the container events the monitor needs (health_status matches every status).
var ContainerActions = []string{
	"create", "start", "restart", "die", "oom", "kill", "stop", "health_status", "pause", "unpause",
	"destroy", "rename", "update",
}

// EventsOptions select the events to stream.
type EventsOptions struct {
	Since   time.Time // replay from this time; zero means only new events
	Actions []string  // container actions to receive; empty means every container event
	Buffer  int       // capacity of the returned channel, default 4096
}

// Events streams container events until ctx is done or the stream breaks. One goroutine converts and
// enqueues each decoded event into a large buffered channel, never waiting on the consumer (the engine
// drops events for a subscriber that stalls 100 ms); when the buffer is full the stream ends with
// ErrEventsOverflow. Exactly one error is sent on the error channel, then both channels are closed; the
// goroutine exits when ctx is done or the stream ends.
func (c *Client) Events(ctx context.Context, o EventsOptions) (<-chan Event, <-chan error) {
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	out := make(chan Event, o.Buffer)
	errc := make(chan error, 1)
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for _, a := range o.Actions {
		f.Add("event", a)
	}
	lo := events.ListOptions{Filters: f}
	if !o.Since.IsZero() {
		lo.Since = fmt.Sprintf("%d.%09d", o.Since.Unix(), o.Since.Nanosecond())
	}
	sctx, cancel := context.WithCancel(ctx)
	msgs, errs := c.api.Events(sctx, lo)
	go func() {
		defer close(errc)
		defer close(out)
		defer cancel() // stops the SDK's decoding goroutine too
		for {
			select {
			case m := <-msgs:
				select {
				case out <- convertEvent(m):
				default:
					errc <- fmt.Errorf("events: %w (%d events)", ErrEventsOverflow, o.Buffer)
					return
				}
			case err := <-errs:
				if ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
				errc <- classify("events", err)
				return
			}
		}
	}()
	return out, errc
}

func convertEvent(m events.Message) Event {
	a := m.Actor.Attributes
	e := Event{
		ID: m.Actor.ID, Name: a["name"], Image: a["image"], Action: string(m.Action), Attributes: a,
		TimeNano: m.TimeNano, ExitCode: -1,
	}
	if e.TimeNano == 0 {
		e.TimeNano = m.Time * int64(time.Second)
	}
	e.Time = time.Unix(0, e.TimeNano).UTC()
	if k, v, ok := strings.Cut(e.Action, ":"); ok && k == "health_status" {
		e.Health = strings.TrimSpace(v)
	}
	if v, ok := a["exitCode"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			e.ExitCode = n
		}
	}
	e.Signal = a["signal"]
	return e
}
