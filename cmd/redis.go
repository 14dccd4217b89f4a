package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/conn"
)

// RedisOptions are the global flags that say how to reach Redis. Every command that talks to Redis (each
// agent, run, dash, audit, incident, doctor, completions) opens its connection from them through
// Deps.redisOptions, so they mean the same everywhere.
type RedisOptions struct {
	URL        string
	Password   string
	Sentinels  []string
	MasterName string
	TLS        conn.TLSFiles
}

// addRedisFlags defines the Redis connection flags, all in one place: the URL or the sentinels, the
// password, and the TLS files.
func addRedisFlags(pf *pflag.FlagSet, r *RedisOptions) {
	pf.StringVar(&r.URL, "redis-url", defaultRedisURL, "Redis URL (redis:// or rediss:// for TLS); with --redis-sentinels only its scheme, user, password and database apply")
	pf.StringVar(&r.Password, "redis-password", "", "Redis password (overrides the URL's); with --redis-sentinels, the sentinels' too")
	markSecret(pf, "redis-password")
	pf.StringSliceVar(&r.Sentinels, "redis-sentinels", nil, "Redis Sentinel addresses (host:port,...): find the master through them and follow its failovers")
	pf.StringVar(&r.MasterName, "redis-master", "", "name of the master the sentinels watch (with --redis-sentinels)")
	pf.StringVar(&r.TLS.CA, "redis-tls-ca", "", "PEM file of the CA that signed Redis's certificate (default: the system's CAs)")
	pf.StringVar(&r.TLS.Cert, "redis-tls-cert", "", "PEM file of the client certificate, for a Redis that verifies clients (tls-auth-clients)")
	pf.StringVar(&r.TLS.Key, "redis-tls-key", "", "PEM file of the client certificate's private key")
	pf.StringVar(&r.TLS.ServerName, "redis-tls-server-name", "", "name Redis's certificate must carry (default: the host dialled)")
}

// redisOptions are the connection options of the global flags, with a pool of poolSize connections.
func (d *Deps) redisOptions(poolSize int) conn.Options {
	r := d.Global.Redis
	return conn.Options{URL: r.URL, Password: r.Password, Sentinels: r.Sentinels, MasterName: r.MasterName,
		TLS: r.TLS, PoolSize: poolSize}
}

// redisTarget names the Redis the flags point at, for messages: the URL without its password, or the
// master and its sentinels.
func (d *Deps) redisTarget() string {
	r := d.Global.Redis
	if len(r.Sentinels) > 0 {
		return fmt.Sprintf("master %s via sentinels %s", r.MasterName, strings.Join(r.Sentinels, ","))
	}
	return conn.Redact(r.URL)
}

// redisHint says which settings choose the Redis.
func (d *Deps) redisHint() string {
	if len(d.Global.Redis.Sentinels) > 0 {
		return "set --redis-sentinels and --redis-master, or HEMOSTAT_REDIS_SENTINELS and HEMOSTAT_REDIS_MASTER"
	}
	return "set --redis-url or HEMOSTAT_REDIS_URL"
}
