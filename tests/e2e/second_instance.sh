#!/bin/bash
# second_instance.sh - a second mxmoat-proxy or mxmoat-milter started on the address a running one
# listens on is refused with a clear error (exit 1), and the running one keeps every connection:
# the proxy's workers share their address through SO_REUSEPORT, which would otherwise let a second
# process join and take part of the connections; libmilter removes a unix socket file before it
# binds, which would otherwise let a second milter take the path. The running proxy's own reload
# (SIGHUP) keeps its listeners; once it has stopped, or a milter died leaving its socket file, a
# new one starts. Any other server on the address is refused the same way.
# Ports: 18620 (proxy), 18621 (sink), 18622 (second proxy address), 18623 (another server),
# 18625 (milter).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/milter.sh"

command -v smtp-sink >/dev/null || [ -x /usr/sbin/smtp-sink ] || tap_skip_all "needs smtp-sink (postfix)"
PATH=$PATH:/usr/sbin
command -v ss >/dev/null || tap_skip_all "needs ss (iproute2)"
[ -x "$top_builddir/proxy/mxmoat-proxy" ] || tap_bail "mxmoat-proxy not built"
[ -x "$top_builddir/milter/mxmoat-milter" ] || tap_bail "mxmoat-milter not built"
port_lock second-instance || tap_skip_all "another run of this test held its ports for 600 s"

