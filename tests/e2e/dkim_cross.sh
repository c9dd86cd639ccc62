#!/bin/bash
# dkim_cross.sh - DKIM and DMARC through mxmoat-check against an independent implementation:
# messages signed by python3-dkim (dkimpy: rsa-sha256 and ed25519-sha256, every simple/relaxed
# combination) must verify here and in dkimpy, tampered copies must fail in both; rsa-sha1, a
# 512-bit key and content after l= are not a pass; the RFC 8463 example message verifies (both
# signatures); a spoofed From is rejected with the reason in --explain; forged
# Authentication-Results are reported as removed; quoted-printable i= and z=, repeated tags and a
# bare CR in a signed field (through the engine as the milter feeds it: mxmoat-check refuses a
# bare CR in the header) are judged as dkimpy judges them. Keys are made at test time (dknewkey, openssl)
# and served, with the DMARC and SPF records, by nsd on 127.0.0.1:15400 (tests/lib/dns.sh).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
[ -x /usr/bin/dkimsign ] || tap_skip_all "python3-dkim not installed"
port_lock dkim-cross || tap_skip_all "another run of this test held its ports for 600 s"
PORT=15400
PY=/usr/bin/python3
CHECK=$top_builddir/tools/mxmoat-check
data=$top_srcdir/tests/e2e/data
work=$(mktemp -d)
trap 'dns_stop; rm -rf "$work"' EXIT

# ---- keys and the zone ----
(cd "$work" && dknewkey rsa >/dev/null 2>&1 && dknewkey --ktype ed25519 ed >/dev/null 2>&1 &&
	openssl genrsa -out small.key 512 2>/dev/null) || tap_bail "cannot make keys"
small_pub=$(openssl rsa -in "$work/small.key" -pubout 2>/dev/null | grep -v '^-----' | tr -d '\n')
txt() { dns_txt "$@"; }
{
	printf '$ORIGIN auth2.test.\n$TTL 300\n'
	printf '@\tIN SOA ns.auth2.test. hostmaster.auth2.test. 1 3600 600 86400 300\n'
	printf '@\tIN NS ns\nns\tIN A 127.0.0.1\n@\tIN A 192.0.2.10\nsub\tIN A 192.0.2.11\n'
	txt @ "v=spf1 ip4:192.0.2.0/24 -all"
	txt _dmarc "v=DMARC1; p=reject; sp=quarantine"
	txt sub "v=spf1 ip4:192.0.2.0/24 -all"
	txt rsa._domainkey "$(cat "$work/rsa.dns")"
	txt ed._domainkey "$(cat "$work/ed.dns")"
	txt small._domainkey "v=DKIM1; k=rsa; p=$small_pub"
	# the same RSA key without h=sha256, so an rsa-sha1 signature meets our rule, not the key's
	txt rsa1._domainkey "$(sed 's/ h=sha256;//' "$work/rsa.dns")"
} >"$work/auth2.test.zone"
# A server still bound to the port (a previous run shutting down) would answer with its own
# keys: wait for the port to be free (bounded), and check afterwards that the keys are ours.
dns_wait_free $PORT
dns_start $PORT .="$data/root.zone" auth2.test="$work/auth2.test.zone" \
	football.example.com="$data/football.example.com.zone" ||
	tap_bail "nsd did not start"
served=$("$top_builddir/tests/helpers/dns_query" 127.0.0.1@$PORT "" rsa._domainkey.auth2.test TXT | sed -n 2p)
[ "$served" = "$(cat "$work/rsa.dns")" ] ||
	tap_bail "127.0.0.1:$PORT does not serve this run's keys (another server on the port?)"

cat >"$work/msg" <<'EOF'
From: Alice <alice@auth2.test>
To: bob@example.net
Subject: cross-check
Date: Sun, 22 Nov 2026 21:00:00 +0000
Message-ID: <cross@auth2.test>

Hello Bob,
  two spaces, a tab	and trailing space 
here.
EOF

# check FILE ARGS... - mxmoat-check from a client outside the SPF record; sets OUT, RC, AR.
check() {
	local f=$1
	shift
	OUT=$("$CHECK" --resolver 127.0.0.1@$PORT -o authserv_id=mx.test -o dns_timeout=2s \
		--client-ip 198.51.100.7 --helo mta.example.net --mail-from x@example.net "$@" "$f" 2>&1)
	RC=$?
	AR=$(printf '%s\n' "$OUT" | grep '^Authentication-Results: ')
}

