#!/bin/bash
# proxy_signals.sh - SIGHUP reload (new sessions get the new configuration, sessions in flight keep
# theirs) and SIGTERM drain (no new sessions; a message in flight is still delivered with 250; the
# process then exits). smtp-sink as the backend. Ports 12540-12549.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=12540 S=12541
port_lock proxy-signals || tap_skip_all "another run of this test held its ports for 600 s"
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"
conf=$PX_DIR/mxmoat.conf
echo "limit_recipients = 1" > "$conf"
px_start $P 127.0.0.1:$S -c "$conf" || tap_bail "proxy did not start"

RCPT2=(R "S:EHLO c.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b1@example.net>\r\n" R)
# an old session opened before the reload, answering its second RCPT only after it
px_chat $P "${RCPT2[@]}" P:3 "S:RCPT TO:<b2@example.net>\r\n" R "S:QUIT\r\n" A > "$PX_DIR/old.out" &
old=$!
# wait_for FILE REGEX - bounded wait until the chat has got that far
wait_for() {
	for _ in $(seq 1 100); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
wait_for "$PX_DIR/old.out" '^<- 250 2\.1\.5'
echo "limit_recipients = 2" > "$conf"
kill -HUP "$PX_PID"
sleep 0.5
new=$(px_chat $P "${RCPT2[@]}" "S:RCPT TO:<b2@example.net>\r\n" R "S:QUIT\r\n" A)
wait $old
tap_like "after SIGHUP a new session has limit_recipients = 2" "$new" $'<- 250[^\n]*\n<- 250[^\n]*\n<- 250[^\n]*\n<- 221'
tap_like "the session opened before SIGHUP keeps limit_recipients = 1" "$(cat "$PX_DIR/old.out")" $'<- 250[^\n]*\n<- 250[^\n]*\n<- [45][0-9][0-9] [^\n]*\n<- 221'
tap_ok "reload logged" grep -q 'reload status=ok' "$PX_DIR/proxy.log"

# SIGTERM while a message is in flight
before=$(px_dumps)
px_chat $P R "S:EHLO c.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R \
	"S:Subject: drain\r\n\r\nfirst half\r\n" P:3 "S:second half\r\n.\r\n" R "S:QUIT\r\n" A > "$PX_DIR/drain.out" &
inflight=$!
wait_for "$PX_DIR/drain.out" '^<- 354'
sleep 0.3
kill -TERM "$PX_PID"
sleep 0.5
if (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null; then refused=no; else refused=yes; fi
tap_is "while draining, new connections are refused" "$refused" yes
wait $inflight
tap_like "the message in flight during SIGTERM still gets 250" "$(cat "$PX_DIR/drain.out")" $'<- 250 2\\.0\\.0 Ok'
for _ in $(seq 1 60); do kill -0 "$PX_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PX_PID" 2>/dev/null; then gone=no; else gone=yes; fi
tap_is "the proxy exits once the session is done" "$gone" yes
wait "$PX_PID" 2>/dev/null
PX_PID=
tap_is "the sink got the drained message" "$(( $(px_dumps) - before ))" 1
tap_is "no sanitizer report in the proxy log" "$(grep -c 'AddressSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
tap_done
