#!/bin/bash
# quickstart.sh - contrib/quickstart.sh as the README tells a new user to run it, against the
# already-built tree (MXMOAT_QUICKSTART_BUILDDIR: no package install, no build) on test ports:
# - nothing answers at the backend address: the script starts a throwaway smtp-sink, says so and
#   where the mail goes; its first line is no error, the README's swaks line gets 250, the relayed
#   copy in the mail folder carries mxmoat's Received and Authentication-Results fields; SIGTERM
#   stops the proxy and the sink (exit 0, both ports closed);
# - an MTA answers at the backend address: the script relays to it and starts no sink.
# nsd serves only the root zone, so quickstart.test is NXDOMAIN as on the internet (RFC 6761).
# Ports: 18610 (proxy), 18611 (backend address), 18612 (throwaway sink), 18613 (nsd).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/dns.sh"

[ -n "$MXMOAT_QUICK" ] && tap_skip_all "MXMOAT_QUICK: starts nsd and smtp-sink"
command -v swaks >/dev/null || tap_skip_all "needs swaks"
command -v smtp-sink >/dev/null || [ -x /usr/sbin/smtp-sink ] || tap_skip_all "needs smtp-sink (postfix)"
PATH=$PATH:/usr/sbin
[ -x /usr/sbin/nsd ] || tap_skip_all "needs nsd"
[ -x "$top_builddir/proxy/mxmoat-proxy" ] || tap_bail "mxmoat-proxy not built"
port_lock quickstart || tap_skip_all "another run of this test held its ports for 600 s"

P=18610 B=18611 S=18612 D=18613
QS_PID=
# qs_stop: SIGTERM to the quickstart, bounded wait (10 s, then SIGKILL); sets QS_RC.
qs_stop() {
	local i
	kill -TERM "$QS_PID" 2>/dev/null
	for i in $(seq 1 200); do
		kill -0 "$QS_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$QS_PID" 2>/dev/null
	wait "$QS_PID"
	QS_RC=$?
	QS_PID=
}
cleanup() {
	[ -n "$QS_PID" ] && qs_stop
	px_cleanup
	dns_stop
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"
dns_start $D .="$top_srcdir/tests/e2e/data/root.zone" || tap_bail "nsd did not start"

# qs_start NAME: run the quickstart in the background, output in $PX_DIR/NAME.out, its directory
# $PX_DIR/NAME; wait (bounded) until the proxy accepts.
qs_start() {
	MXMOAT_QUICKSTART_BUILDDIR=$top_builddir MXMOAT_QUICKSTART_DIR=$PX_DIR/$1 \
		MXMOAT_QUICKSTART_SINK=127.0.0.1:$S "$top_srcdir/contrib/quickstart.sh" \
		-o proxy_listen=127.0.0.1:$P -o proxy_backend=127.0.0.1:$B -o dns_resolver=127.0.0.1@$D \
		>"$PX_DIR/$1.out" 2>&1 &
	QS_PID=$!
	proc_wait_ready "$QS_PID" bash -c "exec 3<>/dev/tcp/127.0.0.1/$P" 2>/dev/null
}

# The README's swaks line, sent to this test's port.
readme_swaks=$(grep -m1 -E '^ +swaks --server 127\.0\.0\.1:10025 ' "$top_srcdir/README.md" | sed 's/^ *//')
tap_like "README: the swaks line after the quickstart" "$readme_swaks" '^swaks --server 127\.0\.0\.1:10025 '
read -r -a swaks_args <<<"${readme_swaks/127.0.0.1:10025/127.0.0.1:$P}"

# --- nothing at the backend address: a throwaway smtp-sink ---
qs_start fresh || { cat "$PX_DIR/fresh.out"; tap_bail "the quickstart did not start the proxy"; }
out=$(cat "$PX_DIR/fresh.out")
tap_like "fresh: the first line says what it does, no error" "$(head -1 <<<"$out")" \
	"^quickstart: nothing answers at 127\\.0\\.0\\.1:$B: relaying instead to a throwaway backend, Postfix's smtp-sink on 127\\.0\\.0\\.1:$S"
tap_like "fresh: it names the mail folder" "$out" "quickstart: every message it accepts is written to $PX_DIR/fresh/mail/"
tap_is "fresh: no error or warning line" "$(grep -ciE 'error|warning|no such file|denied' <<<"$out")" 0
reply=$("${swaks_args[@]}" 2>&1)
tap_like "fresh: the README's swaks message gets 250" "$reply" $'\n<-  250 2\\.0\\.0 Ok'
copies=("$PX_DIR"/fresh/mail/*)
tap_is "fresh: one relayed copy in the mail folder" "${#copies[@]}" 1
copy=$(tr -d '\r' <"${copies[0]}" 2>/dev/null)
tap_like "fresh: the copy has mxmoat's Received field" "$copy" \
	$'\nReceived: from [^\n]* \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\tby [^ ]+ \\(mxmoat\\) with ESMTP id [0-9A-F]{12};'
tap_like "fresh: the copy has mxmoat's Authentication-Results field" "$copy" \
	$'\nAuthentication-Results: [^;\n]+;\n\tspf=none reason="no SPF record at quickstart\\.test" smtp\\.mailfrom=sender@quickstart\\.test;\n\tspf=none smtp\\.helo=[^;\n]+;\n\tdkim=none;\n\tarc=none;\n\tdmarc=none reason="no DMARC record for quickstart\\.test or its parents" header\\.from=quickstart\\.test\n'
tap_like "fresh: the message follows the fields" "$copy" $'\nFrom: sender@quickstart\\.test\n'
qs_stop
tap_is "fresh: SIGTERM: the quickstart exits 0" "$QS_RC" 0
tap_ok "fresh: the proxy's port is closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null"
tap_ok "fresh: the throwaway sink is stopped" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$S) 2>/dev/null"

# --- an MTA at the backend address: it is used, no sink ---
px_sink_start $B || tap_bail "smtp-sink did not start"
qs_start mta || { cat "$PX_DIR/mta.out"; tap_bail "the quickstart did not start the proxy"; }
tap_like "mta: it relays to the MTA it found" "$(head -1 "$PX_DIR/mta.out")" \
	"^quickstart: relaying to the MTA at 127\\.0\\.0\\.1:$B: 220 "
reply=$("${swaks_args[@]}" 2>&1)
tap_like "mta: the README's swaks message gets 250" "$reply" $'\n<-  250 2\\.0\\.0 Ok'
tap_is "mta: the MTA got it" "$(px_dumps)" 1
tap_is "mta: nothing in the quickstart's mail folder" "$(find "$PX_DIR/mta/mail" -type f | wc -l)" 0
tap_ok "mta: no throwaway sink was started" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$S) 2>/dev/null"
qs_stop
tap_is "mta: SIGTERM: the quickstart exits 0" "$QS_RC" 0
tap_is "no sanitizer report" "$(cat "$PX_DIR"/*.out | grep -c 'AddressSanitizer\|runtime error')" 0
tap_done
