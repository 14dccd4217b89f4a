// Package e2e holds hemostat's end-to-end scenarios: `hemostat run` as a real subprocess against real
// Redis and the real Docker engine, a local receiver standing in for Slack, and test containers built
// offline. Each scenario asserts the outcome and measures time to detect and time to remediate.
// TestACLUsers runs the agents as separate processes instead, each as its user of examples/redis/users.acl
// on a private redis-server, and derives that file with -update.
package e2e
