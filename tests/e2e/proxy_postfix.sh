#!/bin/bash
# proxy_postfix.sh - mxmoat-proxy in front of a real Postfix (tests/lib/postfix.sh): delivery with the
# backend's reply (queue id) passed on verbatim, the real client passed by XCLIENT and by PROXY
# protocol v1/v2, Postfix's own 4xx/5xx recipient verdicts verbatim, pipelining, and the smuggling
# variants against Postfix itself. The client connects from 127.0.0.2 so the address Postfix logs
# shows which one it was told. Ports 12520-12539.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK: Postfix tests skipped"
[ "$(id -u)" = 0 ] || tap_skip_all "postfix -c needs root"
command -v swaks >/dev/null || tap_skip_all "swaks not installed"

PF_PORT=12520 P=12521
cleanup() { px_cleanup; pf_stop; }
port_lock proxy-postfix || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"
pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" \
	"smtpd_recipient_restrictions = check_recipient_access inline:{ {bad@example.net=REJECT no such user}, {tmp@example.net=DEFER try later} }, permit" \
	|| tap_bail "pf_init failed"
pf_start || tap_bail "postfix did not start"
px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_pass=xclient || tap_bail "proxy did not start"

# a fresh worker has learned nothing of its backend: EHLO offers neither SMTPUTF8 nor DSN
out=$(px_chat $P R "S:EHLO c.example\r\n" R "S:QUIT\r\n" A)
tap_like "fresh proxy: EHLO offers no SMTPUTF8 and no DSN" "$out" $'<- 250-8BITMIME\n<- 250 ENHANCEDSTATUSCODES'

out=$(swaks --server 127.0.0.1:$P --local-interface 127.0.0.2 --helo client.example \
	--from a@example.org --to b@example.net --body "via xclient" 2>&1)
tap_like "delivery through Postfix: its queue id reaches the client verbatim" "$out" $'<-  250 2\\.0\\.0 Ok: queued as [0-9A-Za-z]+'
pf_wait_delivered 1 20
tap_is "Postfix delivered one message" "$(pf_delivered_count)" 1
# (Postfix's own Received field: the proxy's, above it, names the client the same way)
tap_like "XCLIENT: Postfix saw the real client address and HELO" \
	"$(pf_headers "$(pf_delivered_last)")" $'from client\\.example \\(unknown \\[127\\.0\\.0\\.2\\]\\)\n\tby [^ ]+ \\(Postfix\\)'
tap_ok "XCLIENT: Postfix logged client=unknown[127.0.0.2]" pf_maillog_grep 'client=unknown\[127\.0\.0\.2\]'

# SMTPUTF8 and DSN by default (proxy_backend_connect = mail): the worker remembers what Postfix's
# EHLO offered, so the next session's EHLO offers both without a backend connection at accept;
# a UTF-8 sender with SMTPUTF8, RET and ENVID, and NOTIFY and ORCPT reach Postfix as given
out=$(px_chat $P R "S:EHLO c.example\r\n" R "S:MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8 RET=HDRS ENVID=QQ314159\r\n" R \
	"S:RCPT TO:<utf8@example.net> NOTIFY=FAILURE ORCPT=rfc822;utf8@example.net\r\n" R "S:DATA\r\n" R \
	"S:Subject: utf8\r\n\r\nutf8 body\r\n.\r\n" R "S:QUIT\r\n" A)
tap_like "remembered: EHLO offers SMTPUTF8 and DSN" "$out" $'<- 250-SMTPUTF8\n<- 250-DSN\n'
tap_like "SMTPUTF8 and DSN parameters: Postfix queued the message" "$out" $'<- 250 2\.0\.0 Ok: queued as'
pf_wait_delivered 2 20
utf8=$(grep -l '^Subject: utf8' $(pf_delivered_files) | head -1)
tap_like "Postfix delivered it with the UTF-8 sender" "$(pf_headers "$utf8")" $'Return-Path: <j\xc3\xb6rg@example\.org>'
tap_like "Postfix took MAIL and RCPT with their DSN parameters" "$out" $'<- 250 2\\.1\\.0 Ok\n<- 250 2\\.1\\.5 Ok'

