# proc.sh - wait for and stop a server that a fixture started in the background (bash; sourced by
# dns.sh, redis.sh and proxy.sh). Both act on the one pid they are given, never on a name.
#
#   proc_wait_ready PID CMD...   run CMD every 0.1 s while PID lives, at most 100 times (10 s):
#                                0 as soon as CMD succeeds, 1 if PID exited or the time ran out
#   proc_stop PID [SIGNAL]       send SIGNAL (TERM by default), wait (bounded, 5 s) until PID is
#                                gone, SIGKILL it if it is not, and reap it

proc_wait_ready() {
	local pid=$1 i
	shift
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 1
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

proc_stop() {
	local i
	kill -"${2:-TERM}" "$1" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
