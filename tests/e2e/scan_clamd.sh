#!/bin/bash
# scan_clamd.sh - virus scanning with a real clamd (Debian's clamav-daemon, tests/lib/clamd.sh: a
# unix socket in a temporary directory, a body signature for MXMOAT-VIRUS-TEST-PATTERN written by
# the fixture) through mxmoat-milter behind a real Postfix and through mxmoat-proxy in front of
# smtp-sink. In each daemon: a clean message passes; an infected one gets 554 5.7.1 naming the
# signature at end of data and is not relayed; scan_virus_action = tag relays it with our
# X-Virus-Status and without the one the sender wrote; quarantine holds it (Postfix's hold queue;
# the proxy relays and logs it); a stalled clamd (SIGSTOP) costs scan_timeout and gives 451 4.3.0;
# a killed clamd gives 451 4.3.0, or 250 under scan_failure = accept; the failure is logged once.
# A message longer than clamd's StreamMaxLength (1M here, 2 MB sent) is a failure, 451 4.3.0: it
# does not pass unscanned.
# The EICAR test file as an attachment gets 554 5.7.1 naming Eicar-Test-Signature: Debian's clamd
# has no built-in EICAR rule, so that is the hash signature the fixture writes (tests/lib/clamd.sh).
# Ports: 18760 (smtpd), 18761 (sink), 18762 (milter), 18763 (proxy), 18764 (proxy's sink).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
. "${top_srcdir:-.}/tests/lib/clamd.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/clamd ] || tap_skip_all "clamd (clamav-daemon) not installed"
milter_pf_prepare scan-clamd
clamd_start || tap_bail "clamd did not start"

PATTERN=MXMOAT-VIRUS-TEST-PATTERN
virus_re='Virus found: Mxmoat\.Test\.Pattern\.UNOFFICIAL'
eicar_re='Virus found: Eicar-Test-Signature\.UNOFFICIAL'
EICAR=$MILTER_DIR/eicar.com
clamd_eicar "$EICAR"

seq 1 120000 | sed 's/^/filler line /' >"$MILTER_DIR/big.txt"   # 2.3 MB

# past_stream_max NAME PORT LOG - clamd restarted with StreamMaxLength 1M: the 2 MB message is a
# clamd failure (clamd's ERROR, or the connection it closed), 451 4.3.0; then clamd as before
past_stream_max() {
	local out
	clamd_kill
	clamd_set StreamMaxLength 1M
	clamd_start || tap_bail "clamd did not start with StreamMaxLength 1M"
	out=$(send "$2" big "$MILTER_DIR/big.txt")
	tap_like "$1, past clamd's StreamMaxLength: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
	tap_like "$1, past clamd's StreamMaxLength: logged clamd=failed" "$(cat "$3")" \
		' scan clamd=failed clamd_why="[^"]+" rspamd=off verdict=tempfail reason=scan_failed'
	clamd_kill
	clamd_set StreamMaxLength 100M
	clamd_start || tap_bail "clamd did not start again"
}

# send PORT SUBJECT BODY [SWAKS-ARGS...] - one message, swaks' transcript on stdout
send() {
	local port=$1 subject=$2 body=$3
	shift 3
	swaks --server "127.0.0.1:$port" --from alice@example.org --to bob@example.net \
		--header "Subject: $subject" --body "$body" "$@" 2>&1
}

# milter_restart ARGS... - the milter again, scanning with clamd, with ARGS
milter_restart() {
	milter_stop
	milter_start inet:18762@127.0.0.1 -o "scan_clamd=unix:$CLAMD_SOCK" -o scan_timeout=4s "$@" ||
		tap_bail "milter did not start"
}

# ---- mxmoat-milter behind Postfix ----
milter_restart
milter_pf_start 18760 18761 "smtpd_milters = inet:127.0.0.1:18762" "milter_default_action = tempfail" \
	"milter_protocol = 6"

out=$(send 18760 clean "nothing to see")
tap_like "milter, clean: 250 queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "milter, clean: relayed" pf_wait_delivered 1 20
tap_ok "milter, clean: logged clamd=clean" milter_log_grep ' scan clamd=clean rspamd=off verdict=continue'

out=$(send 18760 infected "hello $PATTERN bye")
tap_like "milter, infected: 554 5.7.1 naming the signature at end of data" "$out" "<\*\* 554 5\.7\.1 $virus_re"
tap_ok "milter, infected: logged with the signature" \
	milter_log_grep ' scan clamd=infected virus="Mxmoat\.Test\.Pattern\.UNOFFICIAL" rspamd=off verdict=reject reason=virus'
out=$(send 18760 eicar "see the attachment" --attach "$EICAR")
tap_like "milter, EICAR attached: 554 5.7.1 naming the signature" "$out" "<\*\* 554 5\.7\.1 $eicar_re"
past_stream_max milter 18760 "$MILTER_LOG"

milter_restart -o scan_virus_action=tag
out=$(send 18760 tagged "hello $PATTERN" --add-header "X-Virus-Status: Clean")
tap_like "milter, tag: 250" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "milter, tag: relayed" pf_wait_delivered 2 20
hdr=$(pf_headers "$(pf_delivered_last)")
tap_is "milter, tag: one X-Virus-Status, ours" "$(printf '%s\n' "$hdr" | grep -i '^X-Virus-Status:')" \
	"X-Virus-Status: Infected (Mxmoat.Test.Pattern.UNOFFICIAL)"

milter_restart -o scan_virus_action=quarantine
out=$(send 18760 quarantined "hello $PATTERN")
qid=$(printf '%s\n' "$out" | sed -n 's/.*queued as \([0-9A-F]*\).*/\1/p')
tap_like "milter, quarantine: 250" "$out" "<-  250 2\.0\.0 Ok: queued as"
for i in $(seq 1 50); do
	pf_maillog_grep "$qid: milter-hold: END-OF-MESSAGE" && break
	sleep 0.1
