#!/bin/bash
# report_redis.sh - dmarc_report_store = redis with a real redis-server: two mxmoat-proxy
# instances (the resolver at nsd, tests/lib/dns.sh) record into one Redis, and mxmoat-report makes
# one report per policy domain holding the messages of both, valid against the schema; a second
# --write writes nothing (the periods are marked in Redis). Then Redis stops: mail still flows,
# the outage is logged once however many batches fail, the loss is logged and counted when Redis
# is back, and the metrics say how many were written and lost.
# Ports: 16740 (nsd), 16741 (redis), 16742 (sink), 16743-16744 (proxies).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/report.sh"
. "${top_srcdir:-.}/tests/lib/redis.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
command -v xmllint >/dev/null || tap_skip_all "xmllint not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

D=16740 R=16741 S=16742 P1=16743 P2=16744
PREFIX="mxmoat-drtest-$$:"
declare -A PID
cleanup() {
	local n
	for n in "${!PID[@]}"; do kill -KILL "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done
	redis_stop
	px_cleanup
	dns_stop
}
port_lock report-redis || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"

dns_start $D .="$top_srcdir/tests/e2e/data/root.zone" rep.test="$top_srcdir/tests/e2e/data/rep.test.zone" ||
	tap_bail "nsd did not start"
redis_start $R || tap_bail "redis-server did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"

# start NAME PORT - one proxy recording into Redis, its log in $PX_DIR/NAME.log
start() {
	"$top_builddir/proxy/mxmoat-proxy" -f -o "proxy_listen=127.0.0.1:$2" -o "proxy_backend=127.0.0.1:$S" \
		-o proxy_workers=1 -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$D" -o authserv_id=mx.rep.test \
		-o "proxy_spool_dir=$PX_DIR" -o dmarc_report_store=redis -o "ratelimit_redis=127.0.0.1:$R" \
		-o "dmarc_report_redis_prefix=$PREFIX" -o ratelimit_redis_timeout=5s -o "metrics_listen=127.0.0.1:$3" \
		>>"$PX_DIR/$1.log" 2>&1 &
	PID[$1]=$!
	px__wait_port "$2"
}
# stop NAME - SIGTERM and wait (bounded) for the exit
stop() {
	proc_stop "${PID[$1]}" TERM
	unset "PID[$1]"
}
start p1 $P1 16745 || tap_bail "proxy 1 did not start"
start p2 $P2 16746 || tap_bail "proxy 2 did not start"

# send PORT FROM-DOMAIN - one message, header From and MAIL FROM in the domain
send() {
	swaks --server "127.0.0.1:$1" --from "bounce@$2" --to b@example.net \
		--header "From: <alice@$2>" --header "Subject: $2" --body "$2" --timeout 20 2>&1
}
ok='<-  250 2\.0\.0 Ok'
tap_like "proxy 1: a p=quarantine failure relayed" "$(send $P1 q.rep.test)" "$ok"
tap_like "proxy 1: another" "$(send $P1 q.rep.test)" "$ok"
tap_like "proxy 2: a third" "$(send $P2 q.rep.test)" "$ok"
tap_like "proxy 2: an aligned pass" "$(send $P2 pass.rep.test)" "$ok"

today=$(( $(date +%s) / 86400 ))
# The writers batch for at most 200 ms: wait (bounded) for the four records.
for i in $(seq 1 100); do
	[ "$(redis-cli -p $R llen "${PREFIX}r:$today")" -ge 4 ] && break
	sleep 0.1
done
tap_is "four records in the day's list, from both proxies" "$(redis-cli -p $R llen "${PREFIX}r:$today")" 4
tap_is "the day is listed" "$(redis-cli -p $R smembers "${PREFIX}days")" "$today"
ttl=$(redis-cli -p $R ttl "${PREFIX}r:$today")
tap_ok "the list expires in 32 days ($ttl s)" test "$ttl" -gt $((31 * 86400)) -a "$ttl" -le $((32 * 86400))

report() {
	"$top_builddir/tools/mxmoat-report" -o authserv_id=mx.rep.test -o dmarc_report_store=redis \
		-o "ratelimit_redis=127.0.0.1:$R" -o "dmarc_report_redis_prefix=$PREFIX" \
		--now $(( (today + 1) * 86400 + 60 )) "$@"
}
mkdir "$PX_DIR/out"
out=$(report --write "$PX_DIR/out" 2>&1)
tap_like "mxmoat-report reads the four records from Redis" "$out" "4 records read from redis 127\.0\.0\.1:$R"
tap_is "one report per policy domain" \
	"$(report_names "$PX_DIR/out")" \
	"mx.rep.test!pass.rep.test mx.rep.test!q.rep.test "
tap_is "both validate against the schema" "$(report_valid "$PX_DIR/out")" 2
tap_is "q.rep.test's report counts the messages of both proxies in one row" \
	"$(gzip -dc "$PX_DIR"/out/*q.rep.test* | grep -oE '<(source_ip|count|disposition)>[^<]*' | tr '\n' ' ')" \
	"<source_ip>127.0.0.1 <count>3 <disposition>quarantine "
tap_is "the two periods are marked in Redis" \
	"$(redis-cli -p $R hkeys "${PREFIX}sent:$today" | sort | tr '\n' ' ')" "write pass.rep.test write q.rep.test "
mkdir "$PX_DIR/out2"
tap_like "a second --write writes nothing" "$(report --write "$PX_DIR/out2" 2>&1)" "0 reports written"
tap_is "... no file" "$(ls "$PX_DIR/out2" | wc -l)" 0
tap_is "--json --all still has both" \
	"$(report --json --all 2>/dev/null | /usr/bin/python3 -c 'import json, sys; print(len(json.load(sys.stdin)["reports"]))')" 2

# --- Redis stops: mail flows, the outage is logged once ---
redis_kill
tap_like "Redis down: proxy 1 still relays" "$(send $P1 q.rep.test)" "$ok"
px_wait_log 'dmarc-report store=redis status=error' 1 "$PX_DIR/p1.log"
tap_is "the outage is logged (once so far)" "$(grep -c 'dmarc-report store=redis status=error' "$PX_DIR/p1.log")" 1
tap_like "Redis down: a second batch" "$(send $P1 q.rep.test)" "$ok"
# the second batch has failed when the metrics count two lost
count() {
	curl -s "http://127.0.0.1:16745/metrics" | sed -n "s/^mxmoat_dmarc_report_records_total{status=\"$1\"} //p"
}
for i in $(seq 1 100); do [ "$(count lost)" = 2 ] && break; sleep 0.1; done
tap_is "two records counted lost (mxmoat_dmarc_report_records_total)" "$(count lost)" 2
tap_is "still one error line for the outage" "$(grep -c 'dmarc-report store=redis status=error' "$PX_DIR/p1.log")" 1
redis_start $R || tap_bail "redis-server did not come back"
tap_like "Redis back: relayed" "$(send $P1 pass.rep.test)" "$ok"
tap_ok "the recovery is logged with the loss" \
	px_wait_log 'dmarc-report store=redis status=recovered lost=2' 1 "$PX_DIR/p1.log"
tap_is "... and the record written" "$(redis-cli -p $R llen "${PREFIX}r:$today")" 1
tap_is "proxy 1 counts three written, none dropped" "$(count written) $(count dropped)" "3 0"
stop p1
stop p2
tap_is "no sanitizer report" \
	"$(cat "$PX_DIR"/p[12].log | grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:')" 0
tap_done
