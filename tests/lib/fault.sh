# fault.sh - the fault suite's rig (tests/fault/*.sh; source it after tap.sh and proxy.sh; bash).
# A proxy in front of a capturing smtp-sink, mixed load from tests/lib/loadgen.py (plain,
# STARTTLS, pipelined and holding-mode sessions, every message with an id in a ledger) while the
# test does its fault, then the counting: every message whose client got 250 is at the backend,
# none is there twice, the proxy still serves, and it left no descriptor and no leak behind.
#
#   fault_require LOCK      skip unless root, smtp-sink, a built proxy and tools; hold the lock
#   fault_init              PX_DIR with the test certificate, an ed25519 signing key for
#                           example.org and the proxy's configuration FAULT_CONF: STARTTLS,
#                           holding mode for 127.0.0.2 (internal_networks, the signing table,
#                           proxy_spool_dir), room for a thousand sessions from one address
#   fault_proxy PORT BACKEND [-o k=v ...]  px_start with FAULT_CONF; bails out if it does not
#   fault_load NAME [ARGS]  loadgen send in the background (ledger $PX_DIR/NAME.ledger, output
#                           $PX_DIR/NAME.out); sets LOAD_PID
#   fault_load_wait         wait for it (it bounds itself: --seconds, default 120); its summary
#                           line is in LOAD_SUMMARY
#   fault_ledger_wait NAME N  wait (bounded, 120 s) until N messages of load NAME were tried
#   fault_verify NAME...    once the sink is idle: loadgen verify over those ledgers and the
#                           sink's dumps (FAULT_DUMPS: another folder, e.g. a Postfix fixture's
#                           PF_SINKDIR); sets V_tried, V_ok, V_lost, V_dups, ... (see loadgen.py)
#   fault_outcomes NAME     from load NAME's ledger: O_ok (250), O_4xx and O_5xx (another reply, to
#                           any command), O_nodot, O_conn, O_refused (see loadgen.py)
#   fault_mixed LABEL       TAP case: the proxy's log shows held-and-signed messages and
#                           STARTTLS sessions (the mix really was mixed)
#   fault_counted LABEL     TAP cases: at least one message got 250; none of them lost; no
#                           duplicate; nothing at the backend the client never finished (conn)
#                           or was refused (a non-250 reply to the dot), no stranger
#   fault_serving LABEL     TAP case: a fresh session delivers one message (250, at the sink)
#   fault_fds_settle N [S]  wait (bounded, S seconds, default 30) until the proxy holds at most N descriptors;
#                           prints the count it ended at, and lists them on stderr if above N
#   fault_stop_clean LABEL  TAP case: SIGTERM, the proxy exits 0 in time and its log has no
#                           sanitizer report (LeakSanitizer runs at exit: nothing leaked)

FAULT_PY=${FAULT_PY:-python3}
FAULT_CONF=

