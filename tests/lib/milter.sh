# milter.sh - start and stop mxmoat-milter for the e2e tests (source it after tap.sh; bash).
#
#   milter_start SOCKET [ARGS...]    run $top_builddir/milter/mxmoat-milter -f on SOCKET with extra
#                                    ARGS (e.g. -o limit_recipients=5 or -c FILE), log to
#                                    $MILTER_LOG; waits (bounded) until the socket accepts.
#                                    MILTER_BIN names another binary (the installed one).
#                                    auth_inbound is set to no before ARGS: tests without a DNS
#                                    fixture must not ask resolv.conf's servers. Tests of the
#                                    authentication engine pass -o auth_inbound=yes together
#                                    with -o dns_resolver=127.0.0.1@PORT of their nsd (dns.sh).
#                                    MXMOAT_MILTER_ENGINE=native (or libmilter) runs every test
#                                    with that milter_engine.
#   milter_stop                      SIGTERM, wait (bounded); sets MILTER_RC to its exit status
#   milter_log_grep REGEX            0 if a line of the milter's log matches
#   milter_sanitizer_clean           0 if ASan/LSan/UBSan reported nothing in the log
#
# MILTER_DIR must be an existing directory for the log (the caller cleans it up).
#
# Tests of the milter behind a real Postfix (they also source postfix.sh; dns.sh if they use nsd):
#   milter_pf_prepare LOCK [CLIENT]  skip the test unless run as root with postfix, CLIENT (the
#                                    SMTP client it drives; swaks by default) and a built
#                                    mxmoat-milter; hold the lock LOCK (port_lock); make
#                                    MILTER_DIR; on EXIT stop the milter, Postfix, nsd, the
#                                    proxy, clamd and rspamd (those of dns.sh, proxy.sh,
#                                    clamd.sh and rspamd.sh, when sourced) and remove MILTER_DIR
#   milter_pf_snippet PORT           the settings of contrib/postfix/main.cf.milter, one a line,
#                                    the milter's socket changed to inet:127.0.0.1:PORT
#   milter_pf_start SMTPD SINK MAIN_CF_LINE...
#                                    Postfix on 127.0.0.1:SMTPD (pf_init with the lines) relaying
#                                    to smtp-sink on 127.0.0.1:SINK; the test bails out if either
#                                    does not start
#   milter_sign_prepare LOCK NSDPORT RSASEL EDSEL
#                                    for the DKIM signing tests: skip unless dkimpy and PyNaCl
#                                    are there; milter_pf_prepare LOCK; cd to MILTER_DIR; there an
#                                    rsa-2048 and an ed25519 key for sign.test (rsa.key, ed.key,
#                                    the keygen's output in rsa.out, ed.out; owned by nobody, who
#                                    runs the milter), the signing table of both (table) and
#                                    sign.test's zone without key records (zone); $keygen is
#                                    mxmoat-keygen, $verify dkimpy asking nsd on NSDPORT

MILTER_PID=
MILTER_RC=

milter__ready() {	# milter__ready SOCKET
	case $1 in
	inet:*)
		local spec=${1#inet:} port host
		port=${spec%@*}; host=${spec#*@}
		(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null ;;
	unix:*) [ -S "${1#unix:}" ] ;;
	*) return 1 ;;
	esac
}

milter_start() {
	local sock=$1; shift
	local started
	MILTER_LOG=$MILTER_DIR/milter.log
	# Ready means "start listening on" logged by this run: it comes after the unix socket's
	# chmod and chown and the privilege drop, which a socket that merely exists does not prove.
	# (With log_format = json the line is {...,"event":"start","msg":"listening on ..."}.)
	local ready=' start listening on |"event":"start","msg":"listening on '
	started=$(grep -cE "$ready" "$MILTER_LOG" 2>/dev/null)
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	"${MILTER_BIN:-$top_builddir/milter/mxmoat-milter}" -f -o "milter_socket=$sock" -o log_target=stderr \
		-o log_verbose=yes -o auth_inbound=no \
		${MXMOAT_MILTER_ENGINE:+-o "milter_engine=$MXMOAT_MILTER_ENGINE"} "$@" >> "$MILTER_LOG" 2>&1 &
	MILTER_PID=$!
	local i
	for i in $(seq 1 600); do
		if [ "$(grep -cE "$ready" "$MILTER_LOG")" -gt "${started:-0}" ] &&
		   milter__ready "$sock"; then
			return 0
		fi
		kill -0 "$MILTER_PID" 2>/dev/null || break
		sleep 0.05
	done
	printf '# milter did not start on %s\n' "$sock"; sed 's/^/# /' "$MILTER_LOG"
	return 1
}

