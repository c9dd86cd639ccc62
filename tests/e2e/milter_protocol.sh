#!/bin/bash
# milter_protocol.sh - protocol-level sessions Postfix does not easily produce, driven with
# miltertest (Debian package miltertest): connect-only and negotiate-only sessions, a transaction
# aborted mid-body followed by one that completes, connections cut after MAIL, a header or in the
# body, and limit verdicts as reply codes. The milter must survive all of them, log a connect and
# a close for every session that connected, and exit cleanly with no sanitizer report.
# Port: 13560.
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"    # port_lock
top_builddir=${top_builddir:-.}
port_lock milter-protocol || tap_skip_all "another run of this test held its ports for 600 s"

command -v miltertest >/dev/null || tap_skip_all "needs miltertest"
[ -x "$top_builddir/milter/mxmoat-milter" ] || tap_bail "mxmoat-milter not built"
MILTER_DIR=$(mktemp -d /tmp/mxmoat-milter.XXXXXX)
trap 'milter_stop; rm -rf "$MILTER_DIR"' EXIT

export MILTER_SOCK=inet:13560@127.0.0.1
tap_ok "milter starts" milter_start "$MILTER_SOCK" -o limit_recipients=2 -o limit_message_size=1m \
	-o daemon_user="$(id -un nobody 2>/dev/null || echo nobody)"
for t in connect_only abort_mid_body truncated limits; do
	out=$(timeout 60 miltertest -s "$top_srcdir/tests/e2e/miltertest/$t.lua" 2>&1)
	tap_like "$t: script ran to the end" "$out" "$t: done"
	tap_ok "$t: milter still running" kill -0 "$MILTER_PID"
done
tap_ok "limits: 452 4.5.3 logged for the third recipient" milter_log_grep " tempfail stage=rcpt code=452 status=4\.5\.3 reason=limit_recipients"
tap_ok "limits: 552 5.3.4 logged for SIZE=" milter_log_grep " reject stage=mail code=552 status=5\.3\.4 reason=limit_message_size"
tap_ok "abort: the second transaction ended with a message line" milter_log_grep " message queue_id=- mta_size=-1 client=client\.example\[192\.0\.2\.20\].* from=<c@example\.org> nrcpt=1 "
sleep 0.3
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
connects=$(grep -c ' connect client=' "$MILTER_LOG")
closes=$(grep -c ' close' "$MILTER_LOG")
tap_is "every connected session was closed" "$closes" "$connects"
tap_is "sessions that sent connect info (2 + 1 + 3 + 1)" "$connects" 7
tap_ok "no ASan/LSan/UBSan report" milter_sanitizer_clean
tap_done