# engine FILE - the authentication engine fed as mxmoat-milter feeds it, fields as the MTA
# parsed them (tests/helpers/auth_bench, one run): for what the core's header reader refuses in
# mxmoat-check and the proxy, such as a bare CR in a field. Sets AR.
engine() {
	AR=$("$top_builddir/tests/helpers/auth_bench" -n 1 --client-ip 198.51.100.7 --helo mta.example.net \
		--mail-from x@example.net -o authserv_id=mx.test -o dns_timeout=2s \
		-o dns_resolver=127.0.0.1@$PORT "$1" 2>/dev/null | grep '^Authentication-Results: ')
}

# pyverify FILE - dkimpy's verdict on the first signature with the same keys: "pass" or "fail".
pyverify() {
	"$PY" - "$work" "$1" <<'PYEOF'
import sys, dkim
work, path = sys.argv[1], sys.argv[2]
keys = {b'rsa._domainkey.auth2.test.': open(work + '/rsa.dns', 'rb').read(),
        b'ed._domainkey.auth2.test.': open(work + '/ed.dns', 'rb').read()}
msg = open(path, 'rb').read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
print('pass' if dkim.verify(msg, dnsfunc=lambda n, timeout=5: keys.get(n)) else 'fail')
PYEOF
}

for alg in rsa-sha256 ed25519-sha256; do
	sel=rsa key=$work/rsa.key
	[ $alg = ed25519-sha256 ] && sel=ed key=$work/ed.key
	for hc in simple relaxed; do
		for bc in simple relaxed; do
			name="$alg $hc/$bc"
			"$PY" /usr/bin/dkimsign --signalg $alg --hcanon $hc --bcanon $bc $sel auth2.test "$key" \
				<"$work/msg" >"$work/signed" 2>"$work/err"
			check "$work/signed"
			tap_has "$name: dkim=pass" "$AR" \
				"dkim=pass header.d=auth2.test header.s=$sel header.a=$alg header.b="
			tap_has "$name: dmarc=pass" "$AR" "; dmarc=pass header.from=auth2.test policy.dmarc=reject"
			tap_is "$name: accepted" "$RC" 0
			tap_is "$name: dkimpy agrees" "$(pyverify "$work/signed")" pass
			# tampered body: one byte of the text changed
			sed 's/Hello Bob/Hello Rob/' "$work/signed" >"$work/tampered"
			check "$work/tampered"
			tap_has "$name, body tampered: dkim=fail" "$AR" "dkim=fail reason=\"body hash did not verify\" header.d=auth2.test"
			tap_is "$name, body tampered: dkimpy agrees" "$(pyverify "$work/tampered")" fail
			tap_is "$name, body tampered: rejected by p=reject" "$RC" 1
			# tampered header
			sed 's/^Subject: cross-check/Subject: cross-check!/' "$work/signed" >"$work/tampered"
			check "$work/tampered"
			tap_has "$name, header tampered: dkim=fail" "$AR" "dkim=fail reason=\"signature verification failed\" header.d=auth2.test"
			tap_is "$name, header tampered: dkimpy agrees" "$(pyverify "$work/tampered")" fail
		done
	done
done

# RFC 8301: rsa-sha1 and a 512-bit key are not a pass
"$PY" /usr/bin/dkimsign --signalg rsa-sha1 rsa1 auth2.test "$work/rsa.key" <"$work/msg" >"$work/signed"
check "$work/signed"
tap_has "rsa-sha1: dkim=fail" "$AR" 'dkim=fail reason="rsa-sha1 is not accepted (RFC 8301)" header.d=auth2.test header.s=rsa1 header.a=rsa-sha1'
tap_is "rsa-sha1: rejected (no aligned pass)" "$RC" 1
"$PY" /usr/bin/dkimsign small auth2.test "$work/small.key" <"$work/msg" >"$work/signed"
check "$work/signed"
tap_has "512-bit key: dkim=fail" "$AR" 'dkim=fail reason="RSA key of 512 bits (RFC 8301)" header.d=auth2.test header.s=small'
tap_is "512-bit key: rejected" "$RC" 1

