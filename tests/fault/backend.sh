#!/bin/bash
# backend.sh - the backend fails under load (tests/lib/fault.sh: 20 sessions of mixed traffic, every
# message in a ledger): it refuses connections, accepts and never greets, drops the connection at
# MAIL, RCPT, DATA and after the final dot (smtp-sink -q), in the middle of the content and at
# random with random 4xx and 5xx replies, answers slowly (tests/lib/loadgen.py backend), and
# restarts. Every
# message the client was not given 250 got a reply (4xx when the fault is temporary), the client
# is never left hanging, what got 250 is at the backend once, and the proxy goes on serving.
# Ports 19710-19712.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require backend

FAULT_PORT=19710 S=19711 B=19712
FAKE_PID=
cleanup() {
	[ -n "$FAKE_PID" ] && proc_stop "$FAKE_PID"
	px_cleanup
}
trap cleanup EXIT
fault_init

# fake MODE [ARGS] - the scripted backend on $B (its messages in the sink's dump folder)
fake() {
	local mode=$1
	shift
	"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" backend --port $B --mode "$mode" --dumps "$PX_DIR/dump" "$@" \
		>"$PX_DIR/fake.out" 2>&1 &
	FAKE_PID=$!
	px_wait_log listening 1 "$PX_DIR/fake.out" || tap_bail "the scripted backend did not start"
}
fake_stop() { proc_stop "$FAKE_PID"; FAKE_PID=; }

# all_temporary NAME LABEL - every message of load NAME got a 4xx reply: none 250, none 5xx, no
# client left without a reply, none delivered
all_temporary() {
	fault_outcomes "$1"
	tap_is "$2: every message got a 4xx reply (of $((O_ok + O_4xx + O_5xx + O_nodot + O_conn)))" \
		"$O_ok/$O_5xx/$O_nodot/$O_conn" "0/0/0/0"
	tap_ok "$2: ... and there were messages ($O_4xx)" test "$O_4xx" -gt 0
}

# --- no backend at all: refused at once ---
fault_proxy $FAULT_PORT 127.0.0.1:$S
fault_load refused --port $FAULT_PORT --sessions 20 --messages 200 --seconds 60
fault_load_wait
all_temporary refused "backend refuses connections"

# --- a backend that accepts and never greets: proxy_timeout_backend (2 s) ---
px_stop
fake nogreet
fault_proxy $FAULT_PORT 127.0.0.1:$B -o proxy_timeout_backend=2s
fault_load nogreet --port $FAULT_PORT --sessions 20 --messages 40 --per-session 1 --seconds 90
fault_load_wait
all_temporary nogreet "backend never greets"
fake_stop

# --- the backend drops the connection at each command (smtp-sink -q) ---
px_stop
fault_proxy $FAULT_PORT 127.0.0.1:$S
for cmd in MAIL RCPT DATA; do
	px_sink_start $S -q $cmd || tap_bail "smtp-sink -q $cmd did not start"
	fault_load "drop$cmd" --port $FAULT_PORT --sessions 20 --messages 150 --seconds 60
	fault_load_wait
	all_temporary "drop$cmd" "backend drops the connection at $cmd"
	px_sink_stop
done
# after the final dot: the sink has the message, the client a 4xx (it will send it again: the
# duplicate every MTA risks when a reply to the dot is lost, RFC 1047), never a 250
px_sink_start $S -q . || tap_bail "smtp-sink -q . did not start"
fault_load dropdot --port $FAULT_PORT --sessions 20 --messages 150 --seconds 60
fault_load_wait
fault_verify dropdot
all_temporary dropdot "backend drops the connection after the dot"
tap_is "... what reached the sink is exactly what got that 4xx, once (lost/dups/unfinished)" \
	"$V_lost/$V_dups/$V_conn_delivered/$V_strangers" "0/0/0/0"
tap_diag "after the dot: $V_not_ok_delivered of $V_tried messages are at the sink although the client got a 4xx (a retry will duplicate them)"
px_sink_stop
px_stop

# --- the backend drops the connection in the middle of every message's content ---
fake middata
fault_proxy $FAULT_PORT 127.0.0.1:$B
fault_load middata --port $FAULT_PORT --sessions 20 --messages 150 --seconds 60
fault_load_wait
all_temporary middata "backend drops the connection mid-DATA"
fault_verify middata
tap_is "mid-DATA: nothing delivered" "$V_at_backend/$V_not_ok_delivered" "0/0"
fake_stop

# --- a slow backend: every reply after up to 300 ms ---
fake slow --delay-ms 300 --seed 21
fault_load slow --port $FAULT_PORT --sessions 20 --messages 300 --seconds 120
fault_load_wait
fault_outcomes slow
fault_verify slow
fault_counted "slow backend (replies after 0-300 ms)"
tap_is "slow backend: every message got 250" "$V_ok" "$V_tried"
fake_stop

# --- random faults: one command in ten gets a 4xx, a 5xx or a dropped connection ---
fake random --odds 10 --seed 20
fault_load random --port $FAULT_PORT --sessions 20 --messages 1000 --seconds 120
fault_load_wait
fault_outcomes random
fault_verify random
fault_counted "random backend faults"
tap_ok "random: 4xx and 5xx both reached clients ($O_4xx, $O_5xx)" test "$O_4xx" -gt 0 -a "$O_5xx" -gt 0
tap_is "random: no client was left without a reply (nodot/conn)" "$O_nodot/$O_conn" "0/0"
fake_stop
px_stop

# --- the backend restarts under load ---
fault_proxy $FAULT_PORT 127.0.0.1:$S
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_load restart --port $FAULT_PORT --sessions 20 --messages 1000 --seconds 120
fault_ledger_wait restart 300 || tap_diag "the load stopped before 300 messages"
px_sink_stop
fault_ledger_wait restart 400 || tap_diag "the load stopped before 400 messages"
px_sink_start $S || tap_bail "smtp-sink did not come back"
fault_load_wait
fault_outcomes restart
fault_verify restart
fault_counted "backend restart"
tap_is "backend restart: no client was left without a reply (nodot/conn)" "$O_nodot/$O_conn" "0/0"
fault_serving "after the backend faults"
fault_stop_clean "backend faults"
tap_done
