# unbound.sh - a recursive resolver (the unbound daemon) on a loopback port, for the e2e tests that
# need what only recursion produces: SERVFAIL from a broken or lame delegation, a server that never
# answers (source it; bash). mxmoat's own libunbound forwards to it as to any site resolver.
#
#   ub_start PORT ZONE=ADDR@PORT [ZONE=ADDR@PORT ...]
#       Start unbound on 127.0.0.1:PORT (UDP and TCP), iterating from the stub zones given (".=" for
#       the tests' nsd serving the root), in a private temporary directory; waits (at most 10 s)
#       until it listens. Queries to servers go out on unconnected UDP sockets, so a stub address
#       where nothing listens is silence (a timeout), not a refused connection. No validator, no
#       cache of failures between runs (nothing survives ub_stop). Sets UB_DIR, UB_PID, UB_PORT.
#   ub_stop
#       Stop the resolver started by ub_start (by its pid only) and remove UB_DIR. Safe to call
#       twice and when nothing was started; call it from your EXIT trap.

. "$(dirname "${BASH_SOURCE[0]}")/dns.sh"    # dns__await, dns__stop_in

UB_DIR=
UB_PID=
UB_PORT=

ub_start() {
	local port=$1 spec
	shift
	if [ ! -x /usr/sbin/unbound ]; then
		echo "ub_start: unbound not installed (Debian package unbound)" >&2
		return 2
	fi
	UB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moat-unbound.XXXXXX") || return 2
	UB_PORT=$port
	{
		printf 'server:\n'
		printf '\tinterface: 127.0.0.1\n\tport: %s\n' "$port"
		printf '\tusername: ""\n\tchroot: ""\n\tdirectory: "%s"\n' "$UB_DIR"
		printf '\tpidfile: "%s/unbound.pid"\n' "$UB_DIR"
		printf '\tuse-syslog: no\n\tlogfile: "%s/unbound.log"\n\tverbosity: 1\n' "$UB_DIR"
		printf '\tdo-daemonize: no\n\tnum-threads: 1\n'
		printf '\tdo-not-query-localhost: no\n\tudp-connect: no\n'
		printf '\tmodule-config: "iterator"\n\tqname-minimisation: no\n'
		printf '\tlocal-zone: "test." nodefault\n'
		printf 'remote-control:\n\tcontrol-enable: no\n'
		for spec in "$@"; do
			printf 'stub-zone:\n\tname: "%s"\n\tstub-addr: %s\n' "${spec%%=*}" "${spec#*=}"
		done
	} >"$UB_DIR/unbound.conf"
	/usr/sbin/unbound -d -c "$UB_DIR/unbound.conf" >"$UB_DIR/stdout.log" 2>&1 &
	UB_PID=$!
	dns__await "$UB_PID" "$port" "ub_start: unbound" ub_stop "$UB_DIR/stdout.log" "$UB_DIR/unbound.log"
}

ub_stop() {
	dns__stop_in UB_PID UB_DIR
}
