#!/bin/bash
# ratelimit_redis.sh - rate limits shared through a real redis-server on loopback: two limiter
# instances (separate processes, standing in for two daemons) share one budget; a flood of 2,000
# connection checks from one address gets 421 after the burst while another address is served;
# Redis stopped mid-test: fail-open instances go on limiting in their own memory, a fail-closed
# one refuses, nobody crashes; Redis back: shared again.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/redis.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v redis-server >/dev/null 2>&1 || tap_skip_all "redis-server not installed"
port_lock ratelimit-redis || tap_skip_all "another run of this test held its ports for 600 s"

PORT=16300
RL=$top_builddir/tests/helpers/rl_check
WORK=$(mktemp -d "${TMPDIR:-/tmp}/moat-rl.XXXXXX")
PREFIX="mxmoat-test-$$:"
declare -A IN OUT PID

cleanup() {
	local n
	for n in "${!PID[@]}"; do
		kill "${PID[$n]}" 2>/dev/null
		wait "${PID[$n]}" 2>/dev/null
	done
	redis_stop
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

COMMON=(-o ratelimit_store=redis -o "ratelimit_redis=127.0.0.1:$PORT" -o "ratelimit_redis_prefix=$PREFIX"
	-o ratelimit_allow= -o ratelimit_conn_per_net= -o ratelimit_conn_per_ip=10/60s
	-o ratelimit_redis_timeout=300ms)

# inst_start NAME ARGS... - a long-lived rl_check reading commands from a fifo. The fifos are
# opened read-write here first (never blocks), and the child keeps no descriptor beyond 0-2,
# so closing our end of NAME.in is an end of file for NAME alone.
inst_start() {
	local name=$1 fd in out
	shift
	mkfifo "$WORK/$name.in" "$WORK/$name.out"
	exec {in}<>"$WORK/$name.in"
	exec {out}<>"$WORK/$name.out"
	(
		for fd in $(ls "/proc/$BASHPID/fd"); do
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done 2>/dev/null
		exec "$RL" "$@" <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err"
	) &
	PID[$name]=$!
	IN[$name]=$in
	OUT[$name]=$out
}

# ask NAME COMMAND - one command, one answer line (at most 10 s).
ask() {
	local line=
	printf '%s\n' "$2" >&"${IN[$1]}"
	read -t 10 -r line <&"${OUT[$1]}" || line="(no answer)"
	printf '%s\n' "$line"
}

# ask_n NAME N COMMAND - the answers to N identical commands, counted: "3 continue, 1 421 ...".
ask_n() {
	local i
	for i in $(seq 1 "$2"); do ask "$1" "$3"; done | sort | uniq -c | sed 's/^ *//' | paste -sd, -
}

# inst_end NAME - close its input and collect its exit status (ASan leak checks included).
inst_end() {
	local fd=${IN[$1]} rc
	exec {fd}>&-
	wait "${PID[$1]}"
	rc=$?
	fd=${OUT[$1]}
	exec {fd}<&-
	unset "PID[$1]"
	return $rc
}

# wait_up NAME - poll "probe" until the instance reaches Redis again (at most 15 s).
wait_up() {
	local i
	for i in $(seq 1 75); do
		[ "$(ask "$1" probe)" = up ] && return 0
		sleep 0.2
	done
	return 1
}

redis_start $PORT
tap_is "redis-server starts on 127.0.0.1:$PORT" "$?" 0

inst_start A "${COMMON[@]}"
inst_start B "${COMMON[@]}"
inst_start C "${COMMON[@]}" -o ratelimit_redis_failure=closed -o ratelimit_msg_per_ip=100/60s
tap_is "instance A reaches Redis" "$(ask A probe)" up
tap_is "instance B reaches Redis" "$(ask B probe)" up

# --- one budget for two instances ---
tap_is "A: 6 of 10 connections" "$(ask_n A 6 'connect 192.0.2.1')" "6 continue"
tap_is "B: the remaining 4" "$(ask_n B 4 'connect 192.0.2.1')" "4 continue"
tap_is "B: the 11th in all gets 421" "$(ask B 'connect 192.0.2.1')" "421 4.7.0 ratelimit_conn_per_ip close"
tap_is "A: refused too, the budget is shared" "$(ask A 'connect 192.0.2.1')" "421 4.7.0 ratelimit_conn_per_ip close"
tap_is "B: another address is served" "$(ask B 'connect 192.0.2.2')" "continue"
ttl=$(redis-cli -h 127.0.0.1 -p $PORT pttl "${PREFIX}cip:192.0.2.1")
tap_like "the bucket key expires on its own (pttl $ttl ms)" "$ttl" '^[0-9]+$'
[ "${ttl:-0}" -gt 0 ] 2>/dev/null && [ "$ttl" -le 60001 ]
tap_is "its expiry is at most one period away" "$?" 0

# Messages per sender share the same way (the sender case-folded): 2 across two instances.
out=$(echo 'mail 192.0.2.3 x@example.org' |
	"$RL" "${COMMON[@]}" -o ratelimit_msg_per_sender=2/60s 2>/dev/null)
tap_is "instance D: first message of the sender" "$out" "continue"
out=$(printf 'mail 192.0.2.4 X@Example.ORG\nmail 192.0.2.5 x@example.org\n' |
	"$RL" "${COMMON[@]}" -o ratelimit_msg_per_sender=2/60s 2>/dev/null | paste -sd, -)
tap_is "instance E: one more, then 451 4.7.1" "$out" "continue,451 4.7.1 ratelimit_msg_per_sender"

# Control: with the embedded store the same sequence is not shared (the test can fail).
out=$( { printf 'connect 192.0.2.1\n%.0s' $(seq 1 10); } |
	"$RL" "${COMMON[@]}" -o ratelimit_store=memory 2>/dev/null | sort | uniq -c | sed 's/^ *//')
tap_is "control: a memory-store instance has its own budget" "$out" "10 continue"

# --- flood: 2,000 checks from one address, bounded in time ---
start=$SECONDS
out=$(echo "flood 192.0.2.50 2000 192.0.2.51" |
	"$RL" "${COMMON[@]}" -o ratelimit_conn_per_ip=20/60s 2>"$WORK/flood.err")
tap_is "flood via Redis: 20 served, 1980 refused with 421, the other address served" "$out" \
	"served=20 refused=1980 other_refused=0 codes=421"
tap_is "flood took under 30 s" "$(( SECONDS - start < 30 ))" 1
tap_is "1980 refusals, one log line" "$(grep -c 'limit=ratelimit_conn_per_ip key="cip:192.0.2.50"' "$WORK/flood.err")" 1
out=$(echo "flood 192.0.2.60 2000 192.0.2.61" |
	"$RL" "${COMMON[@]}" -o ratelimit_store=memory -o ratelimit_conn_per_ip=20/60s 2>/dev/null)
tap_is "flood in memory: the same" "$out" "served=20 refused=1980 other_refused=0 codes=421"

# --- Redis stopped mid-test ---
redis_kill
tap_is "Redis is gone" "$(redis-cli -h 127.0.0.1 -p $PORT ping 2>/dev/null)" ""
tap_is "A (fail-open): limits continue in memory, 10 served" "$(ask_n A 10 'connect 198.51.100.1')" "10 continue"
tap_is "A: the 11th gets 421 from memory" "$(ask A 'connect 198.51.100.1')" "421 4.7.0 ratelimit_conn_per_ip close"
tap_is "A: another address still served" "$(ask A 'connect 198.51.100.2')" "continue"
tap_is "B (fail-open) serves its own budget" "$(ask_n B 3 'connect 198.51.100.1')" "3 continue"
tap_is "C (fail-closed): 421 at connect" "$(ask C 'connect 198.51.100.3')" "421 4.7.0 ratelimit_store_down close"
tap_is "C (fail-closed): 451 4.3.0 at MAIL" "$(ask C 'mail 198.51.100.3 a@example.org')" "451 4.3.0 ratelimit_store_down"
tap_is "A logged the outage once, not per check" "$(grep -c 'store=redis status=unreachable fallback=memory' "$WORK/A.err")" 1
tap_is "C logged it once" "$(grep -c 'store=redis status=unreachable fallback=closed' "$WORK/C.err")" 1
alive=0
for n in A B C; do kill -0 "${PID[$n]}" 2>/dev/null && alive=$((alive + 1)); done
tap_is "no instance crashed" "$alive" 3

# --- Redis back: shared again ---
redis_start $PORT
tap_is "redis-server restarted on the same port" "$?" 0
wait_up A; tap_is "A reconnects (back-off)" "$?" 0
wait_up B; tap_is "B reconnects" "$?" 0
wait_up C; tap_is "C reconnects" "$?" 0
tap_is "A: 10 connections from a fresh address" "$(ask_n A 10 'connect 203.0.113.9')" "10 continue"
tap_is "B: shared again, 421" "$(ask B 'connect 203.0.113.9')" "421 4.7.0 ratelimit_conn_per_ip close"
tap_is "C: serves again" "$(ask C 'connect 203.0.113.10')" "continue"

for n in A B C; do
	inst_end $n
	tap_is "instance $n exits cleanly (no leak, no crash)" "$?" 0
done
tap_done
