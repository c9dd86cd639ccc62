#!/bin/bash
# contrib/quickstart.sh - build mxmoat on a fresh Debian 12 machine and run mxmoat-proxy in the
# foreground on its built-in defaults (listen 127.0.0.1:10025, relay to 127.0.0.1:25), logging to
# stderr. Extra arguments go to mxmoat-proxy, e.g. -o proxy_backend=127.0.0.1:2526.
#
# If an MTA answers at the backend address (a 220 greeting), the proxy relays to it. If nothing
# listens there, a throwaway backend takes its place for this run: Postfix's smtp-sink on
# MXMOAT_QUICKSTART_SINK (127.0.0.1:10026), writing every message it accepts, as the proxy relayed
# it, to a file in the mail folder the script names. It stops with the proxy (Ctrl-C or SIGTERM).
#
# Messages held past proxy_hold_memory go to a spool directory of this run (the built-in
# /var/spool/mxmoat is made by `make install` or the package, not here), so nothing outside the
# quickstart's own directory is written.
#
# Environment:
#   MXMOAT_QUICKSTART_DIR       the run's directory (spool/, mail/); default: a new
#                               /tmp/mxmoat-quickstart.XXXXXX, kept afterwards so the mail can be read
#   MXMOAT_QUICKSTART_SINK      address for the throwaway backend (default 127.0.0.1:10026)
#   MXMOAT_QUICKSTART_BUILDDIR  an already-built tree: install no package, build nothing (tests)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
say() { printf 'quickstart: %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

if [ -n "${MXMOAT_QUICKSTART_BUILDDIR:-}" ]; then
	build=$(cd "$MXMOAT_QUICKSTART_BUILDDIR" && pwd)
else
	"$top/tests/install-deps" core quickstart
	cd "$top"
	# once: later runs leave it to make's rebuild rules; its chatter is shown only if it fails
	if [ ! -x configure ] && ! out=$(./autogen.sh 2>&1); then
		printf '%s\n' "$out" >&2
		die "autogen.sh failed"
	fi
	mkdir -p build
	cd build
	[ -f Makefile ] || ../configure -q
	make -s -j"$(nproc)"
	build=$top/build
fi
proxy=$build/proxy/mxmoat-proxy

# The configuration the proxy will run with: its defaults and the caller's arguments.
conf=$("$proxy" "$@" -d) || die "mxmoat-proxy refused the arguments: $*"
key() { sed -n "s/^$1 = //p" <<<"$conf"; }
backend=$(key proxy_backend)
run_user=$(id -un)
[ "$(id -u)" = 0 ] && run_user=$(key daemon_user)    # started as root, the proxy drops to it

dir=${MXMOAT_QUICKSTART_DIR:-$(mktemp -d /tmp/mxmoat-quickstart.XXXXXX)}
mkdir -p "$dir/spool" "$dir/mail"
chmod 755 "$dir" "$dir/mail"
chmod 700 "$dir/spool"
chown "$run_user" "$dir/spool" "$dir/mail"

# greeting HOST:PORT - the first line an SMTP server there sends; exit 1 if nothing accepts.
greeting() {
	local host=${1%:*} port=${1##*:}
	host=${host#[}
	host=${host%]}
	timeout 10 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
		IFS= read -r -t 8 line <&3 || exit 2
		printf "%s\n" "${line%$'"'"'\r'"'"'}"
		printf "QUIT\r\n" >&3' "$host" "$port" 2>/dev/null
}

sink_pid=
stop_sink() {
	[ -n "$sink_pid" ] || return 0
	kill "$sink_pid" 2>/dev/null || true
	wait "$sink_pid" 2>/dev/null || true    # killed: 143
	sink_pid=
}
trap stop_sink EXIT

extra=()
if banner=$(greeting "$backend"); then
	case $banner in
	220*) say "relaying to the MTA at $backend: $banner" ;;
	*) die "something listens at $backend but does not greet like an MTA ('$banner'); set -o proxy_backend=HOST:PORT" ;;
	esac
else
	sink_addr=${MXMOAT_QUICKSTART_SINK:-127.0.0.1:10026}
	sink=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
	if [ ! -x "$sink" ] && [ -z "${MXMOAT_QUICKSTART_BUILDDIR:-}" ] && [ ! -e /usr/sbin/sendmail ]; then
		"$top/tests/install-deps" quickstart-sink    # postfix, for smtp-sink; not started
	fi
	[ -x "$sink" ] || die "nothing answers at $backend and smtp-sink (Debian package postfix) is not installed: install it, or start your MTA there"
	greeting "$sink_addr" >/dev/null &&
		die "nothing answers at $backend, and $sink_addr (MXMOAT_QUICKSTART_SINK) is taken"
	sink_opts=()
	[ "$(id -u)" = 0 ] && sink_opts=(-u "$run_user")
	"$sink" "${sink_opts[@]}" -d "$dir/mail/%Y%m%d-%H%M%S." "$sink_addr" 100 &
	sink_pid=$!
	for _ in $(seq 1 100); do
		greeting "$sink_addr" >/dev/null && break
		kill -0 "$sink_pid" 2>/dev/null || die "smtp-sink did not start on $sink_addr"
		sleep 0.1
	done
	greeting "$sink_addr" >/dev/null || die "smtp-sink did not answer on $sink_addr within 10 s"
	say "nothing answers at $backend: relaying instead to a throwaway backend, Postfix's smtp-sink on $sink_addr, stopped with the proxy"
	say "every message it accepts is written to $dir/mail/"
	extra=(-o "proxy_backend=$sink_addr")
fi

say "mxmoat-proxy listens on $(key proxy_listen); stop it with Ctrl-C"
"$proxy" -f -o log_target=stderr -o "proxy_spool_dir=$dir/spool" "$@" "${extra[@]}" &
proxy_pid=$!
trap 'kill -TERM "$proxy_pid" 2>/dev/null' INT TERM
status=0
wait "$proxy_pid" || status=$?
# a signal caught above ends that wait early, while the proxy still drains its sessions
if [ "$status" -gt 128 ]; then
	status=0
	wait "$proxy_pid" || status=$?
fi
exit "$status"
