#!/bin/bash
# proxy_hold.sh - mxmoat-proxy's holding mode (auth_inbound=yes: the Authentication-Results field
# depends on the whole body). Against smtp-sink (byte capture) and a real Postfix: a DKIM-signed
# message arrives with exactly one A-R of our authserv-id on top (below the proxy's own Received),
# forged A-Rs of our authserv-id (any case, and the "Authentication-Results :" spelling) removed and
# another's kept; a message past proxy_hold_memory goes through the spool file and arrives
# byte-identical apart from the added fields; a spool directory gone at run time gives 451 and delivers nothing; a DMARC
# p=reject spoof gets 550 and the backend sees no DATA; a missing spool directory is logged at
# start; outbound with a signing table, the DKIM-Signature goes on top and verifies
# (dkimpy). Keys are made at test time and served by nsd (tests/lib/dns.sh).
# Ports 12600 (DNS), 12601 (sink), 12602 (proxy), 12603 (start check), 12604 (Postfix),
# 12605 (proxy in front of Postfix), 12606 (signing proxy).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/dns.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v dknewkey >/dev/null || tap_skip_all "dknewkey (opendkim-tools) not installed"
/usr/bin/python3 -c 'import dkim' 2>/dev/null || tap_skip_all "python3-dkim not installed"

DNSP=12600 S=12601 P=12602 BADP=12603 PF_PORT=12604 PP=12605 SP=12606
PY=/usr/bin/python3
cleanup() { px_cleanup; pf_stop; dns_stop; }
port_lock proxy-hold || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"
W=$PX_DIR
mkdir -p "$W/spool" && chown nobody "$W/spool"   # the proxy runs as daemon_user (nobody)

# ---- the key and the zone: SPF allows 127.0.0.1, DMARC p=reject ----
(cd "$W" && dknewkey sel >/dev/null 2>&1) || tap_bail "cannot make a key"
# the signing key of the outbound case (section 7), published in the same zone
"$top_builddir/tools/mxmoat-keygen" -o "$W/sign.key" sign hold.test >"$W/sign.out" 2>&1 &&
	chown nobody "$W/sign.key" && tail -n 1 "$W/sign.out" >"$W/table" || tap_bail "mxmoat-keygen failed"
txt() {
	printf '%s\tIN TXT' "$1"
	printf '%s\n' "$2" | fold -w 200 | while IFS= read -r part; do printf ' "%s"' "$part"; done
	printf '\n'
}
{
	printf '$ORIGIN hold.test.\n$TTL 300\n'
	printf '@\tIN SOA ns.hold.test. hostmaster.hold.test. 1 3600 600 86400 300\n'
	printf '@\tIN NS ns\nns\tIN A 127.0.0.1\n'
	txt @ "v=spf1 ip4:127.0.0.1 -all"
	txt _dmarc "v=DMARC1; p=reject"
	txt sel._domainkey "$(cat "$W/sel.dns")"
	grep '_domainkey' "$W/sign.out"
} >"$W/hold.test.zone"
for i in $(seq 1 50); do dns__listening $DNSP || break; sleep 0.1; done
dns_start $DNSP .="$top_srcdir/tests/e2e/data/root.zone" hold.test="$W/hold.test.zone" ||
	tap_bail "nsd did not start"