fault_require() {
	[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
	[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"
	command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
	[ -x "$top_builddir/proxy/mxmoat-proxy" ] || tap_skip_all "mxmoat-proxy not built"
	port_lock "fault-$1" || tap_skip_all "another run of this test held its ports for 600 s"
}

fault_init() {
	px_init || tap_bail "no temp dir"
	px_tls_key || tap_bail "no test certificate"
	mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool" || tap_bail "no spool dir"
	"$top_builddir/tools/mxmoat-keygen" -a ed25519 -o "$PX_DIR/ed.key" s1 example.org |
		tail -n 1 >"$PX_DIR/table" && chown nobody "$PX_DIR/ed.key" && chmod 644 "$PX_DIR/table" ||
		tap_bail "mxmoat-keygen failed"
	FAULT_CONF=$PX_DIR/mxmoat.conf
	cat >"$FAULT_CONF" <<-EOF
	tls_cert_file = $PX_DIR/rsa.pem
	tls_key_file = $PX_DIR/rsa.key
	internal_networks = 127.0.0.2/32
	dkim_signing_table = $PX_DIR/table
	proxy_spool_dir = $PX_DIR/spool
	proxy_hold_memory = 4k
	limit_sessions_per_ip = 5000
	limit_messages_per_session = 1000
	log_verbose = no
	EOF
	chmod 644 "$FAULT_CONF"
}

fault_proxy() {
	local port=$1 backend=$2
	shift 2
	px_start "$port" "$backend" -c "$FAULT_CONF" "$@" ||
		{ sed 's/^/# /' "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
}

fault_load() {
	local name=$1
	shift
	LOAD_NAME=$name
	"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" send --run "$name" --ledger "$PX_DIR/$name.ledger" \
		"$@" >"$PX_DIR/$name.out" 2>&1 &
	LOAD_PID=$!
}

fault_load_wait() {
	wait "$LOAD_PID"
	LOAD_SUMMARY=$(tail -n 1 "$PX_DIR/$LOAD_NAME.out")
	printf '# load %s: %s\n' "$LOAD_NAME" "$LOAD_SUMMARY"
}

fault_ledger_wait() {
	local i
	for i in $(seq 1 1200); do
		[ "$(cat "$PX_DIR/$1.ledger" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
		kill -0 "$LOAD_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

fault_verify() {
	local args=() n line
	for n in "$@"; do args+=(--ledger "$PX_DIR/$n.ledger"); done
	if [ -n "$PX_SINK_PID" ]; then
		px_sink_idle_wait || tap_diag "the sink still had sessions after 30 s"
	fi
	while IFS='=' read -r k v; do
		printf -v "V_$k" '%s' "$v"
	done < <("$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" verify "${args[@]}" --dumps "${FAULT_DUMPS:-$PX_DIR/dump}" \
		2>"$PX_DIR/verify.err")
	for line in tried ok at_backend lost dups nodot_delivered nodot_missing not_ok_delivered \
		conn_delivered strangers; do
		n=V_$line
		printf '# %s=%s\n' "$line" "${!n:-?}"
	done
	head -n 5 "$PX_DIR/verify.err" | sed 's/^/#   /'
}

fault_outcomes() {
	eval "$(awk '$2 == "250" { ok++ } $2 == "reply" { c = $3; sub(/.*-/, "", c); if (c ~ /^4/) t4++; else t5++ }
		$2 == "nodot" { nd++ } $2 == "conn" { cn++ } $2 == "refused" { rf++ }
		END { printf "O_ok=%d O_4xx=%d O_5xx=%d O_nodot=%d O_conn=%d O_refused=%d\n", ok, t4, t5, nd, cn, rf }' \
		"$PX_DIR/$1.ledger")"
	printf '# outcomes %s: 250=%d 4xx=%d 5xx=%d nodot=%d conn=%d refused=%d\n' "$1" "$O_ok" "$O_4xx" "$O_5xx" \
		"$O_nodot" "$O_conn" "$O_refused"
}

fault_mixed() {
	local held tls
	held=$(grep -c 'hold size=[0-9]* spooled=[a-z]* edits=applied' "$PX_DIR/proxy.log")
	tls=$(grep -c ' tls protocol=' "$PX_DIR/proxy.log")
	tap_ok "$1: the mix was mixed ($held held and signed, $tls STARTTLS sessions)" test "$held" -gt 0 -a "$tls" -gt 0
}

fault_counted() {
	tap_ok "$1: messages got 250 ($V_ok of $V_tried tried)" test "${V_ok:-0}" -gt 0
	tap_is "$1: every 250'd message is at the backend (lost)" "${V_lost:-?}" 0
	tap_is "$1: none is there twice (duplicates)" "${V_dups:-?}" 0
	tap_is "$1: nothing the client did not finish, or was refused, was delivered" \
		"$((V_conn_delivered + V_not_ok_delivered + V_strangers))" 0
}

fault_serving() {
	local out before
	before=$(px_dumps)
	out=$(px_chat "$FAULT_PORT" R "S:EHLO check.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R \
		"S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R \
		"S:From: <a@example.org>\r\nSubject: still serving\r\nMessage-ID: <serving.$$@example.org>\r\n\r\nbody\r\n.\r\n" R \
		"S:QUIT\r\n" A)
	px_sink_idle_wait
	[[ $out =~ $'<- 250 2.0.0 Ok' ]] && [ "$(px_dumps)" -gt "$before" ]
	tap__result $? "$1: a fresh session is served and delivered" "got: $(tr '\n' '|' <<<"$out")"
}

fault_fds() { ls "/proc/$PX_PID/fd" 2>/dev/null | wc -l; }

fault_fds_settle() {
	local i n
	for i in $(seq 1 $((${2:-30} * 10))); do
		n=$(fault_fds)
		[ "$n" -le "$1" ] && break
		sleep 0.1
	done
	[ "$n" -le "$1" ] || fault__fds_describe >&2
	echo "$n"
}

# what the proxy still holds, as TAP comments: which descriptor, and for sockets their peer
fault__fds_describe() {
	ls -l "/proc/$PX_PID/fd" 2>/dev/null | sed 's/^/# fd: /'
	ss -tuanpe 2>/dev/null | grep "pid=$PX_PID," | sed 's/^/# sock: /'
}

fault_stop_clean() {
	local pid=$PX_PID rc i
	kill -TERM "$pid"
	for i in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		rc=timeout
	else
		wait "$pid"
		rc=$?
	fi
	PX_PID=
	tap_is "$1: the proxy exits 0 on SIGTERM" "$rc" 0
	tap_is "$1: no sanitizer report, no leak" \
		"$(grep -c 'AddressSanitizer\|LeakSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
}
