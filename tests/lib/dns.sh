# dns.sh - an authoritative DNS server (nsd) on a loopback port for the e2e tests (source it; bash).
#
#   dns_start PORT ZONE=FILE [ZONE=FILE ...]
#       Start nsd on 127.0.0.1:PORT (UDP and TCP) serving each ZONE from FILE, in a private
#       temporary directory; waits (at most 10 s) until it answers. Returns non-zero, with nsd's
#       log on stderr, if a zone does not load or the server does not come up.
#       Sets DNS_DIR (the temp dir), DNS_PID and DNS_PORT. An empty FILE ("ZONE=") configures
#       ZONE with no data, like a secondary that never got its zone: nsd answers SERVFAIL for it.
#   dns_stop
#       Stop the server started by dns_start (by its pid only) and remove DNS_DIR. Safe to call
#       twice and when nothing was started; call it from your EXIT trap.
#   dns_txt NAME RECORD
#       A zone file's TXT line for NAME on stdout, RECORD split into 200-byte character-strings.
#   dns_wait_free PORT
#       Wait (at most 5 s) until nothing is bound to 127.0.0.1:PORT (a previous run's server
#       shutting down would answer with its own data); non-zero if it stays bound.
#   dns_query NAME TYPE
#       Ask the server with `dig +short` (bind9-dnsutils) if it is installed; for debugging tests.
#
# nsd runs in the foreground (-d) as the invoking user with no chroot, no control socket and no
# zone database file, so nothing outside DNS_DIR is touched and nothing survives dns_stop.
# Zone files are checked with nsd-checkzone first so a bad fixture fails with a clear message.

. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

DNS_DIR=
DNS_PID=
DNS_PORT=

dns_start() {
	local port=$1 spec zone file ext n=0
	shift
	if ! command -v nsd >/dev/null 2>&1 && [ ! -x /usr/sbin/nsd ]; then
		echo "dns_start: nsd not installed (Debian package nsd)" >&2
		return 2
	fi
	local nsd=/usr/sbin/nsd checkzone=/usr/sbin/nsd-checkzone
	command -v nsd >/dev/null 2>&1 && nsd=$(command -v nsd)
	command -v nsd-checkzone >/dev/null 2>&1 && checkzone=$(command -v nsd-checkzone)
	DNS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moat-dns.XXXXXX") || return 2
	DNS_PORT=$port
	{
		printf 'server:\n'
		printf '\tip-address: 127.0.0.1@%s\n' "$port"
		printf '\tport: %s\n' "$port"
		printf '\tusername: ""\n'
		printf '\tchroot: ""\n'
		printf '\tzonesdir: "%s"\n' "$DNS_DIR"
		printf '\tzonelistfile: "%s/zone.list"\n' "$DNS_DIR"
		printf '\tdatabase: ""\n'
		printf '\tpidfile: "%s/nsd.pid"\n' "$DNS_DIR"
		printf '\txfrdfile: "%s/xfrd.state"\n' "$DNS_DIR"
		printf '\txfrdir: "%s"\n' "$DNS_DIR"
		printf '\tlogfile: "%s/nsd.log"\n' "$DNS_DIR"
		printf '\tserver-count: 1\n'
		printf '\tverbosity: 1\n'
		printf '\thide-version: yes\n'
		printf '\treuseport: no\n'
		printf 'remote-control:\n\tcontrol-enable: no\n'
	} >"$DNS_DIR/nsd.conf"
	for spec in "$@"; do
		zone=${spec%%=*}
		file=${spec#*=}
		n=$((n + 1))
		ext=zone
		if [ -z "$file" ]; then
			ext=none     # never written: the zone has no data
		else
			cp "$file" "$DNS_DIR/zone$n.zone" || { dns_stop; return 2; }
			if ! "$checkzone" "$zone" "$DNS_DIR/zone$n.zone" >"$DNS_DIR/check$n.log" 2>&1; then
				echo "dns_start: zone $zone in $file does not load:" >&2
				cat "$DNS_DIR/check$n.log" >&2
				dns_stop
				return 2
			fi
		fi
		printf 'zone:\n\tname: "%s"\n\tzonefile: "%s/zone%d.%s"\n' "$zone" "$DNS_DIR" "$n" "$ext" \
			>>"$DNS_DIR/nsd.conf"
	done
	"$nsd" -d -c "$DNS_DIR/nsd.conf" >"$DNS_DIR/stdout.log" 2>&1 &
	DNS_PID=$!
	dns__await "$DNS_PID" "$port" "dns_start: nsd" dns_stop "$DNS_DIR/stdout.log" "$DNS_DIR/nsd.log"
}

# dns__await PID PORT WHO STOP LOG... - 0 once PID listens on PORT (at most 10 s); else the logs
# on stderr, then STOP, and 2.
dns__await() {
	local pid=$1 port=$2 who=$3 stop=$4
	shift 4
	proc_wait_ready "$pid" dns__listening "$port" && return 0
	echo "$who exited or did not answer on 127.0.0.1:$port within 10 s:" >&2
	cat "$@" >&2 2>/dev/null
	"$stop"
	return 2
}

# dns__listening PORT - is something bound to udp 127.0.0.1:PORT and tcp 127.0.0.1:PORT?
dns__listening() {
	local hex
	hex=$(printf '%04X' "$1")
	grep -q "0100007F:$hex 00000000:0000 07" /proc/net/udp 2>/dev/null &&
		grep -q "0100007F:$hex 00000000:0000 0A" /proc/net/tcp 2>/dev/null
}

dns_stop() {
	dns__stop_in DNS_PID DNS_DIR
}

dns_txt() {
	printf '%s\tIN TXT' "$1"
	printf '%s\n' "$2" | fold -w 200 | while IFS= read -r part; do printf ' "%s"' "$part"; done
	printf '\n'
}

dns_wait_free() {
	local i
	for i in $(seq 1 50); do
		dns__listening "$1" || return 0
		sleep 0.1
	done
	return 1
}

# dns__stop_in PIDVAR DIRVAR - stop the server whose pid is in $PIDVAR (that pid only), remove the
# directory in $DIRVAR, empty both; nothing when they are empty (for unbound.sh and a second nsd).
dns__stop_in() {
	local -n pid_ref=$1 dir_ref=$2
	if [ -n "$pid_ref" ]; then
		proc_stop "$pid_ref"
	fi
	if [ -n "$dir_ref" ] && [ -d "$dir_ref" ]; then
		rm -rf "$dir_ref"
	fi
	pid_ref=''
	dir_ref=''
}

dns_query() {
	if command -v dig >/dev/null 2>&1; then
		dig +short -p "$DNS_PORT" @127.0.0.1 "$1" "$2"
	else
		echo "dns_query: dig not installed (Debian package bind9-dnsutils)" >&2
		return 2
	fi
}
