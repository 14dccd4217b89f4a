package doctor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hemostat/hemostat/pkg/conn"
)

// minRedis is the oldest server with every command the bus uses (XAUTOCLAIM arrived in 6.2).
var minRedis = [2]int{6, 2}

// redis checks reachability and version, persistence and the eviction policy.
func (r *run) redis(ctx context.Context) {
	if r.o.Redis == nil {
		r.redisErr = fmt.Errorf("no Redis client configured")
	} else {
		cctx, cancel := r.timeout(ctx)
		r.rd, r.redisErr = r.o.Redis(cctx)
		cancel()
	}
	if errors.Is(r.redisErr, conn.ErrCluster) {
		r.add(Result{Name: "redis", Status: StatusFail, Summary: r.redisErr.Error(),
			Fix: "Point hemostat at one Redis server (--redis-url), or at a Sentinel-managed master for failover " +
				"(--redis-sentinels, --redis-master). docs/architecture.md says why Cluster is refused."})
		r.add(Result{Name: "redis-mode", Status: StatusSkip, Summary: "Redis Cluster is refused"})
		r.add(Result{Name: "redis-persistence", Status: StatusSkip, Summary: "Redis Cluster is refused"})
		r.add(Result{Name: "redis-eviction", Status: StatusSkip, Summary: "Redis Cluster is refused"})
		return
	}
	if r.redisErr != nil {
		res := Result{Name: "redis", Status: StatusFail, Summary: fmt.Sprintf("no Redis at %s: %v", r.o.RedisURL, r.redisErr),
			Fix: "Start Redis, or set --redis-url (HEMOSTAT_REDIS_URL); the password goes in HEMOSTAT_REDIS_PASSWORD or _FILE."}
		if r.o.RedisDefault {
			res.Status = StatusWarn
			res.Summary = fmt.Sprintf("no Redis at the default %s: `hemostat run` would serve its embedded store; the separate agents, dash and audit need a Redis", r.o.RedisURL)
			res.Fix = "For one process, nothing to do. For separate agents or several hosts, run Redis (examples/compose) and set HEMOSTAT_REDIS_URL."
		}
		r.add(res)
		r.add(Result{Name: "redis-mode", Status: StatusSkip, Summary: "Redis unavailable"})
		r.add(Result{Name: "redis-persistence", Status: StatusSkip, Summary: "Redis unavailable"})
		r.add(Result{Name: "redis-eviction", Status: StatusSkip, Summary: "Redis unavailable"})
		return
	}
	r.redisVersion(ctx)
	r.mode(ctx)
	r.persistence(ctx)
	r.eviction(ctx)
}

func (r *run) info(ctx context.Context, section string) (map[string]string, error) {
	cctx, cancel := r.timeout(ctx)
	defer cancel()
	return r.rd.ServerInfo(cctx, section)
}

func (r *run) config(ctx context.Context, param string) (string, bool) {
	cctx, cancel := r.timeout(ctx)
	defer cancel()
	m, err := r.rd.ServerConfig(cctx, param)
	if err != nil {
		return "", false
	}
	v, ok := m[param]
	return v, ok
}

func (r *run) redisVersion(ctx context.Context) {
	info, err := r.info(ctx, "server")
	v := info["redis_version"]
	if err != nil || v == "" {
		r.add(Result{Name: "redis", Status: StatusWarn, Summary: fmt.Sprintf("Redis at %s answers, but INFO server does not tell its version (%v)", r.o.RedisURL, err),
			Fix: fmt.Sprintf("hemostat needs Redis %d.%d or later (streams with XAUTOCLAIM); check the server's version by hand.", minRedis[0], minRedis[1])})
		return
	}
	major, minor := parseVersion(v)
	if major < minRedis[0] || major == minRedis[0] && minor < minRedis[1] {
		r.add(Result{Name: "redis", Status: StatusFail, Summary: fmt.Sprintf("Redis %s at %s is too old: the bus reclaims entries with XAUTOCLAIM (6.2)", v, r.o.RedisURL),
			Fix: fmt.Sprintf("Upgrade to Redis %d.%d or later.", minRedis[0], minRedis[1])})
		return
	}
	mode := info["redis_mode"]
	if mode == "" {
		mode = "standalone"
	}
	r.add(Result{Name: "redis", Status: StatusOK, Summary: fmt.Sprintf("Redis %s (%s) at %s", v, mode, r.o.RedisURL)})
}

