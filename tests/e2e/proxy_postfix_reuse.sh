#!/bin/bash
# proxy_postfix_reuse.sh - Postfix's own smtp client delivering through mxmoat-proxy (into
# smtp-sink) over connections it caches and reuses, with limit_messages_per_session small enough
# that every connection reaches it: the proxy ends a session cleanly after the backend's 250 of
# its last allowed message, so Postfix opens a new connection at once and no message is ever
# deferred. Ports 12880-12882.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK: Postfix tests skipped"
[ "$(id -u)" = 0 ] || tap_skip_all "postfix -c needs root"

PF_PORT=12880 PF_SINK_PORT=12881 SINK=12882 N=20 LIMIT=3
cleanup() { px_cleanup; pf_stop; }
port_lock proxy-postfix-reuse || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"
# The sending Postfix relays everything to the proxy (PF_SINK_PORT is its relayhost), one
# connection at a time, cached and reused for every message; a deferred message would be retried
# after minimal_backoff_time, which is set far beyond the test's wait so a deferral shows.
pf_init "smtp_connection_cache_destinations = [127.0.0.1]:$PF_SINK_PORT" \
	"smtp_connection_cache_time_limit = 30s" \
	"default_destination_concurrency_limit = 1" "initial_destination_concurrency = 1" \
	"minimal_backoff_time = 300s" "maximal_backoff_time = 600s" "queue_run_delay = 300s" \
	"header_checks = regexp:$PX_DIR/hold.re" || tap_bail "pf_init failed"
printf '/^Subject: reuse /\tHOLD\n' > "$PX_DIR/hold.re"
px_sink_start $SINK || tap_bail "smtp-sink did not start"
px_start $PF_SINK_PORT 127.0.0.1:$SINK -o limit_messages_per_session=$LIMIT || tap_bail "proxy did not start"
pf_start || tap_bail "postfix did not start"

# Every message is held on arrival (header_checks HOLD) and all are released at once, so the one
# connection carries message after message.
for i in $(seq 1 $N); do
	printf 'From: a@example.org\nTo: b@example.net\nSubject: reuse %s\n\nmessage %s\n' "$i" "$i" |
		sendmail -C "$PF_CONF" -f a@example.org b@example.net || tap_bail "sendmail failed"
done
held() { postqueue -c "$PF_CONF" -j 2>/dev/null | grep -c '"queue_name": *"hold"'; }
for i in $(seq 1 300); do [ "$(held)" -ge $N ] && break; sleep 0.1; done
[ "$(held)" -ge $N ] || tap_bail "the $N messages did not reach the hold queue"
pf_postconf -e "header_checks =" && pf_reload && postsuper -c "$PF_CONF" -H ALL 2>/dev/null &&
	postqueue -c "$PF_CONF" -f ||
	tap_bail "cannot release the held messages"

px_wait_log " relayed .*backend_code=250" $N || true
tap_is "all $N messages reached the backend through the proxy" "$(px_dumps)" $N
pf_queue_empty_wait 30
tap_is "Postfix logged $N deliveries with status=sent" \
	"$(grep -c 'status=sent (250 ' "$PF_LOG")" $N
tap_is "no message was deferred" "$(grep -c 'status=deferred' "$PF_LOG")" 0
tap_ok "Postfix reused its cached connections" grep -qE 'conn_use=[2-9]' "$PF_LOG"
tap_is "no 421 reached Postfix" "$(grep -c ' said: 421 ' "$PF_LOG")" 0
most=$(awk '/ relayed / { n[$2]++ } END { m = 0; for (k in n) if (n[k] > m) m = n[k]; print m }' "$PX_DIR/proxy.log")
tap_is "no session carried more than $LIMIT messages" "$most" $LIMIT
tap_ok "the proxy ended sessions after their last message" \
	grep -q ' disconnect reason=limit_messages_per_session' "$PX_DIR/proxy.log"
[ "$TAP_FAILED" -gt 0 ] && { pf_diag; sed 's/^/# /' "$PX_DIR/proxy.log" | tail -40; }
tap_done
