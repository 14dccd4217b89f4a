#!/bin/sh
# tmux-dash-test.sh: run `hemostat dash` in a real terminal (a detached tmux session, 120x40) against a
# real Redis seeded exactly as the agents write it, send keys, capture the pane and assert what a person
# sees: container rows, an open incident, the detail view, the filter narrowing the table, a live event,
# the history, a clean exit. The driver is the Go test TestTmuxDash in pkg/dash (its seeder is test-only).
#
# Uses $HEMOSTAT_TEST_REDIS_URL when set; otherwise starts a private redis-server on a free port.
# $HEMOSTAT_BIN runs a prebuilt binary instead of building one. Extra arguments go to `go test`.
set -eu
cd "$(dirname "$0")/.."

command -v tmux >/dev/null 2>&1 || { echo "tmux-dash-test: tmux is not installed (apt-get install tmux)" >&2; exit 1; }

if [ -z "${HEMOSTAT_TEST_REDIS_URL:-}" ]; then
	command -v redis-server >/dev/null 2>&1 || { echo "tmux-dash-test: set HEMOSTAT_TEST_REDIS_URL or install redis-server" >&2; exit 1; }
	dir=$(mktemp -d)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 16390)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes \
		--pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
	trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
	i=0
	until redis-cli -p "$port" ping >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 200 ] || { echo "tmux-dash-test: redis-server did not start" >&2; exit 1; }
		sleep 0.05
	done
	HEMOSTAT_TEST_REDIS_URL="redis://127.0.0.1:$port"
	export HEMOSTAT_TEST_REDIS_URL
fi

# CI=true makes a missing dependency fail instead of skipping.
CI=true go test -count=1 -run '^TestTmuxDash$' -v ./pkg/dash/ "$@"
