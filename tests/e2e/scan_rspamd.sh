#!/bin/bash
# scan_rspamd.sh - spam checks with a real rspamd (Debian's rspamd, tests/lib/rspamd.sh: its
# normal worker on loopback, a test prefilter that forces each action on a pattern in the message)
# through mxmoat-milter behind a real Postfix and through mxmoat-proxy in front of smtp-sink.
# Every action is mapped, in both daemons: reject 550 5.7.1, soft reject and greylist 451 4.7.1,
# add header X-Spam-Status/X-Spam-Score (the sender's own removed), rewrite subject, no action
# passes unchanged; score and symbols are in the log line. With clamd beside it (both at once),
# a virus that rspamd also rejects gets clamd's 554, the first of two equally severe verdicts.
# With auth_inbound, rspamd is asked after SPF/DKIM/DMARC and gets our Authentication-Results
# as a request header (its test rule MXMOAT_AR echoes it into rspamd's log), in both daemons; the
# milter's copy of the message for it spools past milter_hold_memory. A message the auth row has
# already rejected is not sent to rspamd (its log has no request for it), in both daemons.
# rspamd killed: 451 4.3.0, or 250 under scan_failure = accept.
# Ports: 18770 (smtpd), 18771 (sink), 18772 (milter), 18773 (proxy), 18774 (proxy's sink),
# 18775 (rspamd), 18776 (nsd).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/clamd.sh"
. "${top_srcdir:-.}/tests/lib/rspamd.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v rspamd >/dev/null || tap_skip_all "rspamd not installed"
[ -x /usr/sbin/clamd ] || tap_skip_all "clamd (clamav-daemon) not installed"
milter_pf_prepare scan-rspamd
rspamd_start 18775 || tap_bail "rspamd did not start"
clamd_start || tap_bail "clamd did not start"
dns_start 18776 .="$top_srcdir/tests/e2e/data/root.zone" || tap_bail "nsd did not start"

# send PORT SUBJECT BODY [SWAKS-ARGS...] - one message, swaks' transcript on stdout
send() {
	local port=$1 subject=$2 body=$3
	shift 3
	swaks --server "127.0.0.1:$port" --from alice@example.org --to bob@example.net,carol@example.net \
		--header "Subject: $subject" --body "$body" "$@" 2>&1
}

# actions NAME PORT LOG COUNT LAST - every rspamd action through one daemon; COUNT prints how many
# messages were relayed so far, LAST the path of the newest, LOG is the daemon's log file
actions() {
	local name=$1 port=$2 log=$3 count=$4 last=$5 out hdr n

	out=$(send "$port" "plain" "MXMOAT-RSPAMD-REJECT")
	tap_like "$name, reject: 550 5.7.1 at end of data" "$out" "<\*\* 550 5\.7\.1 Message rejected as spam"
	out=$(send "$port" "plain" "MXMOAT-RSPAMD-SOFT-REJECT")
	tap_like "$name, soft reject: 451 4.7.1" "$out" "<\*\* 451 4\.7\.1 Try again later"
	out=$(send "$port" "plain" "MXMOAT-RSPAMD-GREYLIST")
	tap_like "$name, greylist: 451 4.7.1" "$out" "<\*\* 451 4\.7\.1 Greylisted, try again later"

	n=$($count)
	out=$(send "$port" "plain" "MXMOAT-RSPAMD-ADD-HEADER" --add-header "X-Spam-Status: No, forged" \
		--add-header "X-Spam-Score: -100")
	tap_like "$name, add header: 250" "$out" "<-  250 2\.0\.0 Ok"
	relayed $((n + 1))
	hdr=$(pf_headers "$($last)")
	tap_is "$name, add header: X-Spam-Status is ours only" \
		"$(printf '%s\n' "$hdr" | grep -i '^X-Spam-Status:')" "X-Spam-Status: Yes, score=2.50 required=15.00"
	tap_is "$name, add header: X-Spam-Score is ours only" \
		"$(printf '%s\n' "$hdr" | grep -i '^X-Spam-Score:')" "X-Spam-Score: 2.50"

	out=$(send "$port" "original subject" "MXMOAT-RSPAMD-REWRITE-SUBJECT")
	tap_like "$name, rewrite subject: 250" "$out" "<-  250 2\.0\.0 Ok"
	relayed $((n + 2))
	tap_is "$name, rewrite subject: one Subject, rewritten" \
		"$(pf_headers "$($last)" | grep -i '^Subject:')" "Subject: ***SPAM*** original subject"

	out=$(send "$port" "fine" "nothing special" --add-header "X-Spam-Status: No, forged")
	tap_like "$name, no action: 250" "$out" "<-  250 2\.0\.0 Ok"
	relayed $((n + 3))
	hdr=$(pf_headers "$($last)")
	tap_is "$name, no action: Subject unchanged" "$(printf '%s\n' "$hdr" | grep -i '^Subject:')" "Subject: fine"
	tap_is "$name, no action: no X-Spam field (the forged one removed)" \
		"$(printf '%s\n' "$hdr" | grep -ci '^X-Spam-')" 0

	tap_like "$name: the log has action, score and symbols" "$(cat "$log")" \
		' scan clamd=off rspamd=reject score=2\.50 required=15\.00 symbols="MXMOAT_TEST_PATTERN" verdict=reject reason=spam'
	tap_like "$name: no action is logged too" "$(cat "$log")" \
		' scan clamd=off rspamd=no_action score=0\.00 required=15\.00 symbols="[^"]*" verdict=continue reason=-'
}

