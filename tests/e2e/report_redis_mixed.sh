#!/bin/bash
# report_redis_mixed.sh - mxmoat-proxy and mxmoat-milter (behind Postfix) recording into ONE
# Redis (dmarc_report_store = redis, the resolver at nsd): two p=quarantine failures of
# q.rep.test through the proxy and one through the milter make one aggregate report whose row
# counts all three. Then mxmoat-report --send with the Redis store claims each period before
# sending it: a period another run holds (its claim key set) is left alone; two runs started at
# the same moment send it once between them; the claim is given back and a third run sends
# nothing.
# Ports: 16790 (nsd), 16791 (redis), 16792 (sink of the proxy and of the reports), 16793 (proxy),
# 16794 (Postfix smtpd), 16795 (Postfix's sink), 16796 (milter).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/redis.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"
milter_pf_prepare report-redis-mixed
trap 'redis_stop; milter__pf_cleanup' EXIT
px_init || tap_bail "no temp dir"

D=16790 R=16791 S=16792
PREFIX="mxmoat-mixed-$$:"
dns_start $D .="$top_srcdir/tests/e2e/data/root.zone" rep.test="$top_srcdir/tests/e2e/data/rep.test.zone" ||
	tap_bail "nsd did not start"
redis_start $R || tap_bail "redis-server did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"
store=(-o auth_inbound=yes -o "dns_resolver=127.0.0.1@$D" -o authserv_id=mx.rep.test
	-o dmarc_report_store=redis -o "ratelimit_redis=127.0.0.1:$R" -o "dmarc_report_redis_prefix=$PREFIX"
	-o ratelimit_redis_timeout=5s)
px_start 16793 127.0.0.1:$S -o "proxy_spool_dir=$PX_DIR" "${store[@]}" || tap_bail "the proxy did not start"
tap_ok "milter starts recording into the same Redis" milter_start inet:16796@127.0.0.1 "${store[@]}"
milter_pf_start 16794 16795 "smtpd_milters = inet:127.0.0.1:16796" "milter_default_action = tempfail" \
	"milter_protocol = 6"

send() {
	swaks --server "127.0.0.1:$1" --from bounce@q.rep.test --to b@example.net \
		--header "From: <alice@q.rep.test>" --header "Subject: $2" --body "$2" --timeout 20 2>&1
}
tap_like "proxy: a p=quarantine failure relayed" "$(send 16793 p1)" "<-  250 2\.0\.0 Ok"
tap_like "proxy: another" "$(send 16793 p2)" "<-  250 2\.0\.0 Ok"
tap_like "milter: a third, queued by Postfix" "$(send 16794 m1)" "<-  250 2\.0\.0 Ok: queued as"
today=$(( $(date +%s) / 86400 ))
for i in $(seq 1 100); do
	[ "$(redis-cli -p $R llen "${PREFIX}r:$today")" -ge 3 ] && break
	sleep 0.1
done
tap_is "three records in the day's list" "$(redis-cli -p $R llen "${PREFIX}r:$today")" 3
milter_stop
tap_ok "the milter wrote its one" milter_log_grep "dmarc-report store=redis written=1 dropped=0 lost=0"
tap_ok "milter: no sanitizer report" milter_sanitizer_clean

report() {
	"$top_builddir/tools/mxmoat-report" -o authserv_id=mx.rep.test -o report_from=dmarc@mx.rep.test \
		-o dmarc_report_store=redis -o "ratelimit_redis=127.0.0.1:$R" -o "dmarc_report_redis_prefix=$PREFIX" \
		-o "dns_resolver=127.0.0.1@$D" -o "report_smtp=127.0.0.1:$S" --now $(( (today + 1) * 86400 + 60 )) "$@"
}
tap_is "one report, one row counting the messages of both daemons" \
	"$(report --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["reports"]:
    print(r["policy_published"]["domain"], [(x["source_ip"], x["count"]) for x in r["records"]])')" \
	"q.rep.test [('127.0.0.1', 3)]"

# reports - the aggregate reports of q.rep.test the sink received
reports() { grep -l '^Subject: Report Domain: q\.rep\.test ' "$PX_DIR"/dump/* 2>/dev/null | wc -l; }
claim="${PREFIX}claim:$today:q.rep.test"
redis-cli -p $R set "$claim" other-host:1:1 ex 600 >/dev/null
out=$(report --send 2>&1)
tap_like "a period another run holds is left to it" "$?|$out" \
	"^0\|.*q\.rep\.test of $((today * 86400)): being sent by another run \(claimed in Redis\).*0 messages sent"
tap_is "... its claim untouched" "$(redis-cli -p $R get "$claim")" "other-host:1:1"
redis-cli -p $R del "$claim" >/dev/null

report --send >"$PX_DIR/a.out" 2>&1 &
a=$!
report --send >"$PX_DIR/b.out" 2>&1 &
b=$!
wait $a; ra=$?
wait $b; rb=$?
tap_is "two runs at the same moment: both exit 0" "$ra $rb" "0 0"
tap_is "... one of them sent the report" "$(cat "$PX_DIR/a.out" "$PX_DIR/b.out" | grep -c 'sent to agg@q\.rep\.test$')" 1
px_sink_idle_wait
tap_is "... the receiver has it once" "$(reports)" 1
tap_is "the claim is given back" "$(redis-cli -p $R exists "$claim")" 0
tap_is "the period is marked sent in Redis" \
	"$(redis-cli -p $R hkeys "${PREFIX}sent:$today" | sort | tr '\n' ' ')" "send q.rep.test send:agg@q.rep.test q.rep.test "
out=$(report --send 2>&1)
tap_like "a third run sends nothing" "$?|$out" "^0\|.*0 messages sent"
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
