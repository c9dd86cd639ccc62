#!/bin/bash
# report_send.sh - mxmoat-report --send through a real SMTP receiver (smtp-sink writing each
# message to a folder) with nsd (tests/lib/dns.sh) serving the authorizations of external
# destinations. A day of recorded evaluations of four policy domains: two whose rua= is in their
# own domain (one also names an address with a 1-byte size limit), one whose rua= is outside and
# authorized by "ext.rep.test._report._dmarc.rua.test" TXT "v=DMARC1", one outside without that
# record. Three messages arrive, each with the report attached as RFC 9990 names it, valid against
# the schema; the unauthorized and the too small destinations get nothing; a second --send sends
# nothing. Then a receiver that is down: nothing marked, the next run sends.
# Ports: 16750 (nsd), 16751 (sink), 16752 (nothing listens).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/report.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
command -v xmllint >/dev/null || tap_skip_all "xmllint not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"
port_lock report-send || tap_skip_all "another run of this test held its ports for 600 s"
trap 'px_cleanup; dns_stop' EXIT
px_init || tap_bail "no temp dir"
dns_start 16750 .="$top_srcdir/tests/e2e/data/root.zone" rep.test="$top_srcdir/tests/e2e/data/rep.test.zone" \
	rua.test="$top_srcdir/tests/e2e/data/rua.test.zone" || tap_bail "nsd did not start"
px_sink_start 16751 || tap_bail "smtp-sink did not start"

db=$PX_DIR/store.db
today=$(( $(date +%s) / 86400 ))
report() {
	"$top_builddir/tools/mxmoat-report" -o authserv_id=mx.rep.test -o report_from=dmarc@mx.rep.test \
		-o dns_resolver=127.0.0.1@16750 -o report_smtp=127.0.0.1:16751 --db "$db" --now $((today * 86400 + 60)) "$@"
}
out=$(report --send 2>&1)
tap_is "an empty store: nothing to send" "$? $out" \
	"0 mxmoat-report: 0 messages sent through 127.0.0.1:16751; 0 destinations left for the next run"

# record DOMAIN RUA COUNT - COUNT evaluations of yesterday under DOMAIN's policy
record() {
	/usr/bin/python3 - "$db" "$1" "$2" "$3" $(((today - 1) * 86400 + 3600)) <<'PY'
import sqlite3, sys
db, dom, rua, n, t = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
con = sqlite3.connect(db)
for i in range(n):
    con.execute("INSERT INTO records (t, source_ip, header_from, envelope_from, policy_domain, dmarc,"
                " dkim_aligned, spf_aligned, disposition, override, override_comment, spf_domain, spf_scope,"
                " spf_result, dkim, p, sp, np, adkim, aspf, testing, psd, rua, ruf, fo)"
                " VALUES (?, '192.0.2.7', ?, ?, ?, 'fail', 'fail', 'fail', 'quarantine', '', '', ?, 'mfrom',"
                " 'fail', '', 'quarantine', '', '', 'r', 'r', 'n', 'u', ?, '', '')",
                (t + i, dom, dom, dom, dom, rua))
con.commit()
PY
}
record pass.rep.test "mailto:agg@pass.rep.test" 2
record q.rep.test "mailto:agg@q.rep.test, mailto:tiny@q.rep.test!1" 3
record ext.rep.test "mailto:agg@rua.test" 4
record noauth.rep.test "mailto:agg@rua.test" 5

out=$(report --send 2>"$PX_DIR/err")
tap_is "three reports sent" "$(echo "$out" | sed 's/^[^!]*!\([^!]*\)!.* sent to /\1 /' | sort | tr '\n' ' ')" \
	"ext.rep.test agg@rua.test pass.rep.test agg@pass.rep.test q.rep.test agg@q.rep.test "
tap_like "the external destination without the authorizing record gets nothing" "$(cat "$PX_DIR/err")" \
	"noauth\.rep\.test![0-9!a-f]*\.xml\.gz: not sent to agg@rua\.test: an external destination that does not authorize the reports"
