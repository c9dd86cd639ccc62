#!/bin/bash
# milter_policy.sh - SPF, DKIM and DMARC decisions through mxmoat-milter behind a real Postfix,
# swaks as the client, smtp-sink capturing what Postfix relays, nsd serving the test zones. Each
# scenario asserts the reply swaks sees and what was (or was not) relayed:
#   1. a message signed by dkimpy (dkimsign) for an aligned domain: 250, exactly one A-R of ours,
#      spf=pass, dkim=pass, dmarc=pass;
#   2. a spoofed From of a p=reject domain: 550 5.7.1, nothing relayed;
#   3. SPF fail (a forwarder's address) with DMARC pass through the DKIM signature: relayed;
#   4. two From fields: 550 5.7.1, nothing relayed;
#   5. null sender: SPF of the HELO name, A-R shows spf=pass smtp.helo=...;
#   6. the DNS server stopped: 451 4.7.1, nothing relayed.
# Forged A-R (milter_authres.sh), 101 recipients and oversized messages (milter_postfix.sh) are
# tested elsewhere. Ports: 13600 (smtpd), 13601 (sink), 13602 (milter), 13603 (nsd).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dns.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
[ -x /usr/bin/dkimsign ] && [ -x /usr/bin/dknewkey ] || tap_skip_all "python3-dkim not installed"
milter_pf_prepare milter-policy
cd "$MILTER_DIR" || exit 1
DNS=13603

# ---- keys and zones: good.test (SPF allows 127.0.0.1) and fwd.test (SPF does not), both
# p=reject and both with a dkimpy key; down.test is never served (asked only with nsd stopped).
dknewkey sel >/dev/null 2>&1 || tap_bail "dknewkey failed"
# zone DOMAIN SPF - a zone file with SOA, NS, the SPF record, DMARC p=reject and the key
zone() {
	printf '$ORIGIN %s.\n$TTL 300\n' "$1"
	printf '@\tIN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@\tIN NS ns\nns\tIN A 127.0.0.1\n' "$1" "$1"
	printf '@\tIN TXT "%s"\n' "$2"
	printf 'mta\tIN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
	printf '_dmarc\tIN TXT "v=DMARC1; p=reject"\n'
	printf 'sel._domainkey\tIN TXT'
	printf "%s\n" "$(cat sel.dns)" | fold -w 200 | while IFS= read -r part; do printf ' "%s"' "$part"; done
	printf '\n'
}
zone good.test "v=spf1 ip4:127.0.0.1 -all" >good.zone
zone fwd.test "v=spf1 ip4:192.0.2.1 -all" >fwd.zone
for i in $(seq 1 50); do dns__listening $DNS || break; sleep 0.1; done
dns_start $DNS .="$top_srcdir/tests/e2e/data/root.zone" good.test=good.zone fwd.test=fwd.zone ||
	tap_bail "nsd did not start"

tap_ok "milter starts" milter_start inet:13602@127.0.0.1 -o auth_inbound=yes \
	-o authserv_id=mx.mxmoat.test -o "dns_resolver=127.0.0.1@$DNS" -o dns_timeout=2s
milter_pf_start 13600 13601 "smtpd_milters = inet:127.0.0.1:13602" "milter_default_action = accept" \
	"milter_protocol = 6"

# message FROM SUBJECT - a message from FROM (LF line ends)
message() {
	printf 'From: %s\nTo: b@example.net\nSubject: %s\nDate: Thu, 26 Nov 2026 12:00:00 +0000\n' "$1" "$2"
	printf 'Message-ID: <%s@mxmoat.test>\n\nHello,\n  two spaces and a tab\there.\n' "${2// /-}"
}
# signed FROM SUBJECT D - the message signed by dkimpy, d=D s=sel, relaxed/relaxed, CRLF
signed() {
	message "$1" "$2" | sed 's/$/\r/' |
		/usr/bin/python3 /usr/bin/dkimsign --hcanon relaxed --bcanon relaxed sel "$3" sel.key
}
# send MAILFROM HELO FILE - swaks with the message in FILE; its transcript
send() {
	swaks --server 127.0.0.1:13600 --from "$1" --helo "$2" --to b@example.net --data "$3" 2>&1
}
# ours - the relayed message's A-R fields of our authserv-id, unfolded, one a line
ours() {
	pf_headers "$(pf_delivered_last)" |
		awk '/^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { print f }' |
		grep -i '^Authentication-Results: mx\.mxmoat\.test;'
}
n=0
# relayed NAME OUT - swaks got 250 and the message was relayed with exactly one A-R of ours,
# left in $ar
relayed() {
	tap_like "$1: 250 queued" "$2" "<-  250 2\.0\.0 Ok: queued as"
	tap_ok "$1: relayed" pf_wait_delivered $((n += 1)) 20
	ar=$(ours)
	tap_is "$1: exactly one A-R of ours" "$(printf '%s\n' "$ar" | grep -c .)" 1
}
# refused NAME OUT REPLY REASON - swaks got REPLY (a regex) after the dot, and the milter logged
# REASON for it
refused() {
	tap_like "$1: ${3%% *} after the dot" "$2" $' -> \\.\n<\\*\\* '"$3"
	tap_ok "$1: the milter logged $4" milter_log_grep " stage=eom code=${3%% *} .* reason=$4"
}

