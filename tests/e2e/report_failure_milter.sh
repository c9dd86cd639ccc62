#!/bin/bash
# report_failure_milter.sh - DMARC failure reports behind a real Postfix: mxmoat-milter with
# dmarc_report_store = sqlite and dmarc_failure_reports = yes, the resolver at nsd. A p=reject
# failure of own.fr.test (ruf= and fo=0) gets 550 5.7.1 and makes one report, an aligned pass
# none; the milter logs the count at exit. Python's email package reads the stored report:
# multipart/report; report-type=feedback-report with the feedback fields and the original header,
# the recipients redacted, no body.
# Ports: 16780 (smtpd), 16781 (sink), 16782 (milter), 16783 (nsd).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
[ -x /usr/bin/python3 ] || tap_skip_all "/usr/bin/python3 not installed"
milter_pf_prepare report-failure-milter

dns_start 16783 .="$top_srcdir/tests/e2e/data/root.zone" fr.test="$top_srcdir/tests/e2e/data/fr.test.zone" ||
	tap_bail "nsd did not start"
mkdir -p "$MILTER_DIR/db" && chown nobody "$MILTER_DIR/db"    # the milter's daemon_user
db=$MILTER_DIR/db/report.db
tap_ok "milter starts with dmarc_failure_reports = yes" milter_start inet:16782@127.0.0.1 \
	-o auth_inbound=yes -o dns_resolver=127.0.0.1@16783 -o authserv_id=mx.fr.test \
	-o dmarc_report_store=sqlite -o "dmarc_report_db=$db" -o dmarc_failure_reports=yes
milter_pf_start 16780 16781 "smtpd_milters = inet:127.0.0.1:16782" "milter_default_action = tempfail" \
	"milter_protocol = 6"

send() {
	swaks --server 127.0.0.1:16780 --from "bounce@$1" --to carol@example.net \
		--header "From: <alice@$1>" --header "To: <carol@example.net>" \
		--header "Subject: hello $1" --body "the secret body" 2>&1
}
tap_like "p=reject failure: 550 5.7.1 from Postfix" "$(send own.fr.test)" "<\*\* 550 5\.7\.1 "
tap_like "aligned SPF pass: queued" "$(send pass.fr.test)" "<-  250 2\.0\.0 Ok: queued as"
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_ok "the milter logs the failure report queued at exit" \
	milter_log_grep "dmarc-report store=sqlite written=3 dropped=0 lost=0 failure_reports=1"

got=$(/usr/bin/python3 - "$db" <<'PY'
import email, sqlite3, sys
for dom, ruf, rep in sqlite3.connect(sys.argv[1]).execute("SELECT policy_domain, ruf, report FROM failures"):
    m = email.message_from_string("MIME-Version: 1.0\r\n" + rep)
    parts = m.get_payload()
    fb = parts[1].get_payload()[0]
    orig = email.message_from_string(parts[2].get_payload())
    print(dom, ruf, m.get_content_type(), m.get_param("report-type"),
          ",".join(p.get_content_type() for p in parts), fb["Feedback-Type"], fb["Auth-Failure"],
          fb["Reported-Domain"], fb["Delivery-Result"], fb["Original-Mail-From"], orig["To"],
          orig["Subject"], repr(orig.get_payload().strip()), "secret body" in rep)
PY
)
tap_is "one report stored, as Python's email package reads it" "$got" \
	"own.fr.test mailto:fr@own.fr.test multipart/report feedback-report text/plain,message/feedback-report,text/rfc822-headers auth-failure dmarc own.fr.test reject <bounce@own.fr.test> <redacted@example.net> hello own.fr.test '' False"
tap_done
