#!/bin/bash
# report_failure.sh - DMARC failure reports (RFC 9991, AFRF of RFC 6591) through the proxy:
# mxmoat-proxy with dmarc_report_store = sqlite (or, with REPORT_FAILURE_STORE=redis as
# report_failure_redis.sh sets it, redis: a redis-server on 16773), dmarc_failure_reports = yes and
# a limit of 2 reports per policy domain and hour, the resolver at nsd serving policies with ruf= and fo=.
# Three p=reject failures of own.fr.test (ruf= in its own domain, fo=0) make two reports (the
# limit), a p=none failure of ext.fr.test (ruf= at rcv.test, which authorizes it) one,
# noauth.fr.test (ruf= at rcv.test, not authorized) one that is never sent, an aligned pass (fo=0)
# and a policy without ruf= none. mxmoat-report --send mails three through smtp-sink; Python's
# email package parses each: multipart/report; report-type=feedback-report, its three parts, the
# feedback fields, and the original header with recipient addresses redacted, Bcc left out, no
# body. The store is empty afterwards and a second --send sends nothing.
# Ports: 16770 (nsd), 16771 (proxy), 16772 (sink), 16773 (redis).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/redis.sh"
top_builddir=${top_builddir:-.}
store=${REPORT_FAILURE_STORE:-sqlite}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"
[ "$store" = sqlite ] || command -v redis-server >/dev/null || tap_skip_all "redis-server not installed"
port_lock report-failure || tap_skip_all "another run of this test held its ports for 600 s"
trap 'px_cleanup; dns_stop; redis_stop' EXIT
px_init || tap_bail "no temp dir"
dns_start 16770 .="$top_srcdir/tests/e2e/data/root.zone" fr.test="$top_srcdir/tests/e2e/data/fr.test.zone" \
	rcv.test="$top_srcdir/tests/e2e/data/rcv.test.zone" || tap_bail "nsd did not start"

mkdir -p "$PX_DIR/spool" "$PX_DIR/db" && chown nobody "$PX_DIR/spool" "$PX_DIR/db"   # daemon_user
db=$PX_DIR/db/report.db
if [ "$store" = redis ]; then
	redis_start 16773 || tap_bail "redis-server did not start"
	store_opts=(-o dmarc_report_store=redis -o ratelimit_redis=127.0.0.1:16773)
else
	store_opts=(-o dmarc_report_store=sqlite -o "dmarc_report_db=$db")
fi
px_sink_start 16772 || tap_bail "smtp-sink did not start"
px_start 16771 127.0.0.1:16772 -o auth_inbound=yes -o dns_resolver=127.0.0.1@16770 \
	-o authserv_id=mx.fr.test -o "proxy_spool_dir=$PX_DIR/spool" \
	"${store_opts[@]}" -o dmarc_failure_reports=yes -o dmarc_failure_report_domain_limit=2 || tap_bail "the proxy did not start"

# send FROM-DOMAIN - one message, header From and MAIL FROM in the domain, recipients in To,
# Cc and Bcc, and a body that must never reach a report
send() {
	swaks --server 127.0.0.1:16771 --from "bounce@$1" --to alice.smith@example.net \
		--header "From: <alice@$1>" --header "To: Alice <alice.smith@example.net>" \
		--header "Cc: bob@example.net" --header "Bcc: secret@example.net" \
		--header "Subject: hello $1" --body "the secret body" 2>&1
}
for i in 1 2 3; do
	tap_like "own.fr.test (p=reject) failure $i: 550 5.7.1" "$(send own.fr.test)" "<\*\* 550 5\.7\.1 "
done
tap_like "ext.fr.test (p=none, fo=1) failure: relayed" "$(send ext.fr.test)" "<-  250 2\.0\.0 Ok"
tap_like "noauth.fr.test (p=none) failure: relayed" "$(send noauth.fr.test)" "<-  250 2\.0\.0 Ok"
tap_like "pass.fr.test aligned SPF pass: relayed" "$(send pass.fr.test)" "<-  250 2\.0\.0 Ok"
tap_like "noruf.fr.test failure without ruf=: relayed" "$(send noruf.fr.test)" "<-  250 2\.0\.0 Ok"
px_stop