# a second EHLO with another name after a message: the next message carries the new name
out=$(px_chat $P R "S:EHLO first.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R \
	"S:DATA\r\n" R "S:Subject: one\r\n\r\none\r\n.\r\n" R "S:EHLO second.example\r\n" R \
	"S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R \
	"S:Subject: two\r\n\r\ntwo\r\n.\r\n" R "S:QUIT\r\n" A)
tap_is "two messages, one session, two EHLO names: both queued" "$(grep -c '^<- 250 2\.0\.0 Ok: queued as' <<< "$out")" 2
pf_wait_delivered 4 20
two=$(grep -l '^Subject: two' $(pf_delivered_files) | head -1)
tap_like "XCLIENT after the second EHLO: Postfix saw the new name" \
	"$(pf_headers "$two")" $'from second\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\tby [^ ]+ \\(Postfix\\)'

out=$(swaks --pipeline --server 127.0.0.1:$P --from a@example.org --to b@example.net,c@example.net 2>&1)
tap_like "pipelining through Postfix" "$out" $'<-  250 2\\.0\\.0 Ok: queued as'

out=$(px_chat $P R "S:EHLO c.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<bad@example.net>\r\n" R \
	"S:RCPT TO:<tmp@example.net>\r\n" R "S:QUIT\r\n" A)
tap_like "Postfix's 5xx on RCPT reaches the client verbatim" "$out" $'<- 554 5\\.7\\.1 <bad@example\\.net>: Recipient address rejected: no such user'
tap_like "Postfix's 4xx on RCPT reaches the client verbatim" "$out" $'<- 450 4\\.7\\.1 <tmp@example\\.net>: Recipient address rejected: try later'

# smuggling against the real MTA, each variant one command at a time, then pipelined to Postfix
# (which offers PIPELINING): MAIL, RCPT and DATA as one RFC 2920 group and the message with the
# smuggled transaction and QUIT in one write (the same replies), and all of it in one write as an
# attacker sends it (the message bytes before our 354: 554 5.5.0 and close, none relayed)
before=$(pf_delivered_count)
HELLO=(R "S:EHLO c.example\r\n" R)
n=0
for v in "${PX_SMUGGLE_VECTORS[@]}"; do
	n=$((n + 1))
	msg=$(px_smuggle_message "smuggle $n" "$v")
	out=$(px_chat $P "${HELLO[@]}" "S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R \
		"S:DATA\r\n" R "S:$msg" R "S:QUIT\r\n" A)
	tap_like "Postfix behind the proxy, $v: refused with 550" "$out" $'<- 550 5\\.(5\\.2|6\\.0)'
	px_smuggle_replies "Postfix behind the proxy, $v" $P "$v" "$msg" "$out"
done
sleep 1
tap_is "smuggling: Postfix delivered nothing" "$(( $(pf_delivered_count) - before ))" 0
if pf_maillog_grep 'smuggled@evil'; then r=1; else r=0; fi
tap_is "smuggling: Postfix never saw the smuggled MAIL" "$r" 0

# PROXY protocol v1 and v2 (Postfix smtpd_upstream_proxy_protocol = haproxy accepts both)
px_stop
pf_postconf -e "smtpd_upstream_proxy_protocol = haproxy" && pf_reload
sleep 1
for v in 1 2; do
	px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_pass=proxy_v$v
	before=$(pf_delivered_count)
	out=$(swaks --server 127.0.0.1:$P --local-interface 127.0.0.2 --from a@example.org --to "v$v@example.net" 2>&1)
	tap_like "PROXY v$v: delivered through Postfix" "$out" $'<-  250 2\\.0\\.0 Ok: queued as'
	pf_wait_delivered $((before + 1)) 20
	tap_like "PROXY v$v: Postfix saw the real client" "$(pf_headers "$(pf_delivered_last)")" '\[127\.0\.0\.2\]'
	px_stop
done
tap_is "no sanitizer report in the proxy log" "$(grep -c 'AddressSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
tap_done
