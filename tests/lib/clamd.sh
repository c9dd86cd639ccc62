# clamd.sh - a real clamd (Debian's clamav-daemon) for the e2e tests (source it; bash).
#
#   clamd_start
#       Start clamd in the foreground in a private temporary directory (CLAMD_DIR, kept across
#       restarts) on the unix socket $CLAMD_DIR/clamd.sock (mode 666: the daemons run as nobody),
#       with a signature database written here, no download: one body signature, so a message
#       containing MXMOAT-VIRUS-TEST-PATTERN is "Mxmoat.Test.Pattern.UNOFFICIAL FOUND"; and one
#       hash signature, the MD5 of the 68-byte EICAR test file, so an EICAR attachment (clamd
#       decodes the MIME part) is "Eicar-Test-Signature.UNOFFICIAL FOUND". Debian's clamd has no
#       built-in EICAR rule: with only this database (no main.cvd or daily.cvd) the plain file
#       scans "OK" (checked with clamscan 1.4.6), so the test brings its own signature.
#       StreamMaxLength 100M, so a 40 MB message is scanned. Waits (at most 60 s) until it
#       answers PING. Sets CLAMD_SOCK and CLAMD_PID; non-zero with its log on stderr on failure.
#   clamd_eicar FILE
#       Write the EICAR test file (68 bytes) to FILE. It is built from two halves so that this
#       source file itself is not the test file to a scanner on a developer's machine.
#   clamd_set KEY VALUE
#       Set one clamd.conf line (after clamd_start made CLAMD_DIR): it counts from the next
#       clamd_start, e.g. clamd_kill; clamd_set StreamMaxLength 1M; clamd_start.
#   clamd_stall / clamd_resume
#       SIGSTOP / SIGCONT: connections are still accepted by the kernel, nothing is read or
#       answered (a clamd that hangs).
#   clamd_kill
#       Stop it (by its pid only) and wait until it is gone; CLAMD_DIR stays for clamd_start.
#   clamd_stop
#       clamd_kill and remove CLAMD_DIR. Safe to call twice; call it from your EXIT trap.

. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

CLAMD_DIR=
CLAMD_PID=
CLAMD_SOCK=
CLAMD_VIRUS=Mxmoat.Test.Pattern.UNOFFICIAL
CLAMD_EICAR=Eicar-Test-Signature.UNOFFICIAL

clamd_eicar() {
	printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD' '-ANTIVIRUS-TEST-FILE!$H+H*' >"$1"
}

# clamd__ping - PING on the socket answers PONG
clamd__ping() {
	/usr/bin/python3 - "$CLAMD_SOCK" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"zPING\0")
sys.exit(0 if s.recv(16).startswith(b"PONG") else 1)
PY
}

clamd_start() {
	local i hex
	[ -x /usr/sbin/clamd ] || { echo "clamd_start: clamd not installed" >&2; return 2; }
	if [ -z "$CLAMD_DIR" ]; then
		CLAMD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moat-clamd.XXXXXX") || return 2
		chmod 755 "$CLAMD_DIR"
		mkdir -p "$CLAMD_DIR/db" "$CLAMD_DIR/tmp"
		hex=$(printf 'MXMOAT-VIRUS-TEST-PATTERN' | od -An -tx1 | tr -d ' \n')
		printf 'Mxmoat.Test.Pattern:0:*:%s\n' "$hex" >"$CLAMD_DIR/db/mxmoat.ndb"
		# MD5:size:name of the EICAR test file (hash signature, .hdb)
		echo '44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature' >"$CLAMD_DIR/db/eicar.hdb"
		cat >"$CLAMD_DIR/clamd.conf" <<CONF
Foreground yes
LocalSocket $CLAMD_DIR/clamd.sock
LocalSocketMode 666
DatabaseDirectory $CLAMD_DIR/db
TemporaryDirectory $CLAMD_DIR/tmp
LogFile $CLAMD_DIR/clamd.log
PidFile $CLAMD_DIR/clamd.pid
StreamMaxLength 100M
MaxScanSize 200M
MaxFileSize 100M
Bytecode no
SelfCheck 0
User root
CONF
	fi
	CLAMD_SOCK=$CLAMD_DIR/clamd.sock
	rm -f "$CLAMD_SOCK"
	(
		for fd in $(ls "/proc/$BASHPID/fd"); do
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done 2>/dev/null
		exec /usr/sbin/clamd -c "$CLAMD_DIR/clamd.conf" </dev/null >>"$CLAMD_DIR/clamd.out" 2>&1
	) &
	CLAMD_PID=$!
	for i in $(seq 1 600); do
		kill -0 "$CLAMD_PID" 2>/dev/null || break
		[ -S "$CLAMD_SOCK" ] && clamd__ping && return 0
		sleep 0.1
	done
	echo "clamd_start: clamd did not answer on $CLAMD_SOCK" >&2
	cat "$CLAMD_DIR/clamd.out" "$CLAMD_DIR/clamd.log" >&2 2>/dev/null
	clamd_kill
	return 1
}

clamd_set() {
	sed -i "/^$1 /d" "$CLAMD_DIR/clamd.conf" && echo "$1 $2" >>"$CLAMD_DIR/clamd.conf"
}

clamd_stall() { kill -STOP "$CLAMD_PID"; }
clamd_resume() { kill -CONT "$CLAMD_PID"; }

clamd_kill() {
	[ -n "$CLAMD_PID" ] || return 0
	kill -CONT "$CLAMD_PID" 2>/dev/null
	proc_stop "$CLAMD_PID"
	CLAMD_PID=
}

clamd_stop() {
	clamd_kill
	[ -n "$CLAMD_DIR" ] && rm -rf "$CLAMD_DIR"
	CLAMD_DIR=
}