# stored - "policy_domain:ruf" of each failure report waiting in the store, sorted; with
# STORED_BODY=1 the number of them that hold the message's body instead
stored() {
	/usr/bin/python3 - "$store" "$db" "${STORED_BODY:-0}" <<'PY'
import socket, sqlite3, sys
store, db, body = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if store == "sqlite":
    con = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
    rows = [(d, r, rep.encode()) for d, r, rep in con.execute("SELECT policy_domain, ruf, report FROM failures")]
else:
    # LRANGE of the "f" list by hand (RESP): each element is the time, then the policy domain,
    # the ruf= URI and the report, NUL-terminated
    s = socket.create_connection(("127.0.0.1", 16773), timeout=10)
    s.sendall(b"*4\r\n$6\r\nLRANGE\r\n$14\r\nmxmoat:dmarc:f\r\n$1\r\n0\r\n$2\r\n-1\r\n")
    f = s.makefile("rb")
    n = int(f.readline()[1:])
    rows = []
    for _ in range(max(n, 0)):
        size = int(f.readline()[1:])
        elem = f.read(size + 2)[:size]
        t, d, r, rep = elem.split(b"\0")[:4]
        rows.append((d.decode(), r.decode(), rep))
if body:
    print(sum(b"secret body" in rep for _, _, rep in rows))
else:
    print(" ".join(sorted("%s:%s" % (d, r) for d, r, _ in rows)))
PY
}
tap_is "four stored: own.fr.test twice (its limit of 2 an hour), ext and noauth; none for the pass or without ruf=" \
	"$(stored)" \
	"ext.fr.test:mailto:fr@rcv.test noauth.fr.test:mailto:fr@rcv.test own.fr.test:mailto:fr@own.fr.test own.fr.test:mailto:fr@own.fr.test"
tap_is "the body is in no stored report" \
	"$(STORED_BODY=1 stored)" 0

report() {
	"$top_builddir/tools/mxmoat-report" -o authserv_id=mx.fr.test -o report_from=dmarc@mx.fr.test \
		-o dns_resolver=127.0.0.1@16770 -o report_smtp=127.0.0.1:16772 "${store_opts[@]}" "$@"
}
out=$(report --send 2>"$PX_DIR/err")
tap_is "--send: exit 0, three reports sent" "$?|$(echo "$out" | sed 's/report [0-9]* of/report of/' | sort | tr '\n' ' ')" \
	"0|failure report of ext.fr.test sent to fr@rcv.test failure report of own.fr.test sent to fr@own.fr.test failure report of own.fr.test sent to fr@own.fr.test "
tap_like "the destination that does not authorize them gets nothing" "$(cat "$PX_DIR/err")" \
	"failure report [0-9]+ of noauth\.fr\.test: not sent to fr@rcv\.test: an external destination that does not authorize the reports"
tap_like "the summary" "$(cat "$PX_DIR/err")" "3 messages sent through 127\.0\.0\.1:16772; 0 destinations left"
px_sink_idle_wait
got=$(/usr/bin/python3 "$top_srcdir/tests/lib/afrf.py" "$PX_DIR/dump")
tap_is "each report as Python's email package reads it" "$got" \
"<fr@own.fr.test> multipart/report report-type=feedback-report text/plain,message/feedback-report,text/rfc822-headers | Feedback-Type=auth-failure Auth-Failure=dmarc Version=1 Reported-Domain=own.fr.test Source-IP=127.0.0.1 Original-Mail-From=<bounce@own.fr.test> Delivery-Result=reject Identity-Alignment=none ua=mxmoat ar=dmarc=fail | To=Alice <redacted@example.net> Cc=redacted@example.net Bcc=None Subject=hello own.fr.test body='' subject=DMARC failure report for own.fr.test
<fr@own.fr.test> multipart/report report-type=feedback-report text/plain,message/feedback-report,text/rfc822-headers | Feedback-Type=auth-failure Auth-Failure=dmarc Version=1 Reported-Domain=own.fr.test Source-IP=127.0.0.1 Original-Mail-From=<bounce@own.fr.test> Delivery-Result=reject Identity-Alignment=none ua=mxmoat ar=dmarc=fail | To=Alice <redacted@example.net> Cc=redacted@example.net Bcc=None Subject=hello own.fr.test body='' subject=DMARC failure report for own.fr.test
<fr@rcv.test> multipart/report report-type=feedback-report text/plain,message/feedback-report,text/rfc822-headers | Feedback-Type=auth-failure Auth-Failure=dmarc Version=1 Reported-Domain=ext.fr.test Source-IP=127.0.0.1 Original-Mail-From=<bounce@ext.fr.test> Delivery-Result=delivered Identity-Alignment=none ua=mxmoat ar=dmarc=fail | To=Alice <redacted@example.net> Cc=redacted@example.net Bcc=None Subject=hello ext.fr.test body='' subject=DMARC failure report for ext.fr.test"
tap_is "no report holds the body or an unredacted recipient" \
	"$(grep -lE 'secret body|alice\.smith@|bob@|secret@' "$PX_DIR"/dump/* | xargs -r grep -l 'feedback-report' | wc -l)" 0
tap_is "the store is empty: sent, or refused for good" "$(stored)" ""
out=$(report --send 2>&1)
rc=$?
out=$(echo "$out" | grep -v ' read from redis ')	# the Redis store's count of what it read
tap_is "a second --send sends nothing" "$rc|$out" \
	"0|mxmoat-report: 0 messages sent through 127.0.0.1:16772; 0 destinations left for the next run"
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