# authres NAME PORT LOG - a message through a daemon with auth_inbound: rspamd got our A-R, the
# value the daemon logged, as its request header (rspamd's log has it as MXMOAT_AR's option)
authres() {
	local name=$1 port=$2 log=$3 out ar

	out=$(send "$port" "authres" "nothing special")
	tap_like "$name, auth_inbound: 250" "$out" "<-  250 2\.0\.0 Ok"
	# the log line escapes the value's quotes as \x22; rspamd's log has them as they are
	ar=$(grep -o ' auth verdict=[a-z]* reason=[^ ]* ar="[^"]*"' "$log" | tail -n 1 | sed 's/.* ar="//; s/"$//')
	ar=$(printf '%b' "$ar")
	tap_like "$name: our A-R was made" "$ar" \
		'^mx\.mxmoat\.test; spf=none reason="[^"]*" smtp\.mailfrom=alice@example\.org; .*dmarc=none'
	tap_ok "$name: rspamd got it as a request header" \
		grep -qF "MXMOAT_AR(0.00){$ar;}" "$RSPAMD_DIR/run/rspamd.log"
	tap_like "$name: its symbol is in our scan line" "$(grep ' scan clamd=' "$log" | tail -n 1)" \
		'rspamd=no_action score=0\.00 required=15\.00 symbols="[^"]*MXMOAT_AR[^"]*"'
}
# rspamd_logged TEXT - rspamd's log has TEXT (it may write a task's line after its answer)
rspamd_logged() {
	for i in $(seq 1 100); do
		grep -qF "$1" "$RSPAMD_DIR/run/rspamd.log" && return 0
		sleep 0.1
	done
	return 1
}

# final NAME PORT LOG - with dmarc_force_reject=example.com, a message From example.com is
# rejected by the auth row (550 5.7.1) and never reaches rspamd: a message sent after it (From
# example.org, passed) is in rspamd's log, the rejected one's Message-Id is not
final() {
	local name=$1 port=$2 log=$3 out id="final-$1-$$"

	out=$(swaks --server "127.0.0.1:$port" --from mallory@example.com --to bob@example.net \
		--header "Message-Id: <$id-rejected@example.com>" --body "MXMOAT-RSPAMD-ADD-HEADER" 2>&1)
	tap_like "$name, auth row rejects: 550 5.7.1 from DMARC" "$out" \
		"<\*\* 550 5\.7\.1 Message rejected: unauthenticated mail from example\.com"
	out=$(send "$port" "after" "nothing special" --header "Message-Id: <$id-passed@example.org>")
	tap_like "$name, the next message: 250" "$out" "<-  250 2\.0\.0 Ok"
	tap_ok "$name: rspamd was asked about the next message" rspamd_logged "id: <$id-passed@example.org>"
	tap_is "$name: rspamd was not asked about the rejected one" \
		"$(grep -cF "$id-rejected@" "$RSPAMD_DIR/run/rspamd.log")" 0
	tap_like "$name: the scan line says the scanners were skipped" "$(cat "$log")" \
		' scan clamd=off rspamd=skipped verdict=reject reason=dmarc_force_reject'
}
AUTH_OPTS=(-o auth_inbound=yes -o authserv_id=mx.mxmoat.test -o dns_resolver=127.0.0.1@18776)

# ---- mxmoat-milter behind Postfix ----
milter_restart() {
	milter_stop
	milter_start inet:18772@127.0.0.1 -o scan_rspamd=127.0.0.1:18775 -o scan_timeout=10s "$@" ||
		tap_bail "milter did not start"
}
milter_restart
milter_pf_start 18770 18771 "smtpd_milters = inet:127.0.0.1:18772" "milter_default_action = tempfail" \
	"milter_protocol = 6"
