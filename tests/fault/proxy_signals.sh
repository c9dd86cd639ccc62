#!/bin/bash
# proxy_signals.sh - mxmoat-proxy signalled under load (tests/lib/fault.sh: 24 sessions of plain,
# STARTTLS, pipelined and holding-mode traffic, every message in a ledger): killed with SIGKILL
# three times and restarted; SIGHUP every second; SIGTERM in the middle (the sessions in flight
# finish, then it exits 0). After each: every message that got 250 is at the backend, none twice,
# nothing the client did not finish; then a fresh session is served, the descriptors are back where
# they were and, at the end, no leak. Ports 19700-19701.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require proxy-signals

FAULT_PORT=19700 S=19701
trap px_cleanup EXIT
fault_init
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S
fds0=$(fault_fds)

# --- SIGKILL at 300, 600 and 900 messages tried, restarted at once ---
fault_load kill --port $FAULT_PORT --sessions 24 --messages 1200 --seconds 150
for n in 300 600 900; do
	fault_ledger_wait kill $n || tap_diag "the load stopped before $n messages"
	kill -KILL "$PX_PID"
	wait "$PX_PID" 2>/dev/null
	fault_proxy $FAULT_PORT 127.0.0.1:$S
done
fault_load_wait
fault_verify kill
fault_counted "SIGKILL x3"
fault_mixed "SIGKILL x3"
tap_is "SIGKILL x3: the spool holds no file of a killed proxy's held message" \
	"$(find "$PX_DIR/spool" -type f | wc -l)" 0
fault_serving "after SIGKILL x3"
fds0=$(fault_fds)

# --- SIGHUP every second ---
fault_load hup --port $FAULT_PORT --sessions 24 --messages 1500 --seconds 150
# one a second, each once the one before is done (two signals pending at once are one to the
# kernel: a slow reload on a loaded machine would otherwise swallow the next)
hups=0 done0=$(grep -c 'reload status=ok' "$PX_DIR/proxy.log")
while kill -0 "$LOAD_PID" 2>/dev/null; do
	kill -HUP "$PX_PID"
	hups=$((hups + 1))
	px_wait_log 'reload status=ok' $((done0 + hups)) || break
	sleep 1
done
fault_load_wait
fault_verify hup
fault_counted "SIGHUP every second ($hups)"
tap_is "SIGHUP: no message refused (every one got 250)" "$V_ok" "$V_tried"
tap_ok "SIGHUP: every reload logged as done" px_wait_log 'reload status=ok' $((done0 + hups))
fault_serving "after the reloads"
fds=$(fault_fds_settle "$fds0")
tap_ok "SIGHUP: descriptors back to $fds0 once the load is gone ($fds)" test "$fds" -le "$fds0"

# --- SIGTERM while 24 sessions are in flight: they finish, the proxy exits 0 ---
fault_load term --port $FAULT_PORT --sessions 24 --messages 1000 --seconds 120
fault_ledger_wait term 300 || tap_diag "the load stopped before 150 messages"
fault_stop_clean "SIGTERM under load"
fault_load_wait
fault_verify term
fault_counted "SIGTERM drain"
tap_is "SIGTERM drain: no message cut after its dot (nodot)" "$((V_nodot_delivered + V_nodot_missing))" 0
fault_proxy $FAULT_PORT 127.0.0.1:$S
fault_serving "restarted after SIGTERM"
fault_stop_clean "the end"
tap_done
