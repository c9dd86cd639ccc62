#!/bin/bash
# resources.sh - the proxy runs out of room under load (tests/lib/fault.sh: mixed traffic).
# The spool (proxy_spool_dir on a 512 KB tmpfs the test mounts) filled up: held messages past
# proxy_hold_memory get 451 4.3.0, the others flow, and held mail flows again once there is room.
# The descriptor limit (the proxy started with ulimit -Sn 128) below what 300 idle sessions and the
# load need: the proxy sheds what it cannot take (closed without a 421: see the case), never
# crashes, never loses a 250, and serves again once they leave, its descriptors back where they
# were. Ports 19750-19751.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require resources

FAULT_PORT=19750 S=19751
IDLE_PID= MOUNTED=
cleanup() {
	[ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null && wait "$IDLE_PID" 2>/dev/null
	px_stop KILL
	[ -n "$MOUNTED" ] && umount "$MOUNTED"
	px_cleanup
}
trap cleanup EXIT
fault_init
mount -t tmpfs -o "size=512k,mode=0700,uid=$(id -u nobody)" tmpfs "$PX_DIR/spool" ||
	tap_skip_all "cannot mount a tmpfs here"
MOUNTED=$PX_DIR/spool
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S

# --- the spool full: a filler leaves it no room ---
dd if=/dev/zero of="$PX_DIR/spool/filler" bs=4k count=200 2>/dev/null
tap_like "the spool is full" "$(df --output=avail "$PX_DIR/spool" | tail -n 1)" '^ *0$'
fault_load full --port $FAULT_PORT --sessions 20 --messages 400 --lines 300 --seconds 120
fault_load_wait
fault_outcomes full
fault_verify full
fault_counted "spool full"
tap_ok "spool full: held messages past 4 KB got 4xx ($O_4xx), never 5xx, nobody left hanging" \
	test "$O_4xx" -gt 0 -a "$O_5xx" -eq 0 -a "$O_nodot" -eq 0 -a "$O_conn" -eq 0
tap_ok "spool full: logged with the reason" px_wait_log 'hold error="No space left on device"'
rm -f "$PX_DIR/spool/filler"
fault_load room --port $FAULT_PORT --sessions 20 --messages 400 --lines 300 --seconds 120
fault_load_wait
fault_verify room
fault_counted "room again"
tap_is "room again: every message got 250" "$V_ok" "$V_tried"
tap_is "no spool file left behind" "$(find "$PX_DIR/spool" -type f | wc -l)" 0

# --- 128 descriptors: 300 idle sessions and the load ---
px_stop
soft=$(ulimit -Sn)
ulimit -Sn 128
fault_proxy $FAULT_PORT 127.0.0.1:$S
ulimit -Sn "$soft"
tap_is "the proxy runs with 128 descriptors" "$(awk '/^Max open files/ { print $4 }' "/proc/$PX_PID/limits")" 128
fds0=$(fault_fds)
"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" idle --port $FAULT_PORT --sessions 300 \
	--ready "$PX_DIR/ready" --until "$PX_DIR/until" >"$PX_DIR/idle.out" 2>&1 &
IDLE_PID=$!
for i in $(seq 1 1200); do [ -s "$PX_DIR/ready" ] && break; kill -0 $IDLE_PID 2>/dev/null || break; sleep 0.1; done
held=$(cat "$PX_DIR/ready" 2>/dev/null)
tap_ok "at the limit: some of 300 sessions were turned away, about 128 held (${held:-0})" test "${held:-0}" -lt 300 -a "${held:-0}" -gt 50
fault_load fdlimit --port $FAULT_PORT --sessions 20 --messages 300 --seconds 60 --timeout 10
fault_load_wait
fault_outcomes fdlimit
fault_verify fdlimit
# Not polite: a connection past the limit is closed without a word (libuv accepts and closes it to
# keep the listener from spinning); no 421 can be written without a descriptor to write it on.
tap_diag "at the limit the load got: $O_ok 250, $O_4xx 4xx, $O_5xx 5xx, $O_refused closed or silent before a greeting"
tap_is "at the limit: every 250'd message is at the backend, none twice, no client left without a reply after its dot" \
	"$V_lost/$V_dups/$V_nodot_missing/$V_conn_delivered/$V_strangers" "0/0/0/0/0"
tap_ok "at the limit: the proxy still runs" kill -0 "$PX_PID"
touch "$PX_DIR/until"
wait "$IDLE_PID"
IDLE_PID=
fds=$(fault_fds_settle "$fds0")
tap_ok "once they left, the descriptors are back to $fds0 ($fds)" test "$fds" -le "$fds0"
fault_serving "after the descriptor limit"
fault_stop_clean "resources"
tap_done