func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// persistence: the ledger (breakers, backoff), the incidents and the audit trail live in Redis, so a
// restart without persistence forgets every safety rail and the history.
func (r *run) persistence(ctx context.Context) {
	const name = "redis-persistence"
	const fix = "Turn on the append-only file: CONFIG SET appendonly yes, and appendonly yes in redis.conf " +
		"(redis-server --appendonly yes; examples/compose does)."
	info, infoErr := r.info(ctx, "persistence")
	aof, aofKnown := r.config(ctx, "appendonly")
	save, saveKnown := r.config(ctx, "save")
	if !aofKnown && infoErr == nil {
		aof, aofKnown = map[string]string{"1": "yes", "0": "no"}[info["aof_enabled"]], info["aof_enabled"] != ""
	}
	if !aofKnown {
		r.add(Result{Name: name, Status: StatusWarn, Summary: "neither CONFIG GET appendonly nor INFO persistence answers: persistence unknown",
			Fix: "Make sure the server persists (appendonly yes): without it a restart forgets breakers, backoff, incidents and the audit trail."})
		return
	}
	var details []string
	for _, k := range []string{"aof_last_write_status", "aof_last_bgrewrite_status", "rdb_last_bgsave_status"} {
		if v, ok := info[k]; ok && v != "" && v != "ok" {
			details = append(details, fmt.Sprintf("%s:%s", k, v))
		}
	}
	if len(details) > 0 {
		r.add(Result{Name: name, Status: StatusFail, Summary: "Redis reports failed writes to disk: what it holds would not survive a restart",
			Details: details, Fix: "Read the Redis log: usually a full disk or a directory Redis cannot write (CONFIG GET dir)."})
		return
	}
	switch {
	case aof == "yes":
		fsync, _ := r.config(ctx, "appendfsync")
		s := "append-only file on"
		if fsync != "" {
			s += " (appendfsync " + fsync + ")"
		}
		r.add(Result{Name: name, Status: StatusOK, Summary: s})
	case saveKnown && strings.TrimSpace(save) != "":
		r.add(Result{Name: name, Status: StatusWarn,
			Summary: fmt.Sprintf("RDB snapshots only (save %q): a crash loses the audit entries and ledger changes since the last snapshot", save),
			Fix:     fix})
	default:
		r.add(Result{Name: name, Status: StatusWarn,
			Summary: "no persistence: a Redis restart forgets every breaker, backoff, open incident, pending stream entry and the audit trail",
			Fix:     fix})
	}
}

