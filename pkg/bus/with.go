package bus

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// SideWrite queues more commands into the pipeline that publishes an envelope; pkg/store builds them. It
// is an alias, not a defined type, so a store package returns one without importing the bus, and an
// agent's narrow interface (pkg/analyze IncidentStore) names it without importing go-redis.
type SideWrite = func(ctx context.Context, p redis.Pipeliner)

// PublishWith publishes the envelope like Publish and sends the side writes in the same round trip
// (one pipeline, not a transaction: the keys may live on different Cluster slots). An agent's answer and
// its own record of it travel together; a failure of either is returned.
func (b *Bus) PublishWith(ctx context.Context, stream string, env event.Envelope, side ...SideWrite) error {
	raw, err := env.Marshal()
	if err != nil {
		return fmt.Errorf("publish %s: %w", stream, err)
	}
	pipe := b.rdb.Pipeline()
	b.add(ctx, pipe, stream, raw)
	for _, s := range side {
		s(ctx, pipe)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %s: %w", stream, err)
	}
	b.stats.Published.Add(1)
	return nil
}

// Outgoing is one envelope to publish, with its side writes.
type Outgoing struct {
	Stream string
	Env    event.Envelope
	Side   []SideWrite
}

// PublishManyWith publishes several envelopes, each with its side writes, in one round trip: an agent
// that answers many events at once (group commit) pays one round trip for all of them.
func (b *Bus) PublishManyWith(ctx context.Context, out []Outgoing) error {
	pipe := b.rdb.Pipeline()
	for _, o := range out {
		raw, err := o.Env.Marshal()
		if err != nil {
			return fmt.Errorf("publish %s: %w", o.Stream, err)
		}
		b.add(ctx, pipe, o.Stream, raw)
		for _, s := range o.Side {
			s(ctx, pipe)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d events: %w", len(out), err)
	}
	b.stats.Published.Add(int64(len(out)))
	return nil
}