# 1. signed by the From domain, sent from an address its SPF allows
signed "Alice <alice@good.test>" "aligned" good.test >m1
tap_like "signed: the signature is dkimpy's" "$(head -c 200 m1)" '^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=good\.test;'
relayed "signed, aligned" "$(send bounce@good.test mta.good.test m1)"
tap_has "signed, aligned: spf=pass" "$ar" "spf=pass smtp.mailfrom=bounce@good.test"
tap_has "signed, aligned: dkim=pass" "$ar" "dkim=pass header.d=good.test header.s=sel header.a=rsa-sha256"
tap_has "signed, aligned: dmarc=pass" "$ar" "dmarc=pass header.from=good.test policy.dmarc=reject"
tap_like "signed, aligned: the signature relayed unchanged" "$(pf_headers "$(pf_delivered_last)" | grep '^DKIM-Signature:')" "d=good\.test"

# 2. spoofed From of the p=reject domain: no signature, envelope of another domain
message "CEO <ceo@good.test>" "wire money" >m2
refused "spoofed From" "$(send x@example.net mta.example.net m2)" \
	'550 5\.7\.1 Message rejected: DMARC policy of good\.test' dmarc_fail

# 3. SPF fail (fwd.test allows only 192.0.2.1), DKIM of fwd.test passes: DMARC passes, relayed
signed "Fred <fred@fwd.test>" "forwarded" fwd.test >m3
relayed "SPF fail, DKIM aligned" "$(send bounce@fwd.test mta.good.test m3)"
tap_has "SPF fail, DKIM aligned: spf=fail" "$ar" "spf=fail smtp.mailfrom=bounce@fwd.test"
tap_has "SPF fail, DKIM aligned: dkim=pass" "$ar" "dkim=pass header.d=fwd.test header.s=sel"
tap_has "SPF fail, DKIM aligned: dmarc=pass" "$ar" "dmarc=pass header.from=fwd.test"

# 4. two From fields: DMARC cannot pick a domain, rejected
{ printf 'From: ceo@good.test\n'; message "a@example.net" "two from"; } >m4
refused "two From fields" "$(send x@example.net mta.example.net m4)" \
	'550 5\.7\.1 Message must have exactly one From address \(several From fields\)' dmarc_bad_from

# 5. null sender: SPF of the HELO name (RFC 7208 2.3) decides, and the A-R says so
message "MAILER-DAEMON <mailer-daemon@good.test>" "bounce" >m5
out=$(send "<>" mta.good.test m5)
tap_like "null sender: MAIL FROM:<> sent" "$out" " -> MAIL FROM:<>"
relayed "null sender" "$out"
tap_has "null sender: spf of the HELO name in the A-R" "$ar" "spf=pass smtp.helo=mta.good.test"
tap_has "null sender: MAIL FROM identity is postmaster@HELO" "$ar" "spf=pass smtp.mailfrom=postmaster@mta.good.test"
tap_has "null sender: dmarc=pass through the HELO identity" "$ar" "dmarc=pass header.from=good.test"

# 6. the DNS server stopped: DMARC cannot be evaluated, tempfail (dmarc_temperror_action)
dns_stop
message "Dan <dan@down.test>" "dns down" >m6
refused "DNS down" "$(send dan@down.test mta.down.test m6)" '451 4\.7\.1 ' dmarc_temperror

tap_is "rejected and tempfailed messages: nothing relayed" "$(pf_delivered_count)" "$n"
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_done
