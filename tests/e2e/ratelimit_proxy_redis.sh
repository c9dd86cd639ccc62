#!/bin/bash
# ratelimit_proxy_redis.sh - two mxmoat-proxy instances share their rate limits through a real
# redis-server (the libuv Redis store, proxy/ratelimit_uv.c): the second refuses a connection
# (421 4.7.0) and a message (451 4.7.1 at RCPT) once the first used the budget; Redis stopped mid-test:
# the fail-open instances go on limiting in their own memory and log the outage, a fail-closed
# third instance refuses, nobody crashes; Redis back on the same port: shared again.
# Ports 16410 (redis), 16411 (sink), 16412-16414 (proxies).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/redis.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

R=16410 S=16411 P1=16412 P2=16413 P3=16414
# Budgets per hour, not per minute: a bucket refills one token per 20 min, so however slowly a
# loaded machine runs the cases, a refused connection is the budget's, never the clock's. Redis
# gets 5 s to answer: "down" is Redis stopped (refused at once), never a slow sanitized proxy.
PREFIX="mxmoat-pxtest-$$:"
port_lock ratelimit-proxy-redis || tap_skip_all "another run of this test held its ports for 600 s"
trap redis_proxy_cleanup EXIT
px_init || tap_bail "no temp dir"
redis_start $R || tap_bail "redis-server did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"

# start NAME PORT [-o ...] - one proxy in front of the shared Redis (tests/lib/redis.sh)
start() {
	local name=$1 port=$2
	shift 2
	redis_proxy_start "$name" "$port" \
		-o ratelimit_conn_per_net= -o ratelimit_conn_per_ip=3/1h -o ratelimit_msg_per_ip=2/1h \
		"$@"
}
start p1 $P1 || tap_bail "proxy 1 did not start"
start p2 $P2 || tap_bail "proxy 2 did not start"
start p3 $P3 -o ratelimit_redis_failure=closed || tap_bail "proxy 3 did not start"

greet() { python3 "$top_srcdir/tests/lib/smtp_chat.py" 127.0.0.1 "$2" --src "$1" R "S:QUIT\r\n" A | head -1; }
send() {
	swaks --server "127.0.0.1:$2" --local-interface "$1" --from a@example.org --to b@example.net \
		--body "shared limits" --timeout 10 2>&1
}
refused='^<- 421 4\.7\.0 Too many connections from your address'

# --- one budget for both ---
for i in 1 2; do tap_like "127.0.0.2 -> proxy 1, connection $i: 220" "$(greet 127.0.0.2 $P1)" "^<- 220 "; done
tap_like "127.0.0.2 -> proxy 2, connection 3: 220" "$(greet 127.0.0.2 $P2)" "^<- 220 "
tap_like "127.0.0.2 -> proxy 2, connection 4: 421 (proxy 1 used the budget)" "$(greet 127.0.0.2 $P2)" "$refused"
tap_like "127.0.0.2 -> proxy 1, connection 5: 421 too" "$(greet 127.0.0.2 $P1)" "$refused"
tap_like "127.0.0.3 message 1 through proxy 1: 250" "$(send 127.0.0.3 $P1)" $'<-  250 2\\.0\\.0 Ok'
tap_like "127.0.0.3 message 2 through proxy 2: 250" "$(send 127.0.0.3 $P2)" $'<-  250 2\\.0\\.0 Ok'
tap_like "127.0.0.3 message 3 through proxy 2: RCPT gets 451 4.7.1" "$(send 127.0.0.3 $P2)" \
	$'RCPT TO:<[^>]*>\n<\\*\\* 451 4\\.7\\.1 Too many messages from your address, try again later'
keys=$(redis-cli -p $R --scan --pattern "${PREFIX}*" | sed "s/^$PREFIX//" | sort | tr '\n' ' ')
tap_is "the buckets live in Redis" "$keys" "cip:127.0.0.1 cip:127.0.0.2 cip:127.0.0.3 mip:127.0.0.3 "
ttl=$(redis-cli -p $R pttl "${PREFIX}cip:127.0.0.2")
tap_ok "and expire on their own (pttl $ttl ms)" test "$ttl" -gt 0 -a "$ttl" -le 3600000

# --- pipelined: the commands after an RCPT arrive while its check waits for Redis ---
out=$(swaks --server 127.0.0.1:$P1 --local-interface 127.0.0.10 --pipeline --from a@example.org \
	--to r1@example.net,r2@example.net,r3@example.net --body "pipelined" --timeout 10 2>&1)
tap_is "pipelined through proxy 1: three RCPTs accepted" "$(grep -c '250 2.1.5' <<< "$out")" 3
tap_like "... and the message" "$out" '250 2\.0\.0 Ok'
tap_is "... its message bucket is in Redis" "$(redis-cli -p $R exists "${PREFIX}mip:127.0.0.10")" 1

# --- Redis stopped ---
redis_kill
for i in 1 2 3; do tap_like "Redis down: 127.0.0.4 -> proxy 1, connection $i: 220 (fail-open)" "$(greet 127.0.0.4 $P1)" "^<- 220 "; done
tap_like "Redis down: 127.0.0.4 -> proxy 1, connection 4: 421 (limits go on in memory)" "$(greet 127.0.0.4 $P1)" "$refused"
tap_like "Redis down: 127.0.0.4 -> proxy 2: 220 (its own memory)" "$(greet 127.0.0.4 $P2)" "^<- 220 "
tap_like "Redis down: proxy 3 (fail-closed) refuses with 421 4.7.0" "$(greet 127.0.0.5 $P3)" \
	'^<- 421 4\.7\.0 Rate-limit service unavailable, try again later'
tap_like "Redis down: a message through proxy 1 still passes" "$(send 127.0.0.6 $P1)" $'<-  250 2\\.0\\.0 Ok'
alive=0
for n in p1 p2 p3; do kill -0 "${PX_PIDS[$n]}" 2>/dev/null && alive=$((alive + 1)); done
tap_is "all three proxies still run" "$alive" 3
tap_is "proxy 1 logs the outage once" "$(grep -c 'ratelimit store=redis status=down' "$PX_DIR/p1.log")" 1
tap_like "proxy 1 logs the fallback" "$(cat "$PX_DIR/p1.log")" "status=unreachable fallback=memory"
tap_like "proxy 3 logs the refusal" "$(cat "$PX_DIR/p3.log")" "status=unreachable fallback=closed"

# --- Redis back (empty: no persistence) ---
redis_start $R || { tap_ok "redis-server came back" false; tap_done; exit 1; }
up=0
for i in $(seq 1 60); do	# back-off is at most 5 s: poll at least 30 s
	greet 127.0.0.7 $P1 >/dev/null
	greet 127.0.0.7 $P2 >/dev/null
	grep -q 'store=redis status=up' "$PX_DIR/p1.log" && grep -q 'store=redis status=up' "$PX_DIR/p2.log" &&
		{ up=1; break; }
	sleep 0.5
done
tap_is "both proxies log that Redis is back" "$up" 1
for i in 1 2 3; do tap_like "Redis back: 127.0.0.8 -> proxy 2, connection $i: 220" "$(greet 127.0.0.8 $P2)" "^<- 220 "; done
tap_like "Redis back: 127.0.0.8 -> proxy 1, connection 4: 421 (shared again)" "$(greet 127.0.0.8 $P1)" "$refused"
tap_like "Redis back: proxy 3 serves again" "$(greet 127.0.0.9 $P3)" "^<- 220 "
tap_done