P=18620 S=18621 P2=18622 O=18623 M=18625
OTHER_PID=
cleanup() {
	[ -n "$OTHER_PID" ] && proc_stop "$OTHER_PID"
	milter_stop
	px_cleanup
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"
MILTER_DIR=$PX_DIR
IN_USE='already in use: another mxmoat-proxy \(reload a running one with SIGHUP\) or another server listens there'
M_IN_USE='already in use: another mxmoat-milter \(reload a running one with SIGHUP\) or another server listens there'

# second PROGRAM ARGS... - run a second daemon in the foreground, bounded (a refused one exits at
# once; one that wrongly starts is stopped after 10 s, exit 124); sets OUT and RC.
second() {
	OUT=$(timeout 10 "$@" -f -o log_target=stderr 2>&1)
	RC=$?
}
# listeners PORT - the pids listening on 127.0.0.1:PORT, sorted, one per socket
listeners() {
	ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | sort
}
# greeted PORT N - N connections in a row; prints how many got the proxy's 220
greeted() {
	local i n=0 line
	for i in $(seq 1 "$2"); do
		line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"; IFS= read -r l <&3; printf "%s" "$l"' "$1" 2>/dev/null)
		[[ $line == "220 "*" ESMTP mxmoat"* ]] && n=$((n + 1))
	done
	echo "$n"
}

# unix_accepts PATH - a server accepts on the unix socket within 5 s
unix_accepts() {
	"$PX_PY" - "$1" <<-'EOF'
	import socket, sys, time
	for _ in range(100):
	    try:
	        socket.socket(socket.AF_UNIX).connect(sys.argv[1])
	        sys.exit(0)
	    except OSError:
	        time.sleep(0.05)
	sys.exit(1)
	EOF
}

# --- mxmoat-proxy ---
px_sink_start $S || tap_bail "smtp-sink did not start"
px_start $P 127.0.0.1:$S -o proxy_workers=4 || tap_bail "the first proxy did not start"
first=$(listeners $P | sort -u)
tap_is "first proxy: four workers, four sockets on the address" "$(listeners $P | wc -l)" 4

second "$top_builddir/proxy/mxmoat-proxy" -o proxy_listen=127.0.0.1:$P -o proxy_backend=127.0.0.1:$S \
	-o auth_inbound=no -o proxy_workers=1
tap_is "second proxy on the same address: exit 1" "$RC" 1
tap_like "second proxy: says why" "$OUT" "^mxmoat-proxy: 127\\.0\\.0\\.1:$P: $IN_USE\$"
tap_is "second proxy: no socket of it is left on the address" "$(listeners $P | sort -u)" "$first"

second "$top_builddir/proxy/mxmoat-proxy" -o "proxy_listen=127.0.0.1:$P2, 127.0.0.1:$P" \
	-o proxy_backend=127.0.0.1:$S -o auth_inbound=no
tap_is "second proxy with the address second in its list: exit 1" "$RC" 1
tap_like "second proxy with the address second in its list: says why" "$OUT" "127\\.0\\.0\\.1:$P: $IN_USE"
tap_is "second proxy with the address second in its list: its other address is free again" \
	"$(listeners $P2)" ""

tap_is "the first proxy greets all of 20 connections" "$(greeted $P 20)" 20
out=$(swaks --server 127.0.0.1:$P --from a@example.org --to b@example.net 2>&1)
tap_like "the first proxy still relays" "$out" $'\n<-  250 2\\.0\\.0 Ok'

kill -HUP "$PX_PID"
proc_wait_ready "$PX_PID" grep -q 'reload status=ok' "$PX_DIR/proxy.log"
tap_ok "SIGHUP: the first proxy reloads" grep -q 'reload status=ok' "$PX_DIR/proxy.log"
tap_is "SIGHUP: same process, same sockets" "$(listeners $P | sort -u)" "$first"
tap_is "SIGHUP: it still greets all of 5 connections" "$(greeted $P 5)" 5

px_stop
tap_ok "after the first proxy stopped, a new one starts on the address" px_start $P 127.0.0.1:$S
tap_is "the new proxy greets" "$(greeted $P 1)" 1
px_stop

smtp-sink -u nobody 127.0.0.1:$O 10 >/dev/null 2>&1 &
OTHER_PID=$!
proc_wait_ready "$OTHER_PID" bash -c "exec 3<>/dev/tcp/127.0.0.1/$O" 2>/dev/null || tap_bail "smtp-sink did not start"
second "$top_builddir/proxy/mxmoat-proxy" -o proxy_listen=127.0.0.1:$O -o proxy_backend=127.0.0.1:$S \
	-o auth_inbound=no
tap_is "proxy on an address another server listens on: exit 1" "$RC" 1
tap_like "proxy on an address another server listens on: says why" "$OUT" "127\\.0\\.0\\.1:$O: $IN_USE"
proc_stop "$OTHER_PID"
OTHER_PID=

# --- mxmoat-milter ---
tap_ok "milter on inet: starts" milter_start "inet:$M@127.0.0.1"
second "$top_builddir/milter/mxmoat-milter" -o "milter_socket=inet:$M@127.0.0.1"
tap_is "second milter on the same inet socket: exit 1" "$RC" 1
tap_like "second milter on the same inet socket: says why" "$OUT" "cannot listen on inet:$M@127\\.0\\.0\\.1: $M_IN_USE"
tap_ok "the first milter still runs and accepts" bash -c "kill -0 $MILTER_PID && exec 3<>/dev/tcp/127.0.0.1/$M"
milter_stop
tap_is "the first milter exits 0" "$MILTER_RC" 0

sock=$PX_DIR/milter.sock
tap_ok "milter on a unix socket: starts" milter_start "unix:$sock"
inode=$(stat -c %i "$sock")
second "$top_builddir/milter/mxmoat-milter" -o "milter_socket=unix:$sock"
tap_is "second milter on the same unix socket: exit 1" "$RC" 1
tap_like "second milter on the same unix socket: says why" "$OUT" "cannot listen on unix:$sock: $M_IN_USE"
tap_is "the socket file is still the first milter's" "$(stat -c %i "$sock")" "$inode"
tap_ok "the first milter still accepts on it" unix_accepts "$sock"
kill -KILL "$MILTER_PID"
wait "$MILTER_PID" 2>/dev/null
MILTER_PID=
tap_ok "a socket file left by a killed milter is stale" test -S "$sock"
tap_ok "a new milter starts on the stale socket" milter_start "unix:$sock"
tap_ok "and accepts on it" unix_accepts "$sock"
milter_stop
tap_is "no sanitizer report" "$(cat "$PX_DIR"/*.log | grep -c 'AddressSanitizer\|runtime error')" 0
tap_done