# send.py PORT MAIL_FROM FILE [KEY [PREFIX]]: the message in FILE (LF lines) over SMTP,
# DKIM-signed with KEY as sel._domainkey.hold.test, then the fields in PREFIX put on top (dkimpy
# will not sign a message with "Name :" fields); prints the reply to the end of data (smtplib
# dot-stuffs). What was sent is kept in FILE.sent.
cat >"$W/send.py" <<'EOF'
import smtplib, sys, dkim
port, mail_from, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = open(path, "rb").read().replace(b"\n", b"\r\n")
if len(sys.argv) > 4:
    sig = dkim.sign(msg, b"sel", b"hold.test", open(sys.argv[4], "rb").read(),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    msg = sig + msg
if len(sys.argv) > 5:
    msg = open(sys.argv[5], "rb").read().replace(b"\n", b"\r\n") + msg
open(path + ".sent", "wb").write(msg)
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("client.example")
s.mail(mail_from)
s.rcpt("b@example.net")
code, text = s.data(msg)
print(code, text.decode())
s.quit()
EOF
send() { "$PY" "$W/send.py" "$@" 2>&1; }
# skip N REASON - N assertions skipped (TAP "# SKIP")
skip() {
	local i
	for i in $(seq 1 "$1"); do TAP_N=$((TAP_N + 1)); printf 'ok %d # SKIP %s\n' "$TAP_N" "$2"; done
}

PXOPTS=(-o authserv_id=mx.hold.test -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$DNSP" -o dns_timeout=2s
	-o proxy_hold_memory=16k -o "proxy_spool_dir=$W/spool")
px_sink_start $S || tap_bail "smtp-sink did not start"
px_start $P 127.0.0.1:$S "${PXOPTS[@]}" || { cat "$W/proxy.log"; tap_bail "proxy did not start"; }

wait_dumps() {
	local i
	for i in $(seq 1 60); do [ "$(px_dumps)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}
# message FILE - the message in the newest dump: the sink's own lines (X-*, its Received) removed
newest_message() {
	awk 'm { print; next } /^(X-Client-Addr|X-Client-Proto|X-Helo-Args|X-Mail-Args|X-Rcpt-Args):/ { next }
	     /^Received: .*\(\[127\.0\.0\.1\]\)$/ { r = 1; next } r && /^[ \t]/ { next } { m = 1; print }' \
		"$(ls -t "$W"/dump/* | head -1)"
}
# fields - header fields of a message on stdin, one line each (folding joined)
fields() {
	awk '/^$/ { exit } /^[^ \t]/ { if (f != "") print f; f = $0; next } { f = f " " $0 } END { if (f != "") print f }'
}

# ---- 1. a signed message with forged results: exactly one A-R of ours, on top ----
cat >"$W/m1.forged" <<'EOF'
Authentication-Results: mx.hold.test; dkim=pass header.d=forged1.example
Authentication-Results: other.example; spf=pass smtp.mailfrom=kept.example
Authentication-Results : mx.hold.test; dmarc=pass header.from=forged2.example
AUTHENTICATION-RESULTS: MX.HOLD.TEST; spf=pass smtp.mailfrom=forged3.example
EOF
cat >"$W/m1" <<'EOF'
From: Alice <alice@hold.test>
To: b@example.net
Subject: held
Date: Thu, 26 Nov 2026 12:00:00 +0000

.a line that starts with a dot
Hello.
EOF
out=$(send $P alice@hold.test "$W/m1" "$W/sel.key" "$W/m1.forged")
tap_like "signed message: the sink's 250 reaches the client" "$out" '^250 2\.0\.0 Ok'
wait_dumps 1
msg=$(newest_message)
ar=$(printf '%s\n' "$msg" | fields | grep -i '^Authentication-Results *:')
tap_is "forged A-R of our authserv-id: all three gone" "$(printf '%s\n' "$ar" | grep -c -i 'forged[123]\.example')" 0
tap_is "A-R of another authserv-id kept" "$(printf '%s\n' "$ar" | grep -c 'other\.example; spf=pass smtp\.mailfrom=kept\.example')" 1
tap_is "exactly one A-R of ours" "$(printf '%s\n' "$ar" | grep -c -i '^Authentication-Results: mx\.hold\.test;')" 1
tap_like "the proxy's Received is the first field" "$(printf '%s\n' "$msg" | fields | head -1)" \
	'^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)[[:space:]]+by mx\.hold\.test \(mxmoat\) with ESMTP id '
tap_like "ours is the first field below it" "$(printf '%s\n' "$msg" | fields | sed -n 2p)" '^Authentication-Results: mx\.hold\.test;'
tap_like "ours says spf, dkim and dmarc pass" "$(printf '%s\n' "$ar" | grep -i '^Authentication-Results: mx\.hold\.test;')" \
	'spf=pass .*dkim=pass .*dmarc=pass'
tap_like "the dot line arrived unstuffed once (fresh stuffing)" "$(printf '%s\n' "$msg" | grep -c '^\.a line that starts')" '^1$'
tap_like "the proxy held it in memory" "$(cat "$W/proxy.log")" 'hold size=[0-9]+ spooled=no edits=applied'

# ---- 2. past proxy_hold_memory: through the spool, byte-identical apart from our field ----
"$PY" - "$W/m2" <<'EOF'
import sys
lines = ["From: Alice <alice@hold.test>", "To: b@example.net", "Subject: big",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000", ""]
for i in range(4000):
    lines.append(("." if i % 7 == 0 else "") + "line %05d " % i + "x" * (i % 90))
lines.append("." * 3)
lines.append("y" * 990)
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
before=$(px_dumps)
out=$(send $P alice@hold.test "$W/m2" "$W/sel.key")
tap_like "big message: 250" "$out" '^250 2\.0\.0 Ok'
wait_dumps $((before + 1))
tap_like "the proxy spooled it" "$(cat "$W/proxy.log")" 'hold size=[0-9]{6} spooled=yes edits=applied'
# the proxy's Received field and our A-R below it are the added fields
newest_message | awk 'NR == 1 && /^Received: from client\.example / { skip = 1; n = 1; next }
	n == 1 && skip && /^[ \t]/ { next }
	n == 1 && /^Authentication-Results: mx\.hold\.test;/ { skip = 1; n = 2; next }
	skip && /^[ \t]/ { next } { skip = 0; n = 2; print }' >"$W/m2.got"
tr -d '\r' <"$W/m2.sent" >"$W/m2.want"
# smtp-sink ends its dump with an empty line of its own
tap_ok "byte-identical apart from the added fields" cmp "$W/m2.want" <(sed '$ { /^$/ d }' "$W/m2.got")
tap_like "and dkim=pass over the whole body" \
	"$(newest_message | fields | grep -i '^Authentication-Results: mx\.hold\.test;')" 'dkim=pass'
tap_is "no spool file left behind" "$(ls -A "$W/spool" | wc -l)" 0

# ---- 3. DMARC p=reject spoof: 550, the backend saw MAIL and RCPT but no DATA ----
datas=$(grep -c 'DATA' "$W/sink.log")
rsets=$(grep -c 'RSET' "$W/sink.log")
printf 'From: CEO <ceo@hold.test>\nTo: b@example.net\nSubject: pay now\n\nwire the money\n' >"$W/m3"
before=$(px_dumps)
out=$(send $P x@other.example "$W/m3")
tap_like "p=reject spoof: 550 5.7.1" "$out" '550.*5\.7\.1'
sleep 0.3
tap_is "p=reject spoof: nothing delivered" "$(px_dumps)" "$before"
tap_is "p=reject spoof: the backend saw no DATA" "$(grep -c 'DATA' "$W/sink.log")" "$datas"
tap_is "p=reject spoof: its transaction was ended with RSET" "$(grep -c 'RSET' "$W/sink.log")" "$((rsets + 1))"

# ---- 4. the spool directory gone at run time: 451, nothing delivered, small ones still pass ----
rmdir "$W/spool"
before=$(px_dumps)
out=$(send $P alice@hold.test "$W/m2" "$W/sel.key")
tap_like "spool unusable: 451 4.3.0" "$out" '451.*4\.3\.0'
sleep 0.3
tap_is "spool unusable: nothing delivered" "$(px_dumps)" "$before"
tap_like "spool unusable: logged with the reason" "$(cat "$W/proxy.log")" 'hold error="No such file or directory"'
out=$(send $P alice@hold.test "$W/m1" "$W/sel.key" "$W/m1.forged")
tap_like "a message under proxy_hold_memory still goes through" "$out" '^250 2\.0\.0 Ok'
mkdir -p "$W/spool" && chown nobody "$W/spool"   # the proxy runs as daemon_user (nobody)

# ---- 5. no spool directory at start: said at once (messages under the threshold still pass) ----
out=$(timeout 3 "$top_builddir/proxy/mxmoat-proxy" -f -o "proxy_listen=127.0.0.1:$BADP" \
	-o "proxy_backend=127.0.0.1:$S" "${PXOPTS[@]}" -o "proxy_spool_dir=$W/none" 2>&1)
rc=$?
tap_is "missing proxy_spool_dir at start: it still starts (stopped by timeout)" "$rc" 124
tap_like "missing proxy_spool_dir at start: logged with the reason" "$out" \
	"start error=\"proxy_spool_dir $W/none: No such file or directory\" note=\"held messages past proxy_hold_memory get 451 4.3.0\""

# ---- 6. a real Postfix behind the proxy ----
if [ "${MXMOAT_QUICK:-}" = 1 ]; then
	skip 4 "MXMOAT_QUICK: Postfix part skipped"
elif ! { pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" && pf_start; }; then
	skip 4 "postfix did not start"
else
	PX_PID_SINK=$PX_PID PX_PID=
	px_start $PP 127.0.0.1:$PF_PORT "${PXOPTS[@]}" -o proxy_backend_pass=xclient
	out=$(send $PP alice@hold.test "$W/m1" "$W/sel.key" "$W/m1.forged")
	tap_like "Postfix: its queue id reaches the client" "$out" '^250 2\.0\.0 Ok: queued as [0-9A-Za-z]+'
	pf_wait_delivered 1 20
	hdrs=$(pf_headers "$(pf_delivered_last)" | fields)
	tap_is "Postfix: exactly one A-R of ours" "$(printf '%s\n' "$hdrs" | grep -c -i '^Authentication-Results: mx\.hold\.test;')" 1
	tap_is "Postfix: forged ones gone, the other kept" \
		"$(printf '%s\n' "$hdrs" | grep -i '^Authentication-Results *:' | grep -c -e forged -e kept\.example)" 1
	tap_like "Postfix: ours is the first field below Postfix's Received" \
		"$(printf '%s\n' "$hdrs" | grep -v -e '^Received:' -e '^Return-Path:' -e '^Delivered-To:' -e '^X-Original-To:' | head -1)" \
		'^Authentication-Results: mx\.hold\.test; .*dkim=pass'
	px_stop
	PX_PID=$PX_PID_SINK
fi

# ---- 7. outbound with a signing table: holding mode, the DKIM-Signature on top ----
PX_PID_SINK=$PX_PID PX_PID=
px_start $SP 127.0.0.1:$S -o authserv_id=mx.hold.test -o internal_networks=127.0.0.0/8 \
	-o "dkim_signing_table=$W/table" -o "proxy_spool_dir=$W/spool" || tap_diag "signing proxy did not start"
printf 'From: Alice <alice@hold.test>\nTo: b@example.net\nSubject: signed by the proxy\n\n.dot\nbody\n' >"$W/m4"
before=$(px_dumps)
out=$(send $SP alice@hold.test "$W/m4")
tap_like "outbound: 250" "$out" '^250 2\.0\.0 Ok'
wait_dumps $((before + 1))
tap_like "outbound: the DKIM-Signature is the first field below the proxy's Received" \
	"$(newest_message | fields | sed -n 2p)" '^DKIM-Signature: .*d=hold\.test'
tap_like "outbound: dkimpy verifies it (key from nsd)" \
	"$(newest_message | sed 's/$/\r/' | "$PY" "$top_srcdir/tests/helpers/dkim-verify.py" --dns 127.0.0.1@$DNSP 2>&1)" \
	'^s=sign a=rsa-sha256 pass$'
px_stop
PX_PID=$PX_PID_SINK

px_stop
tap_ok "no sanitizer report in the proxy log" bash -c "! grep -q -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error' '$W/proxy.log'"
tap_done
