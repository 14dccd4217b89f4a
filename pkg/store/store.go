// Package store is hemostat's state in Redis, organised by data: one package per body of data, each with
// its keys' records in pkg/store/schema and its Lua scripts beside it.
//
//	schema      every key and hash record, with its one encode and decode
//	agents      the agents' heartbeats
//	containers  the container table, the latest samples, each host's monitor figures
//	incidents   incidents, the failing set, the follow-up schedule, OOM kills
//	ledger      the responder's safety ledger, leases, running actions, done markers
//	auditlog    the hash-chained audit trail's stream, head and per-container index
//	notify      the alert agent's deduplication, threads, counters, failures and event lists
//
// Store bundles them over one connection for the commands that wire agents; agents depend on narrow
// interfaces of their own, which these packages implement.
package store

import (
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store/agents"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/notify"
)

// Store is every body of state over one connection.
type Store struct {
	Conn       *conn.Conn
	Agents     *agents.Store
	Containers *containers.Store
	Incidents  *incidents.Store
	Ledger     *ledger.Store
	Audit      *auditlog.Store
	Notify     *notify.Store
}

// New returns the stores over a connection.
func New(c *conn.Conn) *Store {
	return &Store{Conn: c, Agents: agents.New(c), Containers: containers.New(c), Incidents: incidents.New(c),
		Ledger: ledger.New(c), Audit: auditlog.New(c), Notify: notify.New(c)}
}

// Open opens a connection and returns the stores over it.
func Open(o conn.Options) (*Store, error) {
	c, err := conn.Open(o)
	if err != nil {
		return nil, err
	}
	return New(c), nil
}

// Close closes the connection.
func (s *Store) Close() error { return s.Conn.Close() }
