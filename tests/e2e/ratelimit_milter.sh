#!/bin/bash
# ratelimit_milter.sh - rate limits in mxmoat-milter behind a real Postfix, swaks as the client:
# connections per address (3/60s: the 4th session is refused with the milter's 421), the allow
# list (pf_start's probes from 127.0.0.1 are not counted), messages
# per envelope sender across sessions (451 4.7.1 at the first RCPT, the stage the core charges the
# message buckets at in both daemons), one log line per refused key.
# Ports: 16310 (smtpd), 16311 (sink), 16312 (milter inet).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
top_builddir=${top_builddir:-.}
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
milter_pf_prepare ratelimit-milter

conf=$MILTER_DIR/mxmoat.conf
# The test's client connects from 127.0.0.2; 127.0.0.1 (pf_start's readiness probes) stays
# allow-listed, which also shows the allow list at work.
printf 'ratelimit_allow = 127.0.0.1\nratelimit_conn_per_ip = 3/60s\nratelimit_msg_per_sender = 2/60s\n' > "$conf"
tap_ok "milter starts with rate limits" milter_start inet:16312@127.0.0.1 -c "$conf"

mapfile -t snippet < <(milter_pf_snippet 16312)
milter_pf_start 16310 16311 "${snippet[@]}"

send() {	# send FROM SUBJECT
	swaks --server 127.0.0.1:16310 --local-interface 127.0.0.2 --from "$1" --to b@example.net --header "Subject: $2" \
		--body "rate $2" 2>&1
}
out=$(send s1@example.org one)
tap_like "session 1: queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
out=$(send s1@example.org two)
tap_like "session 2: queued (second message of s1@example.org)" "$out" "<-  250 2\.0\.0 Ok: queued as"
out=$(send S1@Example.ORG three)
tap_like "session 3: the sender's third message: MAIL accepted, 451 4.7.1 at its first RCPT" "$out" \
	$'MAIL FROM:<S1@Example.ORG>\n<-  250 [^\n]*\n -> RCPT TO:<b@example\.net>\n<\\*\\* 451 4\\.7\\.1 Too many messages from this sender'
out=$(send s2@example.org four)
# Postfix answers a milter's refusal at connect with its own 421 text and logs the milter's.
tap_like "session 4: the 4th connection from 127.0.0.2 gets 421" "$out" "<\\*\\* 421 "
tap_ok "session 4: Postfix logged the milter's 421 4.7.0" pf_maillog_grep \
	"milter-reject: CONNECT from [^:]*127\\.0\\.0\\.2\\]: 421 4\\.7\\.0 Too many connections from your address"

tap_unlike() { [[ ! $2 =~ $3 ]]; tap__result $? "$1" "got:  '$2'" "must not match: '$3'"; }
tap_unlike "session 4: nothing queued" "$out" "queued as"
out=$(send s2@example.org five)
tap_like "session 5: still 421" "$out" "<\\*\\* 421 "
tap_ok "two messages relayed" pf_wait_delivered 2 20
sleep 1
tap_is "two messages relayed, no more" "$(pf_delivered_count)" 2
tap_is "the refused address is logged once" "$(grep -c 'limit=ratelimit_conn_per_ip key="cip:127.0.0.2"' "$MILTER_LOG")" 1
tap_ok "the milter logged the 421 per session" milter_log_grep "tempfail stage=connect code=421 status=4.7.0 reason=ratelimit_conn_per_ip"
[ "$TAP_FAILED" = 0 ] || { tail -n 30 "$MILTER_LOG"; pf_maillog | tail -n 20; } | sed "s/^/# /"
tap_done