# relayed N - N messages in the sink, the newest written to its end (it has its header block)
relayed() {
	pf_wait_delivered "$1" 20 || return 1
	for i in $(seq 1 100); do
		pf_headers "$(pf_delivered_last)" | grep -q '^Subject:' && return 0
		sleep 0.1
	done
}
actions milter 18770 "$MILTER_LOG" pf_delivered_count pf_delivered_last
tap_like "milter: rspamd was told the envelope" \
	"$(grep -h 'rcpts:' "$RSPAMD_DIR/run/rspamd.log" | tail -n 1)" 'ip: 127\.0\.0\.1, from: <alice@example\.org>, .* rcpts: <bob@example\.net,carol@example\.net>'

milter_restart "${AUTH_OPTS[@]}"
authres milter 18770 "$MILTER_LOG"
milter_restart "${AUTH_OPTS[@]}" -o dmarc_force_reject=example.com
final milter 18770 "$MILTER_LOG"

# the milter's copy for rspamd past milter_hold_memory: spooled, read back whole (the pattern is
# in its last line); a spool directory that does not exist fails rspamd for the message
seq 1 20000 | sed 's/^/filler line /' >"$MILTER_DIR/big.txt"
echo "MXMOAT-RSPAMD-REJECT" >>"$MILTER_DIR/big.txt"
mkdir -p "$MILTER_DIR/spool" && chmod 777 "$MILTER_DIR/spool"
milter_restart -o milter_hold_memory=4k -o "milter_spool_dir=$MILTER_DIR/spool"
out=$(send 18770 "large" "$MILTER_DIR/big.txt")
tap_like "milter, copy spooled (300 KB, milter_hold_memory=4k): rspamd read all of it: 550 5.7.1" \
	"$out" "<\*\* 550 5\.7\.1 Message rejected as spam"
milter_restart -o milter_hold_memory=4k -o milter_spool_dir=/nonexistent/mxmoat-spool
tap_ok "milter, milter_spool_dir missing: logged at start" milter_log_grep ' start error="[^"]*/nonexistent/mxmoat-spool'
out=$(send 18770 "large" "$MILTER_DIR/big.txt")
tap_like "milter, copy cannot be spooled: rspamd failed, 451 4.3.0" "$out" \
	"<\*\* 451 4\.3\.0 Content scanner unavailable"
tap_ok "milter, copy cannot be spooled: the reason is logged" milter_log_grep \
	' scan clamd=off rspamd=failed rspamd_why="no copy of the message to send" verdict=tempfail'

milter_restart -o "scan_clamd=unix:$CLAMD_SOCK"
out=$(send 18770 both "MXMOAT-VIRUS-TEST-PATTERN MXMOAT-RSPAMD-REJECT")
tap_like "milter, virus and spam: clamd's 554 (both ran)" "$out" "<\*\* 554 5\.7\.1 Virus found: "
tap_ok "milter, virus and spam: one line with both answers" \
	milter_log_grep ' scan clamd=infected virus="Mxmoat\.Test\.Pattern\.UNOFFICIAL" rspamd=reject score=2\.50 .*verdict=reject reason=virus'

# ---- mxmoat-proxy (holding mode) in front of smtp-sink ----
px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"
px_sink_start 18774 || tap_bail "smtp-sink did not start"
px_restart() {
	px_stop
	px_start 18773 127.0.0.1:18774 -o scan_rspamd=127.0.0.1:18775 -o scan_timeout=10s \
		-o "proxy_spool_dir=$PX_DIR/spool" "$@" || tap_bail "proxy did not start"
}
px_last() { ls -1tr "$PX_DIR"/dump/* | tail -n 1; }
px_restart
relayed() { :; } # the sink's 250 came through the proxy: the dump is there
actions proxy 18773 "$PX_DIR/proxy.log" px_dumps px_last
px_restart "${AUTH_OPTS[@]}"
authres proxy 18773 "$PX_DIR/proxy.log"
px_restart "${AUTH_OPTS[@]}" -o dmarc_force_reject=example.com
final proxy 18773 "$PX_DIR/proxy.log"

# ---- rspamd down ----
rspamd_kill
out=$(send 18773 down "hello")
tap_like "proxy, rspamd killed: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
out=$(send 18770 down "hello")
tap_like "milter, rspamd killed: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
tap_ok "milter, rspamd killed: the reason is logged" milter_log_grep ' scan-down scanner=rspamd why="'
px_restart -o scan_failure=accept
out=$(send 18773 down "hello")
tap_like "proxy, rspamd killed, scan_failure=accept: relayed" "$out" "<-  250 2\.0\.0 Ok"
milter_restart -o scan_failure=accept
out=$(send 18770 down "hello")
tap_like "milter, rspamd killed, scan_failure=accept: 250" "$out" "<-  250 2\.0\.0 Ok: queued as"

px_stop
milter_stop
tap_ok "milter: no sanitizer report" milter_sanitizer_clean
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