milter_stop() {
	[ -n "$MILTER_PID" ] || return 0
	kill -TERM "$MILTER_PID" 2>/dev/null
	local i
	for i in $(seq 1 100); do
		kill -0 "$MILTER_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$MILTER_PID" 2>/dev/null; then
		kill -KILL "$MILTER_PID" 2>/dev/null
	fi
	wait "$MILTER_PID" 2>/dev/null
	MILTER_RC=$?
	MILTER_PID=
}

milter_log_grep() { grep -qE "$1" "$MILTER_LOG"; }

milter_sanitizer_clean() {
	! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|Sanitizer has encountered|runtime error:' "$MILTER_LOG"
}

# milter_pf_prepare LOCK [CLIENT] - the preamble of a test of the milter behind Postfix
milter_pf_prepare() {
	local client=${2:-swaks}
	[ "$(id -u)" = 0 ] || tap_skip_all "needs root (postfix -c)"
	command -v postfix >/dev/null && command -v "$client" >/dev/null ||
		tap_skip_all "needs postfix and $client"
	[ -x "$top_builddir/milter/mxmoat-milter" ] || tap_bail "mxmoat-milter not built"
	port_lock "$1" || tap_skip_all "another run of this test held its ports for 600 s"
	MILTER_DIR=$(mktemp -d "/tmp/mxmoat-$1.XXXXXX") || tap_bail "no temp dir"
	# Postfix's processes and the milter (as nobody, for the key files) read files there.
	chmod 755 "$MILTER_DIR"
	trap milter__pf_cleanup EXIT
}

milter_sign_prepare() {
	[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK"
	/usr/bin/python3 -c 'import dkim, nacl, dns.resolver' 2>/dev/null ||
		tap_skip_all "python3-dkim/python3-nacl missing"
	milter_pf_prepare "$1"
	cd "$MILTER_DIR" || tap_bail "no $MILTER_DIR"
	keygen=$top_builddir/tools/mxmoat-keygen
	verify="/usr/bin/python3 $top_srcdir/tests/helpers/dkim-verify.py --dns 127.0.0.1@$2"
	"$keygen" -o rsa.key "$3" sign.test >rsa.out && "$keygen" -a ed25519 -o ed.key "$4" sign.test >ed.out ||
		tap_bail "mxmoat-keygen failed"
	chown nobody rsa.key ed.key
	{ tail -n 1 rsa.out; tail -n 1 ed.out; } >table
	chmod 644 table
	cp "$top_srcdir/tests/e2e/data/sign.test.zone" zone
}

milter__pf_cleanup() {
	milter_stop
	pf_stop
	if declare -F px_cleanup >/dev/null; then px_cleanup; fi
	if declare -F dns_stop >/dev/null; then dns_stop; fi
	if declare -F clamd_stop >/dev/null; then clamd_stop; fi
	if declare -F rspamd_stop >/dev/null; then rspamd_stop; fi
	rm -rf "$MILTER_DIR"
}

milter_pf_snippet() {
	grep -v -e '^#' -e '^$' "$top_srcdir/contrib/postfix/main.cf.milter" |
		sed "s/inet:127\.0\.0\.1:8894/inet:127.0.0.1:$1/"
}

milter_pf_start() {
	PF_PORT=$1 PF_SINK_PORT=$2
	shift 2
	pf_init "$@" && pf_sink_start && pf_start || { pf_diag; tap_bail "postfix did not start"; }
}
