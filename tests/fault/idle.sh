#!/bin/bash
# idle.sh - 10,000 idle sessions and 1,000 slowloris sessions (a command one byte every 2 s) held
# open on the proxy (tests/lib/loadgen.py idle, from 56 loopback addresses: under
# limit_sessions_per_ip), while a normal client is still served, its whole transaction within
# 1 s, and mixed load still flows with every 250 at the backend. Reported: the proxy's RSS per
# idle session (a sanitizer build: several times a release build's). When they leave, the proxy's
# descriptors go back to where they were. Ports 19740-19741.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require idle

IDLE=${MXMOAT_FAULT_IDLE:-10000} SLOW=${MXMOAT_FAULT_SLOWLORIS:-1000}
need=$((IDLE + SLOW + 1000))
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt "$need" ]; then	# a machine with a lower hard limit: as many as it allows
	IDLE=$((($(ulimit -n) - 1000) * 10 / 11)) SLOW=$((IDLE / 10))
	[ "$IDLE" -ge 1000 ] || tap_skip_all "needs at least 2,100 descriptors (ulimit -Hn is $(ulimit -Hn))"
	tap_diag "ulimit -Hn is $(ulimit -Hn): $IDLE idle and $SLOW slowloris sessions instead of 10,000 and 1,000"
fi

FAULT_PORT=19740 S=19741
IDLE_PID=
cleanup() {
	[ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null && wait "$IDLE_PID" 2>/dev/null
	px_cleanup
}
trap cleanup EXIT
fault_init
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S
fds0=$(fault_fds)
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$PX_PID/status"; }
rss0=$(rss)

"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" idle --port $FAULT_PORT --sessions "$IDLE" --slowloris "$SLOW" \
	--spread --ready "$PX_DIR/ready" --until "$PX_DIR/until" >"$PX_DIR/idle.out" 2>&1 &
IDLE_PID=$!
for i in $(seq 1 1800); do [ -s "$PX_DIR/ready" ] && break; kill -0 $IDLE_PID 2>/dev/null || break; sleep 0.1; done
held=$(cat "$PX_DIR/ready" 2>/dev/null)
tap_is "all $((IDLE + SLOW)) sessions are open and greeted" "${held:-none}" "$((IDLE + SLOW))"
rss1=$(rss)
tap_diag "proxy RSS: $rss0 kB alone, $rss1 kB with $held sessions: $(( (rss1 - rss0) * 1024 / (held > 0 ? held : 1) )) bytes a session (ASan build)"

out=$(px_chat $FAULT_PORT R "S:EHLO check.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R \
	"S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R "S:From: <a@example.org>\r\nSubject: beside the idle\r\n\r\nbody\r\n.\r\n" R \
	"S:QUIT\r\n" R M)
ms=$(sed -n 's/^ms=//p' <<<"$out")
tap_like "a normal client beside them gets 250" "$out" $'<- 250 2.0.0 Ok'
tap_ok "... its whole transaction within 1 s ($ms ms)" test "${ms:-99999}" -lt 1000
fault_load beside --port $FAULT_PORT --sessions 20 --messages 1000 --seconds 120
fault_load_wait
fault_verify beside
fault_counted "mixed load beside $held held sessions"
tap_is "... every message got 250" "$V_ok" "$V_tried"

touch "$PX_DIR/until"
wait "$IDLE_PID"
IDLE_PID=
tap_like "the slowloris sessions were still open at the end (proxy_timeout_command: 5 min)" \
	"$(cat "$PX_DIR/idle.out")" "slowloris=$SLOW open_at_end=$((IDLE + SLOW))"
fds=$(fault_fds_settle "$fds0")
tap_ok "once they left, the descriptors are back to $fds0 ($fds)" test "$fds" -le "$fds0"
fault_serving "after the idle sessions"
fault_stop_clean "idle sessions"
tap_done
