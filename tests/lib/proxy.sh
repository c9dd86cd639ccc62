# proxy.sh - start mxmoat-proxy and a capturing smtp-sink for the proxy e2e tests (source it; bash).
#
#   px_init                      temp dir PX_DIR (removed by px_cleanup)
#   px_sink_start PORT [OPT...]  smtp-sink -v on 127.0.0.1:PORT, one dump per message in
#                                $PX_DIR/dump/, conversation log in $PX_DIR/sink.log
#   px_sink_stop
#   px_sink_idle_wait            wait (bounded, 30 s) until every connection the sink accepted has
#                                ended (its -v log has as many disconnects as connects)
#   px_start LISTEN_PORT BACKEND [-o key=value ...]   mxmoat-proxy -f in the background (with
#       -o auth_inbound=no before the caller's options, so tests without a DNS fixture never ask
#       resolv.conf's servers; authentication tests pass auth_inbound=yes and dns_resolver); waits
#                                (bounded) until it accepts and has logged its start line; log
#                                in $PX_DIR/proxy.log; PX_BIN names another binary than the
#                                build tree's (the installed one)
#   px_stop [SIGNAL]             stop the proxy (TERM by default) and wait for it (bounded)
#   px_chat PORT STEP...         tests/lib/smtp_chat.py against 127.0.0.1:PORT
#   px_dumps                     number of messages the sink captured
#   px_wait_log REGEX [N [FILE]] wait (bounded, 30 s) until at least N (default 1) lines of FILE
#                                (default the proxy's log) match the extended REGEX
#   px_cleanup                   stop everything, remove PX_DIR (EXIT trap)
#   px_tls_key                   copy the test certificate and key (tests/data/tls/rsa.*) into
#                                PX_DIR, the key mode 600 and owned by nobody (the proxy's
#                                daemon_user)
#   PX_SMUGGLE_VECTORS           the published end-of-data ambiguities (doc/threats.md), as
#                                smtp_chat.py escapes; PX_SMUGGLE the transaction a client
#                                smuggles after one (MAIL, RCPT, DATA, a body line); PX_GROUP
#                                MAIL, RCPT and DATA as one RFC 2920 group
#   px_smuggle_message SUBJECT V a message whose body hides PX_SMUGGLE behind vector V, with
#                                its real end of data (escapes, for an S: step)
#   px_smuggle_replies NAME PORT V MSG OUT
#                                three TAP cases for vector V's message MSG: OUT (the replies
#                                when sent a command at a time) is 250, 250, 354, the refusal,
#                                221; behind a pipelined group the replies are the same; all in
#                                one write it is 250, 250, 554 5.5.0 and close. Uses the
#                                caller's HELLO steps.

. "$(dirname "${BASH_SOURCE[0]}")/lock.sh"
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

PX_DIR=
PX_PID=

PX_SINK_PID=
PX_PY=${PX_PY:-python3}

# every test that sends the smuggling variants takes them from here, one command at a time or
# pipelined: one list
PX_SMUGGLE_VECTORS=('\n.\n' '\n.\r\n' '\r.\n' '\r.\r\n' '\r\n.\n' '\r\n.\r' '\r\n.\r\r\n' \
	'\r\r\n.\r\r\n' '\r\n\x00.\r\n' '\r\n.\x00\r\n' '\n.\r' '\r.\r')
PX_SMUGGLE='MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nsmuggled body\r\n'
PX_GROUP='MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'

px_init() {
	PX_DIR=$(mktemp -d /tmp/mxmoat-px.XXXXXX) || return 1
	chmod 755 "$PX_DIR"
	mkdir -p "$PX_DIR/dump" && chmod 777 "$PX_DIR/dump"
}

