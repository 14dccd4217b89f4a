package analyze

import (
	"context"
	"errors"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/store/incidents"
)

// maxCommit caps how many answers share one round trip.
const maxCommit = 256

// errStopped is returned to handlers that answer after Close.
var errStopped = errors.New("analyzer stopped")

// commit is one answer waiting for its round trip, with its record in the incident hash.
type commit struct {
	out  bus.Outgoing
	rec  incidents.Decision
	done chan error
}

// committer publishes the answers of concurrent handlers together (group commit): while one pipeline is
// in flight the next answers queue, and go out in the next one. Under load many alerts share a round
// trip; alone, an answer goes out at once.
type committer struct {
	pub Publisher
	inc IncidentStore
	in  chan *commit
}

func newCommitter(pub Publisher, inc IncidentStore) *committer {
	return &committer{pub: pub, inc: inc, in: make(chan *commit, maxCommit)}
}

// publish hands an answer to the committer and waits for its round trip.
func (c *committer) publish(ctx, life context.Context, out bus.Outgoing, rec incidents.Decision) error {
	if life.Err() != nil {
		return errStopped
	}
	cm := &commit{out: out, rec: rec, done: make(chan error, 1)}
	select {
	case c.in <- cm:
	case <-ctx.Done():
		return ctx.Err()
	case <-life.Done():
		return errStopped
	}
	select {
	case err := <-cm.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the answer may still go out; a redelivery publishes it again under the same id
	case <-life.Done():
		return errStopped // likewise
	}
}

// run commits until life is cancelled. It exits when life is done; answers queued then fail with
// errStopped and their alerts are redelivered.
func (c *committer) run(life context.Context) {
	batch := make([]*commit, 0, maxCommit)
	outs := make([]bus.Outgoing, 0, maxCommit)
	for {
		select {
		case <-life.Done():
			for {
				select {
				case cm := <-c.in:
					cm.done <- errStopped
				default:
					return
				}
			}
		case cm := <-c.in:
			batch = append(batch[:0], cm)
		drain:
			for len(batch) < maxCommit {
				select {
				case cm := <-c.in:
					batch = append(batch, cm)
				default:
					break drain
				}
			}
			outs = outs[:0]
			recs := make([]incidents.Decision, 0, len(batch))
			for _, cm := range batch {
				outs = append(outs, cm.out)
				recs = append(recs, cm.rec)
			}
			// The round trip is not cut short by the stop: it is what makes the answers durable.
			err := publishAnswers(context.WithoutCancel(life), c.pub, c.inc, outs, recs)
			for _, cm := range batch {
				cm.done <- err
			}
		}
	}
}

// publishAnswers publishes answers and records them on their incidents in one round trip: every record in
// one script run, after the answers.
func publishAnswers(ctx context.Context, pub Publisher, inc IncidentStore, outs []bus.Outgoing, recs []incidents.Decision) error {
	if len(outs) == 0 {
		return nil
	}
	last := &outs[len(outs)-1]
	last.Side = append(last.Side[:len(last.Side):len(last.Side)], inc.RecordDecisionsOp(recs))
	return pub.PublishManyWith(ctx, outs)
}
