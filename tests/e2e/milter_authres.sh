#!/bin/bash
# milter_authres.sh - the core's Authentication-Results edits through mxmoat-milter and a real
# Postfix: forged A-R fields carrying our authserv-id are removed (all of them: deletion goes last
# index first), an A-R of another authserv-id is kept, and exactly one A-R of ours is added, above
# the message's own header fields. Ports: 13530 (smtpd), 13531 (sink), 13532 (milter), 15514 (nsd:
# the root zone only, so every DNS question has a quick authoritative answer).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
top_builddir=${top_builddir:-.}

[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
milter_pf_prepare milter-authres

dns_start 15514 .="$top_srcdir/tests/e2e/data/root.zone" || tap_bail "nsd did not start"
tap_ok "milter starts" milter_start inet:13532@127.0.0.1 -o authserv_id=mx.mxmoat.test -o auth_inbound=yes \
	-o dns_resolver=127.0.0.1@15514
milter_pf_start 13530 13531 "smtpd_milters = inet:127.0.0.1:13532" "milter_default_action = tempfail" \
	"milter_protocol = 6"

out=$(swaks --server 127.0.0.1:13530 --from a@example.org --to b@example.net \
	--header 'Subject: forged' \
	--add-header 'Authentication-Results: mx.mxmoat.test; dkim=pass header.d=forged1.example' \
	--add-header 'Authentication-Results: other.example; spf=pass smtp.mailfrom=kept.example' \
	--add-header 'Authentication-Results: MX.MXMOAT.TEST; dmarc=pass header.from=forged2.example' \
	--add-header 'Authentication-Results: mx.mxmoat.test; spf=pass smtp.mailfrom=forged3.example' \
	--body 'forged results' 2>&1)
tap_like "accepted" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "relayed" pf_wait_delivered 1 20
hdrs=$(pf_headers "$(pf_delivered_last)")
ar=$(printf '%s\n' "$hdrs" | awk '/^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { print f }' |
	grep -i '^Authentication-Results:')
tap_is "forged A-R of our authserv-id: all three gone" "$(printf '%s\n' "$ar" | grep -c -i 'forged[123]\.example')" 0
tap_is "A-R of another authserv-id kept" "$(printf '%s\n' "$ar" | grep -c 'other\.example; spf=pass smtp\.mailfrom=kept\.example')" 1
tap_is "exactly one A-R of ours" "$(printf '%s\n' "$ar" | grep -c -i '^Authentication-Results: mx\.mxmoat\.test;')" 1
first_field=$(printf '%s\n' "$hdrs" | grep -v -e '^Received:' -e $'^[ \t]' | head -n 1)
tap_like "ours is above the message's own fields" "$first_field" "^Authentication-Results: mx\.mxmoat\.test;"
tap_like "ours carries spf, dkim and dmarc results" "$(printf '%s\n' "$ar" | grep -i '^Authentication-Results: mx\.mxmoat\.test;')" "spf=.*dkim=.*dmarc="
# The steps negotiated do not depend on the configuration: the session limits alone
# (milter_postfix.sh), which cannot be switched off, need connect, HELO, MAIL, RCPT, header and
# body; verifying needs no other.
tap_ok "verifying: the protocol steps negotiated with Postfix" milter_log_grep \
	" negotiate mta_protocol=0x1fffff protocol=0x1c2280 actions=0x131$"
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_done
