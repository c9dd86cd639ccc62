#!/bin/bash
# scan_large.sh - a 40 MB message through mxmoat-proxy with clamd and rspamd both on: the proxy
# holds it in its spool file (proxy_hold_memory = 1m) and hands it to both scanners while it
# arrives, so the proxy's memory does not grow with the message: the peak RSS (VmHWM) after it
# is measured against the RSS before it. The message is relayed whole; an infected 40 MB message
# (the pattern at its very end) is refused with 554 5.7.1.
# Ports: 18780 (proxy), 18781 (sink), 18782 (rspamd).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/clamd.sh"
. "${top_srcdir:-.}/tests/lib/rspamd.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"
command -v rspamd >/dev/null || tap_skip_all "rspamd not installed"
[ -x /usr/sbin/clamd ] || tap_skip_all "clamd (clamav-daemon) not installed"
port_lock scan-large || tap_skip_all "another run of this test held its ports for 600 s"
cleanup() { px_cleanup; clamd_stop; rspamd_stop; }
trap cleanup EXIT
px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"
clamd_start || tap_bail "clamd did not start"
rspamd_start 18782 || tap_bail "rspamd did not start"
px_sink_start 18781 || tap_bail "smtp-sink did not start"
px_start 18780 127.0.0.1:18781 -o "scan_clamd=unix:$CLAMD_SOCK" -o scan_rspamd=127.0.0.1:18782 \
	-o scan_timeout=120s -o proxy_hold_memory=1m -o limit_message_size=64m \
	-o "proxy_spool_dir=$PX_DIR/spool" || tap_bail "proxy did not start"

# send SIZE_MB [LAST_LINE] - one message of SIZE_MB MB of text lines through the proxy; prints the
# final reply
send() {
	/usr/bin/python3 - "$1" "${2:-}" <<'PY'
import smtplib, sys
mb, last = int(sys.argv[1]), sys.argv[2]
line = b"".join(b"%c" % (0x41 + (i * 7) % 26) for i in range(76)) + b"\r\n"
body = line * (mb * 1024 * 1024 // len(line))
if last:
    body += last.encode() + b"\r\n"
msg = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: large\r\n\r\n" + body
s = smtplib.SMTP("127.0.0.1", 18780, timeout=300)
s.ehlo("client.example.org")
s.mail("alice@example.org")
s.rcpt("bob@example.net")
try:
    code, text = s.data(msg)
except smtplib.SMTPDataError as e:
    code, text = e.smtp_code, e.smtp_error
print(code, text.decode())
s.quit()
PY
}

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PX_PID/status"; }

out=$(send 1)
tap_like "a 1 MB message first (warm-up): relayed" "$out" "^250 "
before=$(kb VmRSS)
out=$(send 40)
tap_like "40 MB, clean: relayed" "$out" "^250 "
peak=$(kb VmHWM)
growth=$(((peak - before) / 1024))
tap_diag "proxy RSS before ${before} kB, peak after ${peak} kB: ${growth} MB growth for a 40 MB message"
tap_ok "40 MB: the proxy's peak RSS grew by less than 16 MB (${growth} MB)" test "$growth" -lt 16
tap_like "40 MB: held in the spool file" "$(cat "$PX_DIR/proxy.log")" ' hold size=4[0-9]{7} spooled=yes'
tap_like "40 MB: both scanners answered" "$(cat "$PX_DIR/proxy.log")" \
	' scan clamd=clean rspamd=no_action .*verdict=continue'
dump=$(ls -1S "$PX_DIR"/dump/* | head -n 1)
tap_ok "40 MB: the sink has all of it (all 537,731 lines, CR dropped by the dump)" \
	test "$(grep -c "^AHOVCJ" "$dump")" -eq 537731

out=$(send 40 "the end: MXMOAT-VIRUS-TEST-PATTERN")
tap_like "40 MB, infected at its end: 554 5.7.1" "$out" "^554 5\.7\.1 Virus found: Mxmoat\.Test\.Pattern\.UNOFFICIAL"
px_stop
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
