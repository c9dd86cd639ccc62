#!/bin/bash
# report_milter.sh - recording behind a real Postfix: mxmoat-milter with dmarc_report_store =
# sqlite and the resolver at nsd evaluates a p=reject failure (550 5.7.1 to the client) and an
# aligned SPF pass (delivered); both evaluations are in the store with the disposition applied,
# and the milter writes what it still held when it stops (it frees the recorder on exit).
# Ports: 15593 (smtpd), 15594 (sink), 15595 (milter), 15596 (nsd).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"
milter_pf_prepare report-milter

cat >"$MILTER_DIR/rm.test.zone" <<'ZONE'
$ORIGIN rm.test.
$TTL 300
@	IN SOA ns.rm.test. hostmaster.rm.test. 1 3600 600 86400 300
@	IN NS ns
ns	IN A 127.0.0.1
pass	IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.pass	IN TXT "v=DMARC1; p=none; rua=mailto:agg@pass.rm.test"
r	IN TXT "v=spf1 -all"
_dmarc.r	IN TXT "v=DMARC1; p=reject; np=reject; aspf=s"
ZONE
dns_start 15596 .="$top_srcdir/tests/e2e/data/root.zone" rm.test="$MILTER_DIR/rm.test.zone" ||
	tap_bail "nsd did not start"
mkdir -p "$MILTER_DIR/db" && chown nobody "$MILTER_DIR/db"    # the milter's daemon_user
db=$MILTER_DIR/db/report.db
tap_ok "milter starts with dmarc_report_store = sqlite" milter_start inet:15595@127.0.0.1 \
	-o auth_inbound=yes -o dns_resolver=127.0.0.1@15596 -o authserv_id=mx.rm.test \
	-o dmarc_report_store=sqlite -o "dmarc_report_db=$db"
milter_pf_start 15593 15594 "smtpd_milters = inet:127.0.0.1:15595" "milter_default_action = tempfail" \
	"milter_protocol = 6"

send() {
	swaks --server 127.0.0.1:15593 --from "bounce@$1" --to b@example.net \
		--header "From: <alice@$1>" --header "Subject: $1" --body "$1" 2>&1
}
tap_like "p=reject failure: 550 5.7.1 from Postfix" "$(send r.rm.test)" "<\*\* 550 5\.7\.1 "
tap_like "aligned SPF pass: queued" "$(send pass.rm.test)" "<-  250 2\.0\.0 Ok: queued as"
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_ok "the milter logs the recorder's totals at exit" milter_log_grep "dmarc-report store=sqlite written=2 dropped=0 lost=0"

rows=$(/usr/bin/python3 - "$db" <<'PY'
import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute(
        "SELECT source_ip, header_from, policy_domain, dmarc, spf_aligned, disposition, override, spf_result,"
        " p, np, aspf, rua FROM records ORDER BY id"):
    print("|".join(r))
PY
)
tap_is "two evaluations recorded" "$(printf '%s\n' "$rows" | wc -l)" "2"
tap_is "the rejected one: dmarc fail, disposition reject, p=reject np=reject aspf=s" "$(printf '%s\n' "$rows" | sed -n 1p)" \
	"127.0.0.1|r.rm.test|r.rm.test|fail|fail|reject||fail|reject|reject|s|"
tap_is "the delivered one: aligned SPF pass under p=none, its rua" "$(printf '%s\n' "$rows" | sed -n 2p)" \
	"127.0.0.1|pass.rm.test|pass.rm.test|pass|pass|none||pass|none||r|mailto:agg@pass.rm.test"
tap_done
