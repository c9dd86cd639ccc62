#!/bin/bash
# greylist_proxy_redis.sh - greylisting end to end through mxmoat-proxy in front of smtp-sink, two
# proxies sharing their triplets through a real redis-server: the first try and a retry before
# greylist_delay (2 s) get 451 4.7.1 with the delay left, a retry after it (awaited by polling,
# the elapsed time asserted) gets 250 through the other proxy, the client's network then passes
# at once with another sender, the store holds hashes only, a client in internal_networks is never
# greylisted; with Redis stopped a fail-closed proxy answers 451 4.3.0 and a fail-open one
# greylists in its own memory. Clients are loopback source addresses (greylist_net_prefix_v4=32
# makes each its own network).
# Ports 16420 (redis), 16421 (sink), 16422-16424 (proxies).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/redis.sh"
. "$top_srcdir/tests/lib/greylist.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

R=16420 S=16421 P1=16422 P2=16423 P3=16424
PREFIX="mxmoat-gltest-$$:"
port_lock greylist-proxy-redis || tap_skip_all "another run of this test held its ports for 600 s"
trap redis_proxy_cleanup EXIT
px_init || tap_bail "no temp dir"
redis_start $R || tap_bail "redis-server did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"

# start NAME PORT [-o ...] - one proxy in front of the shared Redis (tests/lib/redis.sh)
start() {
	local name=$1 port=$2
	shift 2
	redis_proxy_start "$name" "$port" \
		-o ratelimit_conn_per_ip= -o ratelimit_conn_per_net= -o greylist=all -o greylist_delay=2s -o greylist_net_prefix_v4=32 \
		-o internal_networks=127.0.0.6/32 "$@"
}
start p1 $P1 || tap_bail "proxy 1 did not start"
start p2 $P2 || tap_bail "proxy 2 did not start"
start p3 $P3 -o ratelimit_redis_failure=closed || tap_bail "proxy 3 did not start"

send() {	# send SRC PORT FROM - one message from SRC through the proxy on PORT
	swaks --server "127.0.0.1:$2" --local-interface "$1" --from "$3" --to b@example.net \
		--body "greylisting" --timeout 10 2>&1
}
greylisted=$'RCPT TO:<b@example.net>\n<\\*\\* 451 4\\.7\\.1 Greylisted, try again in [12] seconds'
accepted=$'<-  250 2\\.0\\.0 Ok'

start_ns=$(date +%s%N)
tap_like "first try through proxy 1: 451 4.7.1 with the delay" "$(send 127.0.0.5 $P1 a@example.org)" \
	"$greylisted"
tap_like "retry at once through proxy 2: 451 4.7.1 (one triplet in Redis)" \
	"$(send 127.0.0.5 $P2 a@example.org)" "$greylisted"
# through the other proxy: retried until it passes, never before the delay
gl_retry_until_passed "$start_ns" send 127.0.0.5 $P2 a@example.org
tap_like "the network then passes at once through proxy 1, another sender" \
	"$(send 127.0.0.5 $P1 other@example.com)" "$accepted"
keys=$(redis-cli -p $R --scan --pattern "${PREFIX}*" | sed "s/^$PREFIX//" | sort)
tap_is "Redis holds the network's pass as a hash, nothing else" "$(grep -cxE 'gn:[0-9a-f]{32}' <<<"$keys") $(wc -l <<<"$keys")" "1 1"
tap_is "... and no address" "$(grep -cE '127|example' <<<"$keys")" 0
tap_like "a client in internal_networks is never greylisted" \
	"$(send 127.0.0.6 $P1 a@example.org)" "$accepted"
tap_ok "proxy 1 logged the first try" grep -qE 'greylist client=127\.0\.0\.5 result=new wait=2000ms' \
	"$PX_DIR/p1.log"
tap_ok "proxy 2 logged the pass" grep -qE 'greylist client=127\.0\.0\.5 result=passed' "$PX_DIR/p2.log"

# --- Redis stopped: the fail rule of the rate limits ---
redis_kill
tap_like "Redis down, fail-closed proxy 3: 451 4.3.0" "$(send 127.0.0.7 $P3 a@example.org)" \
	$'RCPT TO:<b@example.net>\n<\\*\\* 451 4\\.3\\.0 Greylisting service unavailable, try again later'
tap_like "Redis down, fail-open proxy 1: greylisted in its memory" \
	"$(send 127.0.0.7 $P1 a@example.org)" "$greylisted"
tap_ok "proxy 1 logged the fallback" grep -qE 'greylist client=127\.0\.0\.7 result=new wait=2000ms store=memory' \
	"$PX_DIR/p1.log"
for n in p1 p2 p3; do
	kill -TERM "${PX_PIDS[$n]}"; wait "${PX_PIDS[$n]}"; rc=$?
	tap_is "$n exits with status 0" "$rc" 0
	unset "PX_PIDS[$n]"
done
tap_is "no sanitizer report" "$(grep -lE 'AddressSanitizer|LeakSanitizer|runtime error' "$PX_DIR"/p*.log)" ""
[ "$TAP_FAILED" = 0 ] || tail -n 20 "$PX_DIR"/p*.log | sed 's/^/# /'
tap_done