# l=: content after the signed length is "policy", not pass
"$PY" - "$work" <<'PYEOF'
import sys, dkim
w = sys.argv[1]
msg = open(w + '/msg', 'rb').read().replace(b'\n', b'\r\n')
sig = dkim.sign(msg, b'rsa', b'auth2.test', open(w + '/rsa.key', 'rb').read(), length=True)
open(w + '/l.eml', 'wb').write(sig + msg)
open(w + '/l-appended.eml', 'wb').write(sig + msg + b'\r\nClick here: http://evil.example/\r\n')
PYEOF
check "$work/l.eml"
tap_has "l= covering the body: pass" "$AR" "dkim=pass header.d=auth2.test"
check "$work/l-appended.eml" --explain
tap_has "l= with appended content: dkim=policy" "$AR" 'dkim=policy reason="l=60 signs 60 of 96 body bytes"'
tap_has "l= with appended content: --explain shows the coverage" "$OUT" "l=60 of 96 body bytes"
tap_is "l= with appended content: rejected (policy is not a pass)" "$RC" 1
check "$work/l-appended.eml" -o dkim_body_length_pass=yes
tap_has "l= with dkim_body_length_pass=yes: pass" "$AR" "dkim=pass header.d=auth2.test"

# RFC 8463 Appendix A.3: ed25519 and rsa signatures over the same message
check "$data/rfc8463.msg"
tap_has "RFC 8463 example: both signatures pass" "$AR" \
	'dkim=pass header.d=football.example.com header.s=brisbane header.a=ed25519-sha256 header.b="9/dsDChY"; dkim=pass header.d=football.example.com header.s=test header.a=rsa-sha256 header.b=icKcLSEZ; arc=none; dmarc=pass header.from=football.example.com'
tap_is "RFC 8463 example: accepted" "$RC" 0

# A spoofed From: no signature, SPF for another domain
printf 'From: CEO <ceo@auth2.test>\nTo: staff@example.net\nSubject: wire money\nDate: Sun, 22 Nov 2026 21:00:00 +0000\n\npay now\n' >"$work/spoof"
check "$work/spoof" --explain
tap_is "spoofed From: exit 1" "$RC" 1
tap_has "spoofed From: verdict" "$OUT" "verdict: reject 550 5.7.1 Message rejected: DMARC policy of auth2.test"
tap_has "spoofed From: --explain says why" "$OUT" \
	'decision: dmarc=fail: no aligned SPF or DKIM pass for auth2.test (relaxed alignment); policy p=reject at auth2.test -> reject'
tap_has "spoofed From: --explain shows the record" "$OUT" \
	'dmarc: fail, record at _dmarc.auth2.test (p=reject sp=quarantine adkim=r aspf=r), policy p=reject, disposition reject'
# the same From sent from an address SPF allows: aligned SPF pass
OUT=$("$CHECK" --resolver 127.0.0.1@$PORT -o authserv_id=mx.test --client-ip 192.0.2.25 \
	--mail-from bounce@sub.auth2.test "$work/spoof" 2>&1)
tap_is "SPF-aligned (relaxed, subdomain): accepted" "$?" 0
# subdomain From: sp=quarantine
sed 's/ceo@auth2.test/ceo@sub.auth2.test/' "$work/spoof" >"$work/spoof-sub"
check "$work/spoof-sub"
tap_has "subdomain: sp=quarantine" "$OUT" "verdict: quarantine"
tap_is "subdomain: quarantine exits 0" "$RC" 0
# two From fields
printf 'From: ceo@auth2.test\nFrom: a@example.net\nDate: Sun, 22 Nov 2026 21:00:00 +0000\n\nx\n' >"$work/twofrom"
check "$work/twofrom" --explain
tap_has "two From fields: dmarc=permerror" "$AR" 'dmarc=permerror reason="no single valid RFC5322.From address"'
tap_has "two From fields: rejected" "$OUT" "verdict: reject 550 5.7.1 Message must have exactly one From address (several From fields)"

# forged Authentication-Results with our authserv-id
{ printf 'Authentication-Results: mx.test; dkim=pass header.d=auth2.test; dmarc=pass\n'
  printf 'Authentication-Results: other.example; spf=pass\n'
  cat "$work/spoof"; } >"$work/forged"
check "$work/forged" --explain
tap_has "forged A-R: reported as removed" "$OUT" 'authres: removing forged "Authentication-Results" field #1'
tap_has "forged A-R: not believed" "$OUT" "verdict: reject 550 5.7.1"

