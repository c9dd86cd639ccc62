#!/bin/bash
# replay.sh - bad input at volume: the session fuzzers' committed corpora (tests/fuzz/corpus/
# smtp_session, smtp_hold, hdr_reader; byte 0, the fuzzer's options, dropped) replayed over real
# sockets, 20 at once, round after round for 30 s, while mixed load runs beside them: no crash, no
# sanitizer report, no leak, every 250 at the backend once, a normal client still served, the
# descriptors back where they were. Ports 19770-19771.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require replay

FAULT_PORT=19770 S=19771
C=$top_srcdir/tests/fuzz/corpus
trap px_cleanup EXIT
fault_init
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S
fds0=$(fault_fds)

fault_load beside --port $FAULT_PORT --sessions 20 --messages 100000 --seconds 30
"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" replay --port $FAULT_PORT --skip 1 --seconds 30 \
	--corpus "$C/smtp_session" --corpus "$C/smtp_hold" --corpus "$C/hdr_reader" >"$PX_DIR/replay.out" 2>&1
out=$(cat "$PX_DIR/replay.out")
tap_like "the session corpora replayed for 30 s ($out)" "$out" '^replayed=[1-9][0-9]* rounds=[1-9][0-9]* errors=0$'
fault_load_wait
fault_verify beside
fault_counted "mixed load beside the replay"
tap_ok "the proxy still runs" kill -0 "$PX_PID"
fault_serving "after the replay"
fds=$(fault_fds_settle "$fds0")
tap_ok "descriptors back to $fds0 ($fds)" test "$fds" -le "$fds0"
fault_stop_clean "replay"
tap_done
