#!/bin/bash
# redis.sh - the shared rate limits' Redis killed and restarted under load (tests/lib/fault.sh: 20
# sessions of mixed traffic). Every connection and message is charged in Redis (nothing
# allow-listed, 5000 an hour: above the load, yet each charge keeps its bucket in Redis for
# seconds), with ratelimit_redis_failure = open: while Redis is
# gone the proxy limits in its own memory and mail flows; every message that got 250 is at the
# backend once, the outage and the return are logged once each, and the proxy goes on serving
# with Redis charged again. Ports 19720-19722.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/redis.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require redis
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"

FAULT_PORT=19720 S=19721 R=19722
PREFIX="mxmoat-fault-$$:"
cleanup() {
	redis_stop
	px_cleanup
}
trap cleanup EXIT
fault_init
redis_start $R || tap_bail "redis-server did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S -o ratelimit_store=redis -o "ratelimit_redis=127.0.0.1:$R" \
	-o "ratelimit_redis_prefix=$PREFIX" -o ratelimit_redis_timeout=2s -o ratelimit_redis_failure=open \
	-o ratelimit_allow= -o ratelimit_conn_per_ip=5000/1h -o ratelimit_conn_per_net=5000/1h \
	-o ratelimit_msg_per_ip=5000/1h -o ratelimit_rcpt_per_ip=5000/1h

fault_load redis --port $FAULT_PORT --sessions 20 --messages 1200 --seconds 150
fault_ledger_wait redis 300 || tap_diag "the load stopped before 300 messages"
keys() { redis-cli -p $R --scan --pattern "${PREFIX}*" | sed "s/^$PREFIX//" | sort | tr '\n' ' '; }
tap_like "Redis was charged before the fault (its buckets: $(keys))" "$(keys)" 'cip:127\.0\.0\.1 .*mip:127\.0\.0\.1 '
redis_kill
fault_ledger_wait redis 700 || tap_diag "the load stopped before 700 messages"
redis_start $R || tap_bail "redis-server did not come back"
fault_load_wait
fault_outcomes redis
fault_verify redis
fault_counted "Redis killed and restarted"
tap_is "fail-open: every message got 250 while Redis was away" "$O_ok" "$V_tried"
tap_is "the outage is logged once" "$(grep -c 'ratelimit store=redis status=down' "$PX_DIR/proxy.log")" 1
# The first check after the back-off (5 s at most) reconnects. On a fast machine the load can end
# while Redis is still away, so sessions go on (each one charges its connection) until it is back.
redis_return_logged() {
	local until=$((SECONDS + 60))
	while [ $SECONDS -lt $until ]; do
		grep -q 'store=redis status=up' "$PX_DIR/proxy.log" && return 0
		px_chat "$FAULT_PORT" R "S:EHLO check.example\r\n" R "S:QUIT\r\n" A >/dev/null
		sleep 0.2
	done
	return 1
}
tap_ok "and the return" redis_return_logged
fault_serving "with Redis back"
tap_like "Redis is charged again (fresh buckets after the restart: $(keys))" "$(keys)" \
	'cip:127\.0\.0\.1 .*mip:127\.0\.0\.1 '
fault_stop_clean "Redis faults"
tap_done
