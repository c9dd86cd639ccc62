#!/bin/bash
# header_table.sh - the differential test of the header reader: each odd header section of
# tests/e2e/data/header_cases.sh goes
#   1. straight into a real Postfix (cleanup parses it; local_header_rewrite_clients empty, so it
#      adds no From), which relays to smtp-sink: what Postfix keeps as header fields;
#   2. through mxmoat-proxy in holding mode (auth_inbound=yes) in front of that Postfix;
#   3. through mxmoat-proxy in streaming mode (auth_inbound=no) in front of smtp-sink;
#   4. through mxmoat-check.
# Each gets its exact expected reply or verdict, and the property the table exists for: when
# Postfix keeps the spoofed From of good.test as a header field, mxmoat refused the message; when
# the proxy relays, the copy Postfix delivers has exactly one Authentication-Results of ours,
# which evaluated DMARC for its one From field, and no forged one.
# Ports: 19400 (nsd), 19401 (Postfix), 19402 (Postfix's sink), 19403 (holding proxy),
# 19404 (streaming proxy), 19405 (its sink).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/e2e/data/header_cases.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v smtp-sink >/dev/null && command -v postfix >/dev/null || tap_skip_all "postfix not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "postfix -c and smtp-sink -u need root"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"

DNSP=19400 PF_PORT=19401 PF_SINK_PORT=19402 HP=19403 SP=19404 SS=19405
HOLD_PID=
cleanup() { px_cleanup; [ -z "$HOLD_PID" ] || proc_stop "$HOLD_PID" KILL; pf_stop; dns_stop; }
# tap_unlike NAME TEXT REGEX - TEXT does not match REGEX
tap_unlike() { ! [[ $2 =~ $3 ]]; tap__result $? "$1" "got: '$2'" "must not match: '$3'"; }
port_lock header-table || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"
W=$PX_DIR

{
	printf '$ORIGIN good.test.\n$TTL 300\n'
	printf '@\tIN SOA ns.good.test. hostmaster.good.test. 1 3600 600 86400 300\n@\tIN NS ns\nns\tIN A 127.0.0.1\n'
	printf '@\tIN TXT "v=spf1 ip4:192.0.2.1 -all"\n_dmarc\tIN TXT "v=DMARC1; p=reject"\n'
} >"$W/good.zone"
for i in $(seq 1 50); do dns__listening $DNSP || break; sleep 0.1; done
dns_start $DNSP .="$top_srcdir/tests/e2e/data/root.zone" good.test="$W/good.zone" || tap_bail "nsd did not start"
pf_init "local_header_rewrite_clients =" && pf_sink_start && pf_start || { pf_diag; tap_bail "postfix did not start"; }
AUTH=(-o authserv_id=mx.mxmoat.test -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$DNSP" -o dns_timeout=2s
	-o "proxy_spool_dir=$W")
px_start $HP 127.0.0.1:$PF_PORT "${AUTH[@]}" || { cat "$W/proxy.log"; tap_bail "holding proxy did not start"; }
HOLD_PID=$PX_PID
PX_PID=
px_sink_start $SS || tap_bail "smtp-sink did not start"
px_start $SP 127.0.0.1:$SS -o authserv_id=mx.mxmoat.test || { cat "$W/proxy.log"; tap_bail "streaming proxy did not start"; }

# send PORT MESSAGE - the message (escapes as in header_cases.sh) over SMTP; the reply after the dot
send() {
	px_chat "$1" R S:'EHLO client.example\r\n' R S:'MAIL FROM:<x@example.net>\r\n' R \
		S:'RCPT TO:<b@example.net>\r\n' R S:'DATA\r\n' R S:"$2"'\r\n.\r\n' R S:'QUIT\r\n' R |
		awk '/^<- 354/ { getline; sub(/^<- /, ""); print; exit }'
}
# fields FILE - the header fields of a message Postfix relayed, folding joined
fields() {
	pf_headers "$1" | awk '/^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { if (f != "") print f }'
}
# check MESSAGE - mxmoat-check on the message: its output in $W/check.out, its exit status in CHECK_RC
check() {
	printf '%b' "$1" >"$W/check.msg"
	"$top_builddir/tools/mxmoat-check" --resolver 127.0.0.1@$DNSP -o authserv_id=mx.mxmoat.test \
		-o dns_timeout=2s --client-ip 127.0.0.1 --helo client.example --mail-from x@example.net \
		"$W/check.msg" >"$W/check.out" 2>&1
	CHECK_RC=$?
}

