#!/bin/bash
# resources.sh - the proxy runs out of room under load (tests/lib/fault.sh: mixed traffic).
# The spool (proxy_spool_dir on a 512 KB tmpfs the test mounts) filled up: held messages past
# proxy_hold_memory get 451 4.3.0, the others flow, and held mail flows again once there is room.
# The descriptor limit (the proxy started with ulimit -Sn 128) below what 300 idle sessions and the
# load need: every session it cannot take gets 421 4.3.2 at once (a descriptor held in reserve
# answers it), counted in the metrics and logged at most once per 10 s; it never crashes, never
# loses a 250, and serves every message again once they leave, its descriptors back where they
# were. Ports 19750-19752.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require resources
command -v curl >/dev/null || tap_skip_all "curl not installed"

FAULT_PORT=19750 S=19751 M=19752
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

# --- 128 descriptors: 300 idle sessions, then the load, at the limit ---
px_stop
soft=$(ulimit -Sn)
ulimit -Sn 128
fault_proxy $FAULT_PORT 127.0.0.1:$S -o metrics_listen=127.0.0.1:$M -o authserv_id=mx.fault.example
ulimit -Sn "$soft"
tap_is "the proxy runs with 128 descriptors" "$(awk '/^Max open files/ { print $4 }' "/proc/$PX_PID/limits")" 128
fds0=$(fault_fds)
t0=$(date +%s)
"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" idle --port $FAULT_PORT --sessions 300 \
	--replies "$PX_DIR/idle.replies" --ready "$PX_DIR/ready" --until "$PX_DIR/until" >"$PX_DIR/idle.out" 2>&1 &
IDLE_PID=$!
for i in $(seq 1 1200); do [ -s "$PX_DIR/ready" ] && break; kill -0 $IDLE_PID 2>/dev/null || break; sleep 0.1; done
held=$(cat "$PX_DIR/ready" 2>/dev/null)
sed 's/^/# idle session without a 220: /' "$PX_DIR/idle.replies"
reply421="421 4.3.2 mx.fault.example Too many connections, try again later"
polite=$(awk -F '\t' -v want="$reply421" '$2 == want { n += $1 } END { print n + 0 }' "$PX_DIR/idle.replies")
tap_ok "at the limit: some of 300 sessions were held, about 128 (${held:-0})" test "${held:-0}" -lt 300 -a "${held:-0}" -gt 50
tap_is "at the limit: every session not held got '$reply421' (no silent close, no wait)" \
	"$((held + polite))/$(awk -F '\t' -v want="$reply421" '$2 != want' "$PX_DIR/idle.replies" | wc -l)" "300/0"
fault_load fdlimit --port $FAULT_PORT --sessions 20 --messages 300 --seconds 60 --timeout 10
fault_load_wait
fault_outcomes fdlimit
fault_verify fdlimit
tap_diag "at the limit the load got: $O_ok 250, $O_4xx 4xx, $O_5xx 5xx, $O_refused refused before a greeting"
tap_is "at the limit: every load session refused at connect got 421 at once (refused otherwise)" \
	"$(awk '$2 == "refused" && $3 != "greeting-421"' "$PX_DIR/fdlimit.ledger" | wc -l)" 0
tap_is "at the limit: every 250'd message is at the backend, none twice, no client left without a reply after its dot" \
	"$V_lost/$V_dups/$V_nodot_missing/$V_conn_delivered/$V_strangers" "0/0/0/0/0"
tap_ok "at the limit: the proxy still runs" kill -0 "$PX_PID"
lines=$(grep -c ' descriptor-limit error=EMFILE refused=[0-9]* limit=128 reserve=yes' "$PX_DIR/proxy.log")
secs=$(($(date +%s) - t0))
tap_ok "at the limit: logged, at most once per 10 s ($lines lines in $secs s)" \
	test "$lines" -ge 1 -a "$lines" -le $((secs / 10 + 1))
touch "$PX_DIR/until"
wait "$IDLE_PID"
IDLE_PID=
fds=$(fault_fds_settle "$fds0")
tap_ok "once they left, the descriptors are back to $fds0 ($fds)" test "$fds" -le "$fds0"
tap_is "counted: mxmoat_refusals_total{reason=\"descriptor_limit\"} is the 421s the clients got" \
	"$(curl -s http://127.0.0.1:$M/metrics | sed -n 's/^mxmoat_refusals_total{reason="descriptor_limit"} //p')" \
	"$((polite + $(awk '$3 == "greeting-421"' "$PX_DIR/fdlimit.ledger" | wc -l)))"
fault_load recover --port $FAULT_PORT --sessions 20 --messages 300 --seconds 60
fault_load_wait
fault_verify recover
fault_counted "once they left"
tap_is "once they left: every message got 250" "$V_ok" "$V_tried"
fault_serving "after the descriptor limit"
fault_stop_clean "resources"
tap_done