tap_like "the 1-byte limit is respected" "$(cat "$PX_DIR/err")" \
	"q\.rep\.test![0-9!a-f]*\.xml\.gz: not sent to tiny@q\.rep\.test: [0-9]+ bytes, over its limit 1"
tap_like "the summary" "$(cat "$PX_DIR/err")" "3 messages sent through 127\.0\.0\.1:16751; 0 destinations left"
px_sink_idle_wait
tap_is "three messages at the receiver" "$(px_dumps)" 3

# Each message: envelope, Subject, the attachment's name and content, valid, with its count.
mkdir "$PX_DIR/att"
got=$(/usr/bin/python3 - "$PX_DIR/dump" "$PX_DIR/att" <<'PY'
import email, email.policy, gzip, os, sys
dump, att = sys.argv[1], sys.argv[2]
for f in sorted(os.listdir(dump)):
    m = email.message_from_binary_file(open(os.path.join(dump, f), "rb"), policy=email.policy.default)
    parts = [p for p in m.iter_attachments()]
    name = parts[0].get_filename()
    data = parts[0].get_content()
    open(os.path.join(att, name), "wb").write(data)
    xml = gzip.decompress(data).decode()
    count = sum(int(x.split("</count>")[0]) for x in xml.split("<count>")[1:])
    print(m["X-Mail-Args"], m["X-Rcpt-Args"], parts[0].get_content_type(), m["Subject"].split(" Report-ID")[0],
          name.split("!")[0], name.split("!")[1], "count=%d" % count)
PY
)
tap_is "each message: from report_from, to its rua, application/gzip named receiver!domain!..., its count" \
	"$(echo "$got" | sort)" \
"<dmarc@mx.rep.test> <agg@pass.rep.test> application/gzip Report Domain: pass.rep.test Submitter: mx.rep.test mx.rep.test pass.rep.test count=2
<dmarc@mx.rep.test> <agg@q.rep.test> application/gzip Report Domain: q.rep.test Submitter: mx.rep.test mx.rep.test q.rep.test count=3
<dmarc@mx.rep.test> <agg@rua.test> application/gzip Report Domain: ext.rep.test Submitter: mx.rep.test mx.rep.test ext.rep.test count=4"
tap_like "the attachments are named as RFC 9990 says" "$(ls "$PX_DIR/att" | tr '\n' ' ')" \
	"^(mx\.rep\.test![a-z.]+!$(((today - 1) * 86400))!$((today * 86400 - 1))![0-9a-f]{16}\.xml\.gz ){3}$"
tap_is "all three validate against the schema" "$(report_valid "$PX_DIR/att")" 3

out=$(report --send 2>&1)
tap_is "a second --send sends nothing" "$?|$out" \
	"0|mxmoat-report: 0 messages sent through 127.0.0.1:16751; 0 destinations left for the next run"
tap_is "... and the receiver has still three" "$(px_dumps)" 3

# --- the receiver is down: nothing marked, the next run sends ---
record late.rep.test "mailto:agg@late.rep.test" 1
out=$(report --send -o report_smtp=127.0.0.1:16752 2>&1)
tap_like "receiver down: exit 1, the destination left for the next run" "$?|$out" \
	"^1\|.*late\.rep\.test![0-9!a-f]*\.xml\.gz: not sent to agg@late\.rep\.test: smtp 127\.0\.0\.1:16752: .*\(next run\).*0 messages sent through 127\.0\.0\.1:16752; 1 destination left for the next run$"
out=$(report --send 2>&1)
tap_like "the next run sends it" "$?|$out" "^0\|.*mx\.rep\.test!late\.rep\.test!.* sent to agg@late\.rep\.test"
px_sink_idle_wait
tap_is "... four messages at the receiver" "$(px_dumps)" 4
tap_done