# RFC 6376 conformance, each case signed by dkimpy and judged by both: i= and z= are
# dkim-quoted-printable (3.5), a repeated tag voids the tag list (3.2), relaxed header
# canonicalization unfolds only CRLF before WSP (3.4.2). Extra tags go in just before b=, so they
# are signed.
"$PY" - "$work" <<'PYEOF'
import sys, dkim
w = sys.argv[1]
msg = open(w + '/msg', 'rb').read().replace(b'\n', b'\r\n')
key = open(w + '/rsa.key', 'rb').read()
gen_header = dkim.DKIM.gen_header
def signed(name, body=msg, identity=None, extra=lambda fields: []):
    def gen(self, fields, *args, **kw):
        return gen_header(self, fields[:-1] + extra(fields) + fields[-1:], *args, **kw)
    dkim.DKIM.gen_header = gen
    sig = dkim.sign(body, b'rsa', b'auth2.test', key, identity=identity,
                    canonicalize=(b'relaxed', b'relaxed'))
    dkim.DKIM.gen_header = gen_header
    open(w + '/' + name, 'wb').write(sig + body)
signed('qp-i.eml', identity=b'jlong=40sub.auth2.test')
signed('qp-i-two-at.eml', identity=b'a@b=40auth2.test')
signed('qp-i-undecodable.eml', identity=b'jlong@=ZZauth2.test')
signed('z.eml', extra=lambda f: [(b'z', b'From:Alice=20<alice=40auth2.test>|Subject:cross-check')])
signed('repeated-bh.eml', extra=lambda f: [(b'bh', dict(f)[b'bh'])])
signed('repeated-tag.eml', extra=lambda f: [(b'xy', b'1'), (b'xy', b'2')])
signed('cr.eml', body=msg.replace(b'Subject: cross-check', b'Subject: cross-\rcheck'))
signed('plain.eml')
PYEOF
check "$work/qp-i.eml" --explain
tap_has "i= with =40: dkim=pass" "$AR" "dkim=pass header.d=auth2.test header.s=rsa"
tap_has "i= with =40: --explain shows the decoded identity" "$OUT" "i=jlong@sub.auth2.test"
tap_is "i= with =40: dkimpy agrees" "$(pyverify "$work/qp-i.eml")" pass
check "$work/qp-i-two-at.eml"
tap_has "i= with two @ once decoded: dkim=permerror" "$AR" 'dkim=permerror reason="i= has more than one @" header.d=auth2.test'
tap_is "i= with two @ once decoded: dkimpy does not pass it" "$(pyverify "$work/qp-i-two-at.eml")" fail
check "$work/qp-i-undecodable.eml"
tap_has "i= undecodable: dkim=permerror" "$AR" 'dkim=permerror reason="i= is not valid quoted-printable" header.d=auth2.test'
tap_is "i= undecodable: dkimpy does not pass it" "$(pyverify "$work/qp-i-undecodable.eml")" fail
check "$work/z.eml"
tap_has "z= in quoted-printable: dkim=pass" "$AR" "dkim=pass header.d=auth2.test header.s=rsa"
tap_is "z= in quoted-printable: dkimpy agrees" "$(pyverify "$work/z.eml")" pass
check "$work/repeated-bh.eml"
tap_has "repeated bh=: dkim=permerror" "$AR" 'dkim=permerror reason="malformed DKIM-Signature tag list"'
tap_is "repeated bh=: dkimpy agrees" "$(pyverify "$work/repeated-bh.eml")" fail
check "$work/repeated-tag.eml"
tap_has "repeated two-letter tag: dkim=permerror" "$AR" 'dkim=permerror reason="malformed DKIM-Signature tag list"'
tap_is "repeated two-letter tag: dkimpy agrees" "$(pyverify "$work/repeated-tag.eml")" fail
engine "$work/cr.eml"
tap_has "bare CR inside a signed Subject: dkim=pass" "$AR" "dkim=pass header.d=auth2.test header.s=rsa"
tap_is "bare CR inside a signed Subject: dkimpy agrees" "$(pyverify "$work/cr.eml")" pass
printf 's/^Subject: cross-check/Subject: cross-\rcheck/\n' >"$work/cr.sed"
sed -f "$work/cr.sed" "$work/plain.eml" >"$work/cr-inserted.eml"
tap_is "bare CR inserted: the Subject carries it" "$(grep -c $'^Subject: cross-\rcheck' "$work/cr-inserted.eml")" 1
engine "$work/cr-inserted.eml"
tap_has "bare CR inserted into a signed Subject: dkim=fail" "$AR" 'dkim=fail reason="signature verification failed" header.d=auth2.test'
check "$work/cr-inserted.eml"
tap_has "bare CR inserted: mxmoat-check's header reader refuses it first" "$OUT" \
	"verdict: reject 550 5.6.0 Message header refused: bare CR in the header section"
tap_is "bare CR inserted into a signed Subject: dkimpy agrees" "$(pyverify "$work/cr-inserted.eml")" fail
tap_done
