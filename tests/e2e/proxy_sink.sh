#!/bin/bash
# proxy_sink.sh - mxmoat-proxy in front of Postfix's smtp-sink (a byte-capturing backend):
# delivery, pipelining, dot-stuffing, every published end-of-data smuggling variant followed by a
# smuggled transaction (one command at a time and pipelined), limits, backend down / slow / 4xx / 5xx / dropping mid-DATA, client
# disconnect at every state, early talker, SIGKILL mid-DATA. Ports 12500-12519.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=12500 S=12501 DOWN=12502
port_lock proxy-sink || tap_skip_all "another run of this test held its ports for 600 s"
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"
px_start $P 127.0.0.1:$S || { cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }

HELLO=(R "S:EHLO client.example\r\n" R)
TXN=("S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R)

# wait_dumps N - bounded wait until the sink has N messages
wait_dumps() {
	local i
	for i in $(seq 1 40); do [ "$(px_dumps)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}

# --- plain delivery and pipelining ---
out=$(swaks --server 127.0.0.1:$P --from a@example.org --to b@example.net --body "hello" 2>&1)
tap_like "plain delivery: 250 for the message" "$out" $'<-  250 2.0.0 Ok'
wait_dumps 1
tap_is "plain delivery: the sink got one message" "$(px_dumps)" 1
out=$(swaks --pipeline --server 127.0.0.1:$P --from a@example.org --to b@example.net,c@example.net 2>&1)
tap_like "swaks --pipeline: accepted" "$out" $'\n<-  250 2.0.0 Ok[^\n]*\n -> QUIT'
wait_dumps 2
tap_like "pipelining: both recipients reached the sink" "$(cat "$PX_DIR"/dump/* | grep -c '^X-Rcpt-Args')" '^3$'

# --- dot-stuffing: the client's stuffed lines reach the sink re-stuffed (the sink unstuffs) ---
before=$(px_dumps)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: dots\r\n\r\n..one\r\n...two\r\n.\r\n" R "S:QUIT\r\n" A)
tap_like "dot-stuffed message accepted" "$out" $'<- 250 2.0.0 Ok'
wait_dumps $((before + 1))
last=$(ls -t "$PX_DIR"/dump/* | head -1)
tap_is "dot-stuffing preserved end to end" "$(grep -a -E '^\.+(one|two)' "$last" | tr -d '\r' | tr '\n' ' ')" ".one ..two "

# --- SMTP smuggling: every published end-of-data variant, then a smuggled transaction; each sent
# one command at a time, and pipelined to a backend (the sink) that offers PIPELINING: MAIL, RCPT
# and DATA as one RFC 2920 group, then the message with the smuggled transaction and QUIT in one
# write (the same replies as one at a time); and all of it in one write, as an attacker sends it
# (the message bytes before our 354: 554 5.5.0 and close, none relayed) ---
n=0
for v in "${PX_SMUGGLE_VECTORS[@]}"; do
	n=$((n + 1))
	before=$(px_dumps)
	msg=$(px_smuggle_message "smuggle $n" "$v")
	out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:$msg" R "S:QUIT\r\n" A)
	sleep 0.1
	tap_like "smuggling $v: the message is refused (550 5.5.2 / 5.6.0)" "$out" $'<- 550 5\\.(5\\.2|6\\.0)'
	tap_is "smuggling $v: the backend got no transaction" "$(( $(px_dumps) - before ))" 0
	tap_is "smuggling $v: the backend never saw the smuggled MAIL" "$(grep -c 'smuggled@evil' "$PX_DIR/sink.log")" 0
	px_smuggle_replies "smuggling $v" $P "$v" "$msg" "$out"
	sleep 0.1
	tap_is "smuggling $v, pipelined: the backend got no transaction" "$(( $(px_dumps) - before ))" 0
	tap_is "smuggling $v, pipelined: the backend never saw the smuggled MAIL" "$(grep -c 'smuggled@evil' "$PX_DIR/sink.log")" 0
done

# --- the same in proxy_bare_newline = normalize mode, whole, with the smuggled part in later
# TCP segments (cut after the fake end, and inside it), and pipelined (MAIL, RCPT, DATA in one
# write, then the message and QUIT in one): only a received CRLF.CRLF ends the data,
# so the backend gets one message with the smuggled commands as body lines; the NUL variants
# stay refused ---
NORM=12503 main_pid=$PX_PID
px_start $NORM 127.0.0.1:$S -o proxy_bare_newline=normalize || tap_bail "normalize proxy did not start"
n=0
for v in "${PX_SMUGGLE_VECTORS[@]}"; do
	n=$((n + 1))
	first=${v:0:2}
	for cut in whole after inside pipelined; do
		case $cut in
		whole) parts=("S:$(px_smuggle_message "normalize $n" "$v")") ;;
		after) parts=("S:Subject: normalize $n\r\n\r\nbody$v" P:0.1 "S:$PX_SMUGGLE\r\n.\r\n") ;;
		inside) parts=("S:Subject: normalize $n\r\n\r\nbody$first" P:0.1 "S:${v:${#first}}$PX_SMUGGLE\r\n.\r\n") ;;
		esac
		before=$(px_dumps)
		if [ $cut = pipelined ]; then	# the group, then the message and QUIT in one write
			out=$(px_chat $NORM "${HELLO[@]}" "S:$PX_GROUP" R R R "S:$(px_smuggle_message "normalize $n" "$v")QUIT\r\n" R A)
		else
			out=$(px_chat $NORM "${HELLO[@]}" "${TXN[@]}" "${parts[@]}" R "S:QUIT\r\n" A)
		fi
		case $v in
		*x00*)
			tap_like "normalize $v ($cut): NUL refused, 550 5.6.0" "$out" $'<- 550 5\\.6\\.0'
			sleep 0.1
			tap_is "normalize $v ($cut): the backend got no transaction" "$(( $(px_dumps) - before ))" 0
			;;
		*)
			tap_like "normalize $v ($cut): one message, 250" "$out" $'<- 354[^\n]*\n<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
			wait_dumps $((before + 1))
			tap_is "normalize $v ($cut): the backend got exactly one message" "$(( $(px_dumps) - before ))" 1
			last=$(ls -t "$PX_DIR"/dump/* | head -1)
			tap_is "normalize $v ($cut): the smuggled MAIL, RCPT and DATA are body lines" \
				"$(tr -d '\r' < "$last" | grep -c -x -E 'MAIL FROM:<smuggled@evil\.example>|RCPT TO:<b@example\.net>|DATA|smuggled body')" 4
			;;
		esac
		tap_is "normalize $v ($cut): the backend never saw the smuggled MAIL as a command" \
			"$(grep -c 'smuggled@evil' "$PX_DIR/sink.log")" 0
	done
done
# a "." line made by normalisation is a body line: the backend gets it stuffed ("..", which the
# sink unstuffs to ".") and the message goes on
before=$(px_dumps)
out=$(px_chat $NORM "${HELLO[@]}" "${TXN[@]}" "S:Subject: dot\r\n\r\nbody\n.\nafter\r\n.\r\n" R "S:QUIT\r\n" A)
wait_dumps $((before + 1))
last=$(ls -t "$PX_DIR"/dump/* | head -1)
tap_is "normalize: \\n.\\n reaches the backend as a body line '.'" \
	"$(tr -d '\r' < "$last" | sed -n '/^body$/,/^after$/p' | tr '\n' ' ')" "body . after "
px_stop
PX_PID=$main_pid

# bare LF / CR in a command line
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\r\n" R "S:QUIT\r\n" A)
tap_like "bare LF in a command: 550 5.5.2" "$out" $'<- 550 5\\.5\\.2'
tap_is "bare LF in a command: nothing reached the backend" "$(grep -c 'MAIL FROM:<a@example.org>.RCPT' "$PX_DIR/sink.log")" 0

# --- limits ---
long=$(printf 'x%.0s' $(seq 1 2100))
out=$(px_chat $P "${HELLO[@]}" "S:NOOP $long\r\n" R "S:NOOP\r\n" R "S:QUIT\r\n" A)
tap_like "line over limit_line_length: 500 5.5.2, session goes on" "$out" $'<- 500 5\\.5\\.2 Line too long\n<- 250 2\\.0\\.0 Ok'
# limit_line_length (2048, CRLF included) is for command lines: at the limit answered, one over 500
at=$(head -c 2041 /dev/zero | tr '\0' 'x')
out=$(px_chat $P "${HELLO[@]}" "S:NOOP $at\r\n" R "S:NOOP ${at}x\r\n" R "S:QUIT\r\n" A)
tap_like "command line of 2048 octets with CRLF: answered; 2049: 500 5.5.2" "$out" \
	$'<- 250 2\\.0\\.0 Ok\n<- 500 5\\.5\\.2 Line too long\n<- 221'
# DATA lines are relayed byte for byte whatever their length: at the limit, one over, and
# 200,000 octets (across every read and staging buffer), none cut, none refused
before=$(px_dumps)
l2046=$(head -c 2046 /dev/zero | tr '\0' 'a')
l2047=$(head -c 2047 /dev/zero | tr '\0' 'b')
l100k=$(head -c 100000 /dev/zero | tr '\0' 'c')    # two writes (an argument is at most 128 KB)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: long lines\r\n\r\n$l2046\r\n$l2047\r\n$l100k" \
	"S:$l100k\r\nend\r\n.\r\n" R "S:QUIT\r\n" A)
tap_like "DATA lines of 2048, 2049 and 200,002 octets: 250" "$out" $'<- 354[^\n]*\n<- 250 2\\.0\\.0 Ok'
wait_dumps $((before + 1))
last=$(ls -t "$PX_DIR"/dump/* | head -1)
# (the sink's dump ends lines with LF): length, first octet, and whether the line is that octet only
tap_is "DATA long lines: relayed unchanged, in order" \
	"$(sed -n '/^Subject: long lines/,/^end$/p' "$last" | tr -d '\r' |
		awk '{ c = substr($0, 1, 1); o = $0; gsub(c, "", o); printf "%d%s%s ", length($0), c, o == "" ? "" : "+" }')" \
	"19S+ 0 2046a 2047b 200000c 3e+ "
lp=$(printf 'a%.0s' $(seq 1 260))
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<$lp@example.org>\r\n" R "S:QUIT\r\n" A)
tap_like "path over 256 octets: 501" "$out" $'<- 501 5\\.5\\.4 Path too long'
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org> SIZE=999999999999\r\n" R "S:MAIL FROM:<a@example.org> FOO=bar\r\n" R "S:MAIL FROM:<a@example.org>  SIZE=1\r\n" R "S:QUIT\r\n" A)
tap_like "SIZE over limit_message_size: 552 5.3.4" "$out" $'<- 552 5\\.3\\.4'
tap_like "unknown MAIL parameter: 555 5.5.4" "$out" $'<- 555 5\\.5\\.4[^\n]*\n<- 250'
out=$(px_chat $P "${HELLO[@]}" "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:BDAT 10 LAST\r\n" R "S:QUIT\r\n" A)
tap_like "sequence: RCPT before MAIL 503, DATA 503, BDAT 502" "$out" $'<- 503 5\\.5\\.1[^\n]*\n<- 503 5\\.5\\.1[^\n]*\n<- 502 5\\.5\\.2'
# junk commands (default limit_junk_commands=100): NOOP, RSET, VRFY and HELP all count, a
# delivered message in between resets nothing, and the command that reaches the limit gets 421
junk=""
for i in $(seq 1 75); do junk="${junk}NOOP\r\nRSET\r\nVRFY postmaster\r\nHELP\r\n"; done
before=$(px_dumps)
out=$(px_chat $P "${HELLO[@]}" "S:NOOP\r\nRSET\r\nVRFY x\r\nHELP\r\nFOO\r\n" R R R R R "${TXN[@]}" \
	"S:Subject: junk\r\n\r\nbody\r\n.\r\n" R "S:$junk" A)
tap_like "junk commands: the message between them is delivered" "$out" $'<- 354[^\n]*\n<- 250 2\\.0\\.0 Ok'
tap_is "junk commands: 5 before the message (one unknown), then of 300 pipelined 94 are answered" \
	"$(sed -n '/^<- 354/,$p' <<<"$out" | sed 1,2d | grep -c -E '^<- (250 2\.0\.0 Ok|252 |214 )')" 94
tap_like "junk commands: 421 4.7.0 and close at the limit" "$out" $'\n<- 421 4\\.7\\.0 Too many useless commands[^\n]*\nEOF$'
wait_dumps $((before + 1))
tap_is "junk commands: the backend got the one message" "$(( $(px_dumps) - before ))" 1

px_stop
px_start $P 127.0.0.1:$S -o limit_recipients=2 -o limit_message_size=2k -o limit_errors=3 || tap_diag "restart failed"
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b1@example.net>\r\n" R "S:RCPT TO:<b2@example.net>\r\n" R "S:RCPT TO:<b3@example.net>\r\n" R "S:QUIT\r\n" A)
tap_like "limit_recipients=2: the third RCPT is refused" "$out" $'<- 250[^\n]*\n<- 250[^\n]*\n<- 4[0-9][0-9] |<- 5[0-9][0-9] '
before=$(px_dumps)
big=$(printf 'y%.0s' $(seq 1 200))
body=""
for i in $(seq 1 20); do body="$body$big\r\n"; done
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: big\r\n\r\n$body.\r\n" R "S:QUIT\r\n" A)
tap_like "limit_message_size=2k: the message is refused with 552" "$out" $'<- 552 '
sleep 0.2
tap_is "limit_message_size: nothing delivered" "$(( $(px_dumps) - before ))" 0
out=$(px_chat $P "${HELLO[@]}" "S:FOO\r\n" R "S:BAR\r\n" R "S:BAZ\r\n" R R "S:NOOP\r\n" A)
tap_like "limit_errors=3: 421 and close" "$out" $'<- 421 [^\n]*\n(<- [^\n]*\n)*EOF'

# --- backend down, 4xx/5xx on RCPT, slow, drop mid-DATA ---
px_stop
px_start $P 127.0.0.1:$DOWN
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:QUIT\r\n" A)
tap_like "backend down: MAIL gets 451 4.4.1" "$out" $'<- 451 4\\.4\\.1'
px_stop
px_sink_stop
px_sink_start $S -f RCPT
px_start $P 127.0.0.1:$S
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:QUIT\r\n" A)
tap_like "backend 5xx on RCPT reaches the client verbatim" "$out" $'<- 250[^\n]*\n<- 5[0-9][0-9] [^\n]*\n<- 554 5\\.5\\.1 No valid recipients'
px_sink_stop
px_sink_start $S -r RCPT
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:QUIT\r\n" A)
tap_like "backend 4xx on RCPT reaches the client verbatim" "$out" $'<- 250[^\n]*\n<- 4[0-9][0-9] '
px_sink_stop
px_sink_start $S -q .
before=$(px_dumps)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: x\r\n\r\nbody\r\n.\r\n" R "S:QUIT\r\n" A)
tap_like "backend drops at end of data: 451, never 250" "$out" $'<- 451 4\\.4\\.2'
tap_is "backend drops at end of data: no 250 after DATA" "$(grep -c '^<- 250 2.0.0' <<<"$out")" 0
px_stop
px_sink_stop
px_sink_start $S -w 5
px_start $P 127.0.0.1:$S -o proxy_timeout_backend=1s
out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:QUIT\r\n" A)
tap_like "backend slow (DATA reply after 5 s, timeout 1 s): 451 4.4.2" "$out" $'<- 451 4\\.4\\.2'
px_stop
px_sink_stop
px_sink_start $S

# --- client disconnect at every state; the proxy survives and nothing half-done is delivered ---
px_start $P 127.0.0.1:$S -o proxy_greet_pause=0
before=$(px_dumps)
px_chat $P X >/dev/null
px_chat $P R X >/dev/null
px_chat $P "${HELLO[@]}" X >/dev/null
px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R X >/dev/null
px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R X >/dev/null
px_chat $P "${HELLO[@]}" "${TXN[@]}" X >/dev/null
px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: half\r\n\r\nhalf a body" X >/dev/null
px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: half\r\n\r\nbody\r\n." X >/dev/null
px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: half\r\n\r\nbody\r\n.\r" X >/dev/null
sleep 0.3
tap_is "client disconnects at every state: nothing delivered" "$(( $(px_dumps) - before ))" 0
out=$(swaks --server 127.0.0.1:$P --from a@example.org --to b@example.net 2>&1)
tap_like "after the disconnects the proxy still relays" "$out" $'<-  250 2.0.0 Ok'
tap_ok "the proxy is still running" kill -0 "$PX_PID"

# --- early talker ---
px_stop
px_start $P 127.0.0.1:$S -o proxy_greet_pause=1s
out=$(px_chat $P "S:EHLO early.example\r\n" A)
tap_like "early talker: 554 5.5.1 and close" "$out" $'<- 554 5\\.5\\.1[^\n]*\nEOF'
out=$(px_chat $P R "S:EHLO patient.example\r\n" R "S:QUIT\r\n" A)
tap_like "a client that waits for the banner is served" "$out" $'<- 220 [^\n]*\n<- 250-'

# --- SIGKILL mid-DATA: the client gets a disconnect, never 250 ---
px_stop
px_start $P 127.0.0.1:$S
before=$(px_dumps)
px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: killed\r\n\r\nstart\r\n" P:2 "S:more\r\n.\r\n" R A > "$PX_DIR/kill.out" 2>&1 &
chat=$!
for _ in $(seq 1 100); do grep -q '^<- 354' "$PX_DIR/kill.out" && break; sleep 0.05; done
kill -KILL "$PX_PID"
wait $chat
out=$(cat "$PX_DIR/kill.out")
tap_like "SIGKILL mid-DATA: the client had reached DATA" "$out" '<- 354'
tap_like "SIGKILL mid-DATA: the client sees the connection end" "$out" '(EOF|SENDFAIL)'
tap_is "SIGKILL mid-DATA: no 250 for the message" "$(grep -c '^<- 250 2.0.0' <<<"$out")" 0
sleep 0.2
tap_is "SIGKILL mid-DATA: nothing delivered" "$(( $(px_dumps) - before ))" 0
PX_PID=

grep -q 'ERROR: AddressSanitizer\|runtime error' "$PX_DIR/proxy.log" && tap_diag "$(cat "$PX_DIR/proxy.log")"
tap_is "no sanitizer report in the proxy log" "$(grep -c 'AddressSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
tap_done