// eviction: the streams, the ledger and the audit trail must never be evicted. volatile-* policies are no
// safer: leases and handled-request ids carry TTLs, and evicting them early breaks exactly-once handling.
func (r *run) eviction(ctx context.Context) {
	const name = "redis-eviction"
	info, _ := r.info(ctx, "memory")
	policy, max := info["maxmemory_policy"], info["maxmemory"]
	if policy == "" {
		policy, _ = r.config(ctx, "maxmemory-policy")
	}
	if max == "" {
		max, _ = r.config(ctx, "maxmemory")
	}
	if policy == "" {
		r.add(Result{Name: name, Status: StatusWarn, Summary: "the server does not tell its maxmemory-policy",
			Fix: "Make sure it is noeviction: an evicting Redis silently loses streams, ledger entries and audit records."})
		return
	}
	limit, _ := strconv.ParseInt(max, 10, 64)
	switch {
	case policy == "noeviction":
		s := "maxmemory-policy noeviction: a full Redis refuses writes, it never drops hemostat's keys"
		if limit == 0 {
			s = "maxmemory-policy noeviction, no maxmemory limit"
		}
		r.add(Result{Name: name, Status: StatusOK, Summary: s})
	case limit == 0:
		r.add(Result{Name: name, Status: StatusWarn,
			Summary: fmt.Sprintf("maxmemory-policy %s: harmless while maxmemory is 0, but the day a limit is set Redis starts dropping streams and ledger keys", policy),
			Fix:     "CONFIG SET maxmemory-policy noeviction (and in redis.conf)."})
	default:
		r.add(Result{Name: name, Status: StatusFail,
			Summary: fmt.Sprintf("maxmemory-policy %s with maxmemory %d bytes: under memory pressure Redis evicts stream entries, ledger records and audit entries without a word", policy, limit),
			Fix:     "CONFIG SET maxmemory-policy noeviction (and in redis.conf), and give Redis the memory it needs; cap the streams with --stream-max-len instead."})
	}
}

// mode: how hemostat reaches Redis (one server, or a master through Sentinel), whether it is encrypted, and
// whether the server can take writes. Through Sentinel it also tells what a failover can lose.
func (r *run) mode(ctx context.Context) {
	const name = "redis-mode"
	tlsWords := r.o.RedisTLS
	if tlsWords == "" {
		tlsWords = "off"
	}
	info, err := r.info(ctx, "replication")
	role := info["role"]
	if err != nil || role == "" {
		r.add(Result{Name: name, Status: StatusWarn, Summary: fmt.Sprintf("%s, TLS %s; INFO replication does not answer (%v): the server's role is unknown", r.o.modeWords(), tlsWords, err),
			Fix: "Make sure the server hemostat writes to is a master, not a replica."})
		return
	}
	replicas, _ := strconv.Atoi(info["connected_slaves"])
	var details []string
	for i := range replicas {
		if v := info[fmt.Sprintf("slave%d", i)]; v != "" {
			details = append(details, "replica "+v)
		}
	}
	minReplicas, _ := r.config(ctx, "min-replicas-to-write")
	if minReplicas != "" {
		maxLag, _ := r.config(ctx, "min-replicas-max-lag")
		details = append(details, fmt.Sprintf("min-replicas-to-write %s, min-replicas-max-lag %s", minReplicas, maxLag))
	}
	summary := fmt.Sprintf("%s, TLS %s, role %s, %d replica(s)", r.o.modeWords(), tlsWords, role, replicas)
	switch {
	case role != "master":
		r.add(Result{Name: name, Status: StatusFail, Details: details,
			Summary: summary + ": a replica refuses writes (READONLY), so no agent can work",
			Fix:     "Point --redis-url at the master, or use --redis-sentinels and --redis-master to follow it."})
	case r.o.RedisMode == conn.ModeSentinel && replicas == 0:
		r.add(Result{Name: name, Status: StatusWarn, Details: details,
			Summary: summary + ": the sentinels have no replica to promote, so a master failure stops hemostat until it returns",
			Fix:     "Run at least one replica of the master (replicaof), watched by the sentinels."})
	case r.o.RedisMode == conn.ModeSentinel:
		details = append(details, "replication is asynchronous: a failover loses the writes the master acknowledged but had not yet sent to the promoted replica; docs/architecture.md says what hemostat does about it")
		r.add(Result{Name: name, Status: StatusOK, Summary: summary, Details: details})
	default:
		r.add(Result{Name: name, Status: StatusOK, Details: details,
			Summary: summary + "; no failover: while Redis is down the agents wait (--redis-sentinels for failover)"})
	}
}

// modeWords names the connection mode.
func (o Options) modeWords() string {
	if o.RedisMode == conn.ModeSentinel {
		return "through Sentinel"
	}
	return "standalone"
}
