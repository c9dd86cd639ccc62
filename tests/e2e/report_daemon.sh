#!/bin/bash
# report_daemon.sh - recording through a real daemon: mxmoat-proxy with dmarc_report_store =
# sqlite and the resolver at nsd (tests/lib/dns.sh) relays three messages to smtp-sink (an aligned
# SPF pass, a p=quarantine failure, a failure under sp=none) and records each evaluation: client
# address, From and envelope domains, policy domain, DMARC result, disposition, SPF result and
# the published policy with rua, ruf and fo; no failure report (dmarc_failure_reports is off).
# The last one is still in the writer's batch window when SIGTERM comes, and is written before
# the proxy exits. mxmoat-report then turns the day into
# two aggregate reports (one per policy domain) that validate against the schema.
# Ports: 15590 (nsd), 15591 (proxy), 15592 (sink).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/report.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"
port_lock report-daemon || tap_skip_all "another run of this test held its ports for 600 s"
trap 'px_cleanup; dns_stop' EXIT
px_init || tap_bail "no temp dir"

dns_start 15590 .="$top_srcdir/tests/e2e/data/root.zone" rep.test="$top_srcdir/tests/e2e/data/rep.test.zone" ||
	tap_bail "nsd did not start"

mkdir -p "$PX_DIR/spool" "$PX_DIR/db" && chown nobody "$PX_DIR/spool" "$PX_DIR/db"   # daemon_user
db=$PX_DIR/db/report.db
px_sink_start 15592 || tap_bail "smtp-sink did not start"
px_start 15591 127.0.0.1:15592 -o auth_inbound=yes -o dns_resolver=127.0.0.1@15590 \
	-o authserv_id=mx.rep.test -o "proxy_spool_dir=$PX_DIR/spool" \
	-o dmarc_report_store=sqlite -o "dmarc_report_db=$db" || tap_bail "the proxy did not start"

# send FROM-DOMAIN SUBJECT - one message, header From and MAIL FROM in the domain
send() {
	swaks --server 127.0.0.1:15591 --from "bounce@$1" --to b@example.net \
		--header "From: <alice@$1>" --header "Subject: $2" --body "$2" 2>&1
}
tap_like "aligned SPF pass: relayed" "$(send pass.rep.test pass)" "<-  250 2\.0\.0 Ok"
tap_like "p=quarantine failure: relayed (the proxy has no hold queue)" "$(send q.rep.test quarantine)" "<-  250 2\.0\.0 Ok"

# rows - the recorded evaluations, one line each, oldest first
rows() {
	/usr/bin/python3 - "$db" <<'EOF'
import sqlite3, sys
try:
    # read-only: a plain connect would create the file, as root, before the proxy's writer does,
    # and the writer (daemon_user) could then never write it
    con = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
    for r in con.execute("SELECT source_ip, header_from, envelope_from, policy_domain, dmarc, dkim_aligned,"
                         " spf_aligned, disposition, override, spf_result, p, sp, adkim, rua, ruf, fo"
                         " FROM records ORDER BY id"):
        print("|".join(r))
except sqlite3.Error:
    pass
EOF
}
# The writer batches for at most 200 ms: wait (bounded) for the two rows.
for i in $(seq 1 100); do [ "$(rows | wc -l)" -ge 2 ] && break; sleep 0.1; done
tap_is "two evaluations recorded while the proxy runs" "$(rows | wc -l)" "2"

# The third is still in the writer's batch window when SIGTERM comes: the exit writes it.
tap_like "a p=none subdomain (sp=none) failure: relayed" "$(send sub.q.rep.test sub)" "<-  250 2\.0\.0 Ok"
px_stop
tap_is "stopped at once: the third evaluation is written before the proxy exits" "$(rows | wc -l)" "3"
tap_is "dmarc_failure_reports is off by default: no failure report for q.rep.test's ruf= and fo=1" \
	"$(/usr/bin/python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM failures").fetchone()[0])' "$db")" 0
tap_is "the pass: 127.0.0.1, aligned SPF, disposition none, p=reject, its rua" "$(rows | sed -n 1p)" \
	"127.0.0.1|pass.rep.test|pass.rep.test|pass.rep.test|pass|fail|pass|none||pass|reject||r|mailto:agg@pass.rep.test||"
tap_is "the quarantine: dmarc fail, SPF fail, quarantined, and the record's rua, ruf and fo" "$(rows | sed -n 2p)" \
	"127.0.0.1|q.rep.test|q.rep.test|q.rep.test|fail|fail|fail|quarantine||fail|quarantine|none|s|mailto:agg@q.rep.test|mailto:f@q.rep.test|1"
tap_is "the subdomain: policy domain q.rep.test, sp=none, delivered" "$(rows | sed -n 3p)" \
	"127.0.0.1|sub.q.rep.test|sub.q.rep.test|q.rep.test|fail|fail|fail|none||none|quarantine|none|s|mailto:agg@q.rep.test|mailto:f@q.rep.test|1"

tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0

# Tomorrow, today is a complete day: two reports, one per policy domain.
mkdir "$PX_DIR/out"
"$top_builddir/tools/mxmoat-report" -o authserv_id=mx.rep.test --db "$db" --now $(( $(date +%s) + 86400 )) \
	--write "$PX_DIR/out" >/dev/null 2>&1
tap_is "mxmoat-report writes one report per policy domain" \
	"$(report_names "$PX_DIR/out")" \
	"mx.rep.test!pass.rep.test mx.rep.test!q.rep.test "
tap_is "both validate against the schema" "$(report_valid "$PX_DIR/out")" 2
tap_is "q.rep.test's report: two rows, quarantine and none, both from 127.0.0.1" \
	"$(gzip -dc "$PX_DIR"/out/*q.rep.test* | grep -oE '<(source_ip|disposition|header_from)>[^<]*' | tr '\n' ' ')" \
	"<source_ip>127.0.0.1 <disposition>none <header_from>sub.q.rep.test <source_ip>127.0.0.1 <disposition>quarantine <header_from>q.rep.test "
tap_done