delivered=0
for i in "${!HC_NAME[@]}"; do
	name=${HC_NAME[$i]} msg=${HC_MSG[$i]} want=${HC_PROXY[$i]}

	# 1. Postfix alone: does it keep the spoofed From as a header field?
	spoof_kept=no
	if [[ $(send $PF_PORT "$msg") == 250* ]]; then
		delivered=$((delivered + 1))
		pf_wait_delivered $delivered 20 && pfrom=$(fields "$(pf_delivered_last)" | grep -i '^From *:')
		tap_diag "$name: Postfix alone relays, its From fields: ${pfrom//$'\n'/ | }"
		[[ $pfrom =~ @good\.test ]] && spoof_kept=yes
	else
		tap_diag "$name: Postfix alone refuses it"
	fi

	# 2. holding mode in front of the same Postfix
	reply=$(send $HP "$msg")
	tap_like "$name: holding proxy replies" "$reply" "$want"
	if [ $spoof_kept = yes ]; then
		tap_unlike "$name: Postfix keeps the spoofed From as a field, the proxy refused" "$reply" '^250'
	fi
	if [[ $reply == 250* ]]; then
		delivered=$((delivered + 1))
		if pf_wait_delivered $delivered 20; then
			f=$(fields "$(pf_delivered_last)")
			ours=$(printf '%s\n' "$f" | grep -i '^Authentication-Results *:.*mx\.mxmoat\.test')
			from=$(printf '%s\n' "$f" | grep -i '^From *:' | sed -n 's/.*@\([A-Za-z0-9.-]*\).*/\1/p')
			tap_is "$name: relayed with exactly one A-R of ours" "$(printf '%s\n' "$ours" | grep -c .)" 1
			tap_like "$name: relayed, ours evaluated DMARC for its one From" "$ours" \
				"^Authentication-Results: mx\\.mxmoat\\.test;.*spf=.*dmarc=[a-z]+ .*header\\.from=${from//./\\.}"
			tap_is "$name: relayed, one From field" "$(printf '%s\n' "$from" | grep -c .)" 1
		else
			tap_ok "$name: relayed after 250" false
		fi
	fi

	# 3. streaming mode: no checks configured, the same refusal of what the reader refuses
	case $want in
	*5\\.6\\.0* | *5\\.5\\.2*) swant=$want ;;
	*) swant=$OK ;;
	esac
	tap_like "$name: streaming proxy replies" "$(send $SP "$msg")" "$swant"

	# 4. mxmoat-check
	check "$msg"
	tap_like "$name: mxmoat-check" "$(grep '^verdict: ' "$W/check.out")" "${HC_CHECK[$i]}"
	case ${HC_CHECK[$i]} in
	*accept*) tap_is "$name: mxmoat-check exit status" "$CHECK_RC" 0 ;;
	*) tap_is "$name: mxmoat-check exit status" "$CHECK_RC" 1 ;;
	esac
done

# header_ambiguous_action = tempfail: 451 4.6.0, still never relayed
px_stop
px_start $SP 127.0.0.1:$SS -o authserv_id=mx.mxmoat.test -o header_ambiguous_action=tempfail ||
	tap_bail "streaming proxy did not restart"
before=$(px_dumps)
tap_is "header_ambiguous_action=tempfail: 451 4.6.0" "$(send $SP ' x\r\nFrom: ceo@good.test\r\n\r\nhi\r\n')" \
	"451 4.6.0 Message header refused: header section starts with whitespace"
tap_is "header_ambiguous_action=tempfail: nothing relayed" "$(px_dumps)" "$before"
tap_unlike "no sanitizer report in the proxies' log" "$(cat "$W/proxy.log")" \
	'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'
tap_done
