package doctor

import (
	"context"
	"fmt"
	"time"
)

// clock compares this host's clock with Redis's TIME and the engine's /info time. Redis's clock stamps
// stream entry ids and the engine's stamps events (time to detect); the responder's backoff and breaker
// use this host's clock. Each offset is measured at the middle of the round trip, and only skew beyond
// half the round trip (the measurement's own uncertainty) counts.
func (r *run) clock(ctx context.Context) {
	const name = "clock"
	type source struct {
		name string
		read func(context.Context) (time.Time, error)
	}
	var sources []source
	if r.rd != nil {
		sources = append(sources, source{"Redis TIME", r.rd.ServerTime})
	}
	if r.dk != nil {
		sources = append(sources, source{"Docker /info", r.dk.SystemTime})
	}
	if len(sources) == 0 {
		r.add(Result{Name: name, Status: StatusSkip, Summary: "neither Redis nor Docker is reachable to compare clocks with"})
		return
	}
	res := Result{Name: name, Status: StatusOK}
	var parts []string
	for _, s := range sources {
		cctx, cancel := r.timeout(ctx)
		t0 := r.o.Now()
		remote, err := s.read(cctx)
		t1 := r.o.Now()
		cancel()
		if err != nil {
			res.Details = append(res.Details, fmt.Sprintf("%s: %v", s.name, err))
			res.Status = worst(res.Status, StatusWarn)
			continue
		}
		rtt := t1.Sub(t0)
		offset := remote.Sub(t0.Add(rtt / 2))
		skew := abs(offset) - rtt/2
		st := StatusOK
		switch {
		case skew >= r.o.ClockFail:
			st = StatusFail
		case skew >= r.o.ClockWarn:
			st = StatusWarn
		}
		res.Status = worst(res.Status, st)
		parts = append(parts, fmt.Sprintf("%s %+v (±%v)", s.name, offset.Round(time.Millisecond), (rtt/2).Round(time.Millisecond)))
	}
	res.Summary = "offsets from this host's clock: "
	for i, p := range parts {
		if i > 0 {
			res.Summary += ", "
		}
		res.Summary += p
	}
	if len(parts) == 0 {
		res.Summary = "no clock could be read"
	}
	if res.Status != StatusOK {
		res.Fix = fmt.Sprintf("Synchronise the clocks of this host, the Redis host and the Docker host with NTP (chrony, systemd-timesyncd): "+
			"skew above %v distorts time to detect, backoff and breaker windows, and stream ids.", r.o.ClockWarn)
	}
	r.add(res)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func worst(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}
