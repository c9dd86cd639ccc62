# redis.sh - a real redis-server on a loopback port for the e2e tests (source it; bash).
#
#   redis_start PORT
#       Start redis-server on 127.0.0.1:PORT in a private temporary directory, no persistence
#       (--save '' --appendonly no); waits (at most 10 s) until it answers PING. Sets REDIS_DIR
#       (kept across restarts), REDIS_PID and REDIS_PORT. Non-zero with the log on stderr on failure.
#   redis_kill
#       Stop the server (by its pid only) and wait for it to be gone; REDIS_DIR stays, so
#       redis_start can bring it back on the same port ("Redis restarted" tests).
#   redis_stop
#       redis_kill and remove REDIS_DIR. Safe to call twice; call it from your EXIT trap.

. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

REDIS_DIR=
REDIS_PID=
REDIS_PORT=

redis_start() {
	local port=$1
	command -v redis-server >/dev/null 2>&1 || { echo "redis_start: redis-server not installed" >&2; return 2; }
	[ -n "$REDIS_DIR" ] || REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moat-redis.XXXXXX") || return 2
	REDIS_PORT=$port
	# The server gets none of the caller's descriptors beyond 0-2 (a fifo or the TAP pipe kept
	# open by it would keep a reader waiting for an end of file that never comes).
	(
		for fd in $(ls "/proc/$BASHPID/fd"); do
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done 2>/dev/null
		exec redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$REDIS_DIR" \
			--daemonize no --protected-mode yes --logfile "$REDIS_DIR/redis.log" </dev/null >/dev/null 2>&1
	) &
	REDIS_PID=$!
	proc_wait_ready "$REDIS_PID" redis__ours "$port" && return 0
	echo "redis_start: redis-server did not answer on 127.0.0.1:$port" >&2
	cat "$REDIS_DIR/redis.log" >&2 2>/dev/null
	redis_kill
	return 1
}

# redis__ours PORT - the server answering on 127.0.0.1:PORT is ours, not one left there by
# someone else
redis__ours() {
	[ "$(redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null |
		sed -n 's/^process_id:\([0-9]*\).*/\1/p')" = "$REDIS_PID" ]
}

redis_kill() {
	[ -n "$REDIS_PID" ] || return 0
	proc_stop "$REDIS_PID"
	REDIS_PID=
}

redis_stop() {
	redis_kill
	[ -n "$REDIS_DIR" ] && rm -rf "$REDIS_DIR"
	REDIS_DIR=
}

# Proxies sharing the Redis on $R, for tests that start several (tests/lib/proxy.sh first).
# redis_proxy_start NAME PORT [-o ...] - one mxmoat-proxy on PORT relaying to the sink on $S, its
# rate limits in that Redis under $PREFIX (5 s to answer: "down" is Redis stopped, never a slow
# sanitized proxy), its log in $PX_DIR/NAME.log, its pid in PX_PIDS[NAME].
declare -A PX_PIDS
redis_proxy_start() {
	local name=$1 port=$2
	shift 2
	"$top_builddir/proxy/mxmoat-proxy" -f -o "proxy_listen=127.0.0.1:$port" -o "proxy_backend=127.0.0.1:$S" \
		-o proxy_workers=1 -o auth_inbound=no -o ratelimit_store=redis -o "ratelimit_redis=127.0.0.1:$R" \
		-o "ratelimit_redis_prefix=$PREFIX" -o ratelimit_redis_timeout=5s -o ratelimit_allow= \
		"$@" >>"$PX_DIR/$name.log" 2>&1 &
	PX_PIDS[$name]=$!
	px__wait_port "$port"
}

# redis_proxy_cleanup - kill the proxies redis_proxy_start started, stop Redis and the sink.
redis_proxy_cleanup() {
	local n
	for n in "${!PX_PIDS[@]}"; do kill -KILL "${PX_PIDS[$n]}" 2>/dev/null; wait "${PX_PIDS[$n]}" 2>/dev/null; done
	redis_stop
	px_cleanup
}