done
tap_is "milter, quarantine: in Postfix's hold queue" \
	"$(postqueue -c "$PF_CONF" -p 2>&1 | grep -c "^$qid!")" 1

milter_restart
clamd_stall
t0=$(date +%s%N)
out=$(send 18760 stalled "hello")
t1=$(date +%s%N)
tap_like "milter, clamd stalled: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
ms=$(((t1 - t0) / 1000000))
tap_ok "milter, clamd stalled: answered after scan_timeout (4 s), within 30 s (${ms} ms)" \
	test "$ms" -ge 3900 -a "$ms" -lt 30000
tap_ok "milter, clamd stalled: the timeout is logged" milter_log_grep 'clamd=failed clamd_why="timed out'
clamd_resume

clamd_kill
out=$(send 18760 killed "hello")
tap_like "milter, clamd killed: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
out=$(send 18760 killed2 "hello")
tap_like "milter, clamd still down: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
# in this milter's run (the log has earlier runs' lines: past_stream_max's failure logged one)
tap_is "milter: clamd down is logged once (scan-down)" \
	"$(awk '/ start listening on /{ n = 0 } / scan-down scanner=clamd /{ n++ } END { print n + 0 }' "$MILTER_LOG")" 1
milter_restart -o scan_failure=accept
n=$(pf_delivered_count)
out=$(send 18760 accepted "hello")
tap_like "milter, clamd killed, scan_failure=accept: 250" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "milter, scan_failure=accept: relayed" pf_wait_delivered $((n + 1)) 20
tap_ok "milter, scan_failure=accept: logged clamd=failed, verdict=continue" \
	milter_log_grep ' scan clamd=failed clamd_why="connect: .*verdict=continue'
milter_stop
tap_is "milter: exit 0" "$MILTER_RC" 0
tap_ok "milter: no sanitizer report" milter_sanitizer_clean

# ---- mxmoat-proxy (holding mode) in front of smtp-sink ----
clamd_start || tap_bail "clamd did not start again"
px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"
px_sink_start 18764 || tap_bail "smtp-sink did not start"
# px_restart ARGS... - the proxy again, scanning with clamd, with ARGS
px_restart() {
	px_stop
	px_start 18763 127.0.0.1:18764 -o "scan_clamd=unix:$CLAMD_SOCK" -o scan_timeout=4s \
		-o "proxy_spool_dir=$PX_DIR/spool" "$@" || tap_bail "proxy did not start"
}
px_restart

out=$(send 18763 clean "nothing to see")
tap_like "proxy, clean: relayed (250 from the sink)" "$out" "<-  250 2\.0\.0 Ok"
tap_is "proxy, clean: the sink has it" "$(px_dumps)" 1
tap_like "proxy, clean: logged clamd=clean" "$(cat "$PX_DIR/proxy.log")" ' scan clamd=clean rspamd=off verdict=continue'

out=$(send 18763 infected "hello $PATTERN bye")
tap_like "proxy, infected: 554 5.7.1 naming the signature at end of data" "$out" "<\*\* 554 5\.7\.1 $virus_re"
tap_is "proxy, infected: not relayed" "$(px_dumps)" 1
out=$(send 18763 eicar "see the attachment" --attach "$EICAR")
tap_like "proxy, EICAR attached: 554 5.7.1 naming the signature" "$out" "<\*\* 554 5\.7\.1 $eicar_re"
tap_is "proxy, EICAR attached: not relayed" "$(px_dumps)" 1
past_stream_max proxy 18763 "$PX_DIR/proxy.log"
tap_is "proxy, past clamd's StreamMaxLength: not relayed" "$(px_dumps)" 1

px_restart -o scan_virus_action=tag
out=$(send 18763 tagged "hello $PATTERN" --add-header "X-Virus-Status: Clean")
tap_like "proxy, tag: relayed" "$out" "<-  250 2\.0\.0 Ok"
dump=$(ls -1tr "$PX_DIR"/dump/* | tail -n 1)
tap_is "proxy, tag: one X-Virus-Status, ours" "$(pf_headers "$dump" | grep -i '^X-Virus-Status:')" \
	"X-Virus-Status: Infected (Mxmoat.Test.Pattern.UNOFFICIAL)"

px_restart -o scan_virus_action=quarantine
out=$(send 18763 quarantined "hello $PATTERN")
tap_like "proxy, quarantine: relayed (the proxy has no hold queue)" "$out" "<-  250 2\.0\.0 Ok"
tap_like "proxy, quarantine: logged verdict=quarantine reason=virus" "$(cat "$PX_DIR/proxy.log")" \
	' scan clamd=infected .*verdict=quarantine reason=virus'

px_restart
clamd_stall
t0=$(date +%s%N)
out=$(send 18763 stalled "hello")
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
tap_like "proxy, clamd stalled: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
tap_ok "proxy, clamd stalled: answered after scan_timeout (4 s), within 30 s (${ms} ms)" \
	test "$ms" -ge 3900 -a "$ms" -lt 30000
clamd_resume
clamd_kill
out=$(send 18763 killed "hello")
tap_like "proxy, clamd killed: 451 4.3.0" "$out" "<\*\* 451 4\.3\.0 Content scanner unavailable"
px_restart -o scan_failure=accept
n=$(px_dumps)
out=$(send 18763 accepted "hello")
tap_like "proxy, clamd killed, scan_failure=accept: relayed" "$out" "<-  250 2\.0\.0 Ok"
tap_is "proxy, scan_failure=accept: the sink has it" "$(px_dumps)" $((n + 1))
px_stop
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
tap_done
