#!/bin/bash
# milter_drain.sh - SIGTERM with milter_engine = native, behind a real Postfix (smtp_chat.py as the
# client): the milter accepts no new connection; a message in progress at the signal is still
# answered and gets 250 at Postfix, and is relayed; an SMTP session with no message in progress
# loses its milter connection at once, so Postfix applies milter_default_action (tempfail: 451
# 4.7.1) to its next MAIL; the milter exits 0 once the message is answered. A message still in
# progress after drain_timeout, or at a second SIGTERM, is cut: the milter exits and Postfix
# tempfails it.
# Ports: 13640 (smtpd), 13641 (sink), 13642 (milter inet).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
top_builddir=${top_builddir:-.}
export MXMOAT_MILTER_ENGINE=native # the drain is the native engine's (mxmoat-milter(8) SIGNALS)
milter_pf_prepare milter-drain python3

chat() { python3 "$top_srcdir/tests/lib/smtp_chat.py" 127.0.0.1 13640 "$@"; }
# wait_for FILE REGEX - bounded wait until FILE has a line matching REGEX
wait_for() {
	for _ in $(seq 1 400); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
# drains_logged N - 0 once the milter's log (appended to by every start) has N drain lines
drains_logged() {
	for _ in $(seq 1 400); do
		[ "$(grep -c ' drain signal=15 timeout_ms=30000$' "$MILTER_LOG")" -ge "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
# refused - 0 once nothing accepts on the milter's port any more (bounded)
refused() {
	for _ in $(seq 1 200); do
		(exec 3<>/dev/tcp/127.0.0.1/13642) 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}
# gone [SECONDS] - 0 once the milter process has exited (bounded: 30 s); its exit status in
# MILTER_RC
gone() {
	for _ in $(seq 1 $((${1:-30} * 20))); do
		if ! kill -0 "$MILTER_PID" 2>/dev/null; then
			wait "$MILTER_PID" 2>/dev/null
			MILTER_RC=$?
			MILTER_PID=
			return 0
		fi
		sleep 0.05
	done
	return 1
}
# message GO OUT - a message whose body's second half waits for the file GO, replies into OUT
message() {
	chat R "S:EHLO c.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R \
		"S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:Subject: drain\r\n\r\nfirst half\r\n" \
		"W:$1" "S:second half\r\n.\r\n" R "S:QUIT\r\n" A > "$2"
}

tap_ok "milter starts" milter_start inet:13642@127.0.0.1
mapfile -t snippet < <(milter_pf_snippet 13642)
milter_pf_start 13640 13641 "${snippet[@]}"

# 1. a message in progress and an idle SMTP session when SIGTERM arrives
message "$MILTER_DIR/go" "$MILTER_DIR/inflight.out" &
inflight=$!
chat R "S:EHLO idle.example\r\n" R "W:$MILTER_DIR/go-idle" "S:MAIL FROM:<c@example.org>\r\n" R \
	"S:QUIT\r\n" A > "$MILTER_DIR/idle.out" &
idle=$!
tap_ok "the message is in DATA" wait_for "$MILTER_DIR/inflight.out" '^<- 354'
tap_ok "the idle session is past EHLO" wait_for "$MILTER_DIR/idle.out" '^<- 250 '
kill -TERM "$MILTER_PID"
tap_ok "SIGTERM: drain logged with drain_timeout" drains_logged 1
tap_ok "while draining, new connections are refused" refused
touch "$MILTER_DIR/go-idle"
wait $idle
tap_like "the idle session's next MAIL gets milter_default_action (451 4.7.1)" \
	"$(cat "$MILTER_DIR/idle.out")" $'<- 451 4\\.7\\.1 '
if kill -0 "$MILTER_PID" 2>/dev/null; then running=yes; else running=no; fi
tap_is "the milter still runs while a message is in progress" "$running" yes
touch "$MILTER_DIR/go"
wait $inflight
tap_like "the message in progress at SIGTERM gets 250" "$(cat "$MILTER_DIR/inflight.out")" \
	$'<- 250 2\\.0\\.0 Ok: queued as [0-9A-F]+'
tap_ok "it is relayed" pf_wait_delivered 1 20
tap_like "the milter saw its end of message" "$(cat "$MILTER_LOG")" ' message queue_id=[0-9A-F]+ .*verdict=continue'
tap_ok "the milter exits once the message is answered" gone
tap_is "exit status 0" "$MILTER_RC" 0
tap_ok "stop logged" milter_log_grep " stop clean"
tap_is "no connection was cut" "$(grep -c 'connections_cut' "$MILTER_LOG")" 0

# 2. past drain_timeout the message still in progress is cut
tap_ok "milter starts with drain_timeout = 1s" milter_start inet:13642@127.0.0.1 -o drain_timeout=1s
message "$MILTER_DIR/go2" "$MILTER_DIR/cut.out" &
inflight=$!
tap_ok "the message is in DATA" wait_for "$MILTER_DIR/cut.out" '^<- 354'
kill -TERM "$MILTER_PID"
tap_ok "the milter exits after drain_timeout" gone
tap_is "exit status 0" "$MILTER_RC" 0
tap_ok "the cut is logged" milter_log_grep " drain timeout connections_cut=1$"
touch "$MILTER_DIR/go2"
wait $inflight
tap_like "Postfix tempfails the cut message (milter_default_action)" "$(cat "$MILTER_DIR/cut.out")" \
	$'<- 451 4\\.7\\.1 '

# 3. a second SIGTERM cuts the message still in progress at once
tap_ok "milter starts" milter_start inet:13642@127.0.0.1
message "$MILTER_DIR/go3" "$MILTER_DIR/second.out" &
inflight=$!
tap_ok "the message is in DATA" wait_for "$MILTER_DIR/second.out" '^<- 354'
kill -TERM "$MILTER_PID"
tap_ok "first SIGTERM: draining" drains_logged 2
if kill -0 "$MILTER_PID" 2>/dev/null; then running=yes; else running=no; fi
tap_is "the milter still runs while the message is in progress" "$running" yes
kill -TERM "$MILTER_PID"
tap_ok "second SIGTERM: the milter exits within 10 s (drain_timeout is 30 s)" gone 10
tap_is "exit status 0" "$MILTER_RC" 0
tap_ok "the cut is logged" milter_log_grep " drain signal connections_cut=1$"
touch "$MILTER_DIR/go3"
wait $inflight
tap_like "Postfix tempfails the cut message" "$(cat "$MILTER_DIR/second.out")" $'<- 451 4\\.7\\.1 '
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_done