px__wait_port() {	# px__wait_port PORT: bounded wait until something accepts
	local i
	for i in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

px_sink_start() {
	local port=$1; shift
	smtp-sink -v -u nobody "$@" -d "$PX_DIR/dump/%M." "127.0.0.1:$port" 100 >"$PX_DIR/sink.log" 2>&1 &
	PX_SINK_PID=$!
	px__wait_port "$port"
}

px_sink_stop() {
	[ -n "$PX_SINK_PID" ] && kill "$PX_SINK_PID" 2>/dev/null && wait "$PX_SINK_PID" 2>/dev/null
	PX_SINK_PID=
}

px_sink_idle_wait() {
	local i
	for i in $(seq 1 300); do
		[ "$(grep -c '^smtp-sink: disconnect$' "$PX_DIR/sink.log")" -ge \
			"$(grep -c '^smtp-sink: connect (' "$PX_DIR/sink.log")" ] && return 0
		sleep 0.1
	done
	return 1
}

# the proxy's start line, in log_format text and json
PX_START_LINE=' start listen=|"event":"start","listen":'

px_start() {
	local port=$1 backend=$2 started; shift 2
	# SO_REUSEPORT would let a second proxy share the port silently: refuse to start next to one
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "# px_start: 127.0.0.1:$port is already in use" >&2
		return 1
	fi
	started=$(grep -cE "$PX_START_LINE" "$PX_DIR/proxy.log" 2>/dev/null)
	"${PX_BIN:-$top_builddir/proxy/mxmoat-proxy}" -f -o "proxy_listen=127.0.0.1:$port" \
		-o "proxy_backend=$backend" -o proxy_workers=1 -o auth_inbound=no "$@" >>"$PX_DIR/proxy.log" 2>&1 &
	PX_PID=$!
	# The port accepts as soon as a worker listens; privileges drop and the main loop's
	# descriptors (signals, timers) come after that, before the start line: a test that looks
	# at the process (its user, its descriptors, its memory) needs the line.
	px__wait_port "$port" && px_wait_log "$PX_START_LINE" $((started + 1))
}

px_stop() {
	[ -n "$PX_PID" ] || return 0
	proc_stop "$PX_PID" "${1:-TERM}"
	PX_PID=
}

px_chat() {
	local port=$1; shift
	"$PX_PY" "$top_srcdir/tests/lib/smtp_chat.py" 127.0.0.1 "$port" "$@"
}

px_dumps() {
	find "$PX_DIR/dump" -type f | wc -l
}

px_wait_log() {
	local i
	for i in $(seq 1 300); do
		[ "$(grep -cE "$1" "${3:-$PX_DIR/proxy.log}")" -ge "${2:-1}" ] && return 0
		sleep 0.1
	done
	return 1
}

px_cleanup() {
	px_stop KILL
	px_sink_stop
	[ -n "$PX_DIR" ] && [ -z "$PX_KEEP" ] && rm -rf "$PX_DIR"
}

px_smuggle_message() {
	printf '%s' "Subject: $1\\r\\n\\r\\nbody$2$PX_SMUGGLE\\r\\n.\\r\\n"
}

px_smuggle_replies() {
	local name=$1 port=$2 v=$3 msg=$4 out=$5 refusal pout
	case $v in *x00*) refusal='550 5\.6\.0 NUL' ;; *) refusal='550 5\.5\.2 Bare' ;; esac
	tap_like "$name: 250, 250, 354, the refusal, 221" "$out" \
		$'\n<- 250 2\\.1\\.0 Ok\n<- 250 2\\.1\\.5 Ok\n<- 354 [^\n]*\n<- '"$refusal"$'[^\n]*\n<- 221 [^\n]*\nEOF$'
	pout=$(px_chat "$port" "${HELLO[@]}" "S:$PX_GROUP" R R R "S:${msg}QUIT\r\n" R A)
	tap_is "$name, pipelined group: the same replies as one command at a time" "$pout" "$out"
	pout=$(px_chat "$port" "${HELLO[@]}" "S:$PX_GROUP${msg}QUIT\r\n" A)
	tap_like "$name, all in one write: 250, 250, 554 5.5.0 and close" "$pout" \
		$'\n<- 250 2\\.1\\.0 Ok\n<- 250 2\\.1\\.5 Ok\n<- 554 5\\.5\\.0 Improper command pipelining after DATA\nEOF$'
}

px_tls_key() {
	cp "$top_srcdir"/tests/data/tls/rsa.pem "$top_srcdir"/tests/data/tls/rsa.key "$PX_DIR"/ &&
		chmod 600 "$PX_DIR"/rsa.key && chown nobody "$PX_DIR"/rsa.key
}
