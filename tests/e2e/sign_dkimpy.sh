#!/bin/bash
# sign_dkimpy.sh - signatures made by mxmoat verified by python3-dkim (dkimpy, independent of
# libopendkim), keys published through nsd exactly as mxmoat-keygen prints them: rsa-sha256 and
# ed25519-sha256 in one pass, every canonicalization; tampering and a replayed Subject fail; a
# bare CR inside a signed Subject is signed as a byte of it; mxmoat-keygen --check against the
# same server. Ports 17500-17509.
top_srcdir=$(cd "$top_srcdir" && pwd)
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock

[ "$MXMOAT_QUICK" = 1 ] && tap_skip_all "MXMOAT_QUICK"
/usr/bin/python3 -c 'import dkim, nacl, dns.resolver' 2>/dev/null || tap_skip_all "python3-dkim/python3-nacl missing"
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || tap_skip_all "nsd missing"
port_lock sign-dkimpy || tap_skip_all "another run of this test held its ports for 600 s"

keygen=$top_builddir/tools/mxmoat-keygen
signer=$top_builddir/tests/helpers/sign_message
verify="/usr/bin/python3 $top_srcdir/tests/helpers/dkim-verify.py --dns 127.0.0.1@17500"
dir=$(mktemp -d "${TMPDIR:-/tmp}/moat-sign.XXXXXX")
trap 'dns_stop; rm -rf "$dir"' EXIT
cd "$dir" || exit 1

"$keygen" -o rsa.key s2026r sign.test >rsa.out
"$keygen" -a ed25519 -o ed.key s2026e sign.test >ed.out
"$keygen" -a ed25519 -o other.key s2026e sign.test >/dev/null
tap_is "keygen writes the key with mode 0600" "$(stat -c %a rsa.key) $(stat -c %a ed.key)" "600 600"
tap_like "keygen prints the ed25519 record" "$(grep '_domainkey' ed.out)" \
	'^s2026e\._domainkey\.sign\.test\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="$'
tap_like "keygen splits the rsa record into 255-byte strings" "$(grep '_domainkey' rsa.out)" \
	'^s2026r\._domainkey\.sign\.test\. IN TXT "v=DKIM1; k=rsa; p=[^"]{237}" "[^"]+"$'
tap_like "keygen prints the signing table row" "$(tail -n 1 ed.out)" '^sign\.test s2026e ed25519-sha256 ed\.key$'
"$keygen" -b 1024 x sign.test >/dev/null 2>keygen1024.err
tap_is "keygen refuses 1024-bit RSA (exit 3)" "$?" 3
"$keygen" -o rsa.key s2026r sign.test >/dev/null 2>exists.err
tap_like "keygen never overwrites a key" "$(cat exists.err)" 'rsa\.key: File exists'

cp "$top_srcdir/tests/e2e/data/sign.test.zone" zone
grep -h '_domainkey' rsa.out ed.out >>zone
dns_start 17500 sign.test=zone || tap_bail "nsd did not start"

[ "$(id -u)" = 0 ] && chown nobody rsa.key ed.key other.key
{ tail -n 1 rsa.out; tail -n 1 ed.out; } >table
printf 'dkim_signing_table = %s/table\ndns_resolver = 127.0.0.1@17500\n' "$dir" >moat.conf
printf 'From: Alice <alice@sign.test>\nTo: bob@example.net\nSubject: hello\nDate: Sun, 22 Nov 2026 21:00:00 +0000\nMessage-ID: <1@sign.test>\nList-Id: <list.sign.test>\n\nHello  there, \t with blanks  \n\n.leading dot\n\n\n' >msg

for c in relaxed/relaxed simple/simple relaxed/simple simple/relaxed; do
	"$signer" -c moat.conf -o dkim_sign_canonicalization=$c <msg >signed 2>sign.err
	tap_is "$c: signed (exit 0)" "$?" 0
	out=$($verify <signed)
	tap_is "$c: dkimpy verifies both signatures" "$out" \
		"$(printf 's=s2026r a=rsa-sha256 pass\ns=s2026e a=ed25519-sha256 pass')"
done

"$signer" -c moat.conf <msg >signed
tap_is "two DKIM-Signature fields in one pass" "$(grep -c '^DKIM-Signature:' signed)" 2
tap_like "t= always" "$(tr -d '\r\n\t ' <signed)" 't=[0-9]+;.*t=[0-9]+;'
tap_is "no l= tag" "$(tr -d '\r\n\t ' <signed | grep -c ';l=')" 0
tap_like "h= oversigns (Subject listed twice, Reply-To once though absent)" \
	"$(tr -d '\r\n\t ' <signed | grep -o ';h=[^;]*' | head -1)" \
	'^;h=From:To:Subject:Date:Message-ID:List-Id:From:Subject:Date:To:Cc:Reply-To:Content-Type$'

sed 's/Hello  there/Hello there!/' signed >tampered
tap_is "a changed body fails both" "$($verify <tampered)" \
	"$(printf 's=s2026r a=rsa-sha256 fail\ns=s2026e a=ed25519-sha256 fail')"
awk '!done && /^Subject:/ { print "Subject: replayed"; done = 1 } { print }' signed >replayed
tap_is "a second Subject added after signing fails both (oversigning)" "$($verify <replayed)" \
	"$(printf 's=s2026r a=rsa-sha256 fail\ns=s2026e a=ed25519-sha256 fail')"
sed 's/^To: bob@example.net/To: eve@example.net/' signed >to
tap_is "a changed To fails both" "$($verify <to)" \
	"$(printf 's=s2026r a=rsa-sha256 fail\ns=s2026e a=ed25519-sha256 fail')"

# RFC 6376 3.4.2: relaxed unfolds only CRLF before WSP, so a bare CR in a signed field is a byte
# of its value, for us as for dkimpy; taking it out afterwards breaks the signature.
printf 'From: Alice <alice@sign.test>\nTo: bob@example.net\nSubject: hello\rthere\nDate: Sun, 22 Nov 2026 21:00:00 +0000\n\nHello\n' >crmsg
printf 's/^Subject: hello\rthere/Subject: hellothere/\n' >uncr.sed
for c in relaxed/relaxed simple/simple; do
	"$signer" -c moat.conf -o dkim_sign_canonicalization=$c <crmsg >signed-cr
	tap_is "$c, a bare CR inside the Subject: dkimpy verifies both" "$($verify <signed-cr)" \
		"$(printf 's=s2026r a=rsa-sha256 pass\ns=s2026e a=ed25519-sha256 pass')"
	sed -f uncr.sed signed-cr >uncr
	tap_is "$c, the bare CR taken out: the Subject changed" "$(grep -c '^Subject: hellothere' uncr)" 1
	tap_is "$c, the bare CR taken out: fails both" "$($verify <uncr)" \
		"$(printf 's=s2026r a=rsa-sha256 fail\ns=s2026e a=ed25519-sha256 fail')"
done

"$signer" -c moat.conf -o dkim_sign_expire=1h <msg >expiring
tap_like "dkim_sign_expire writes x= = t= + 3600" "$(tr -d '\r\n\t ' <expiring | grep -o 't=[0-9]*;x=[0-9]*' | head -1 |
	awk -F'[=;]' '{ print $4 - $2 }')" '^3600$'
tap_is "the x= signatures verify" "$($verify <expiring | grep -c pass)" 2

printf 'From: a@other.test\nSubject: x\n\nbody\n' | "$signer" -c moat.conf >/dev/null 2>nokey.err
tap_is "a From domain with no row is not signed (exit 1)" "$?" 1
tap_like "... and says why" "$(cat nokey.err)" 'no_key: no signing table row for other\.test'
printf 'From: a@sign.test\nFrom: b@sign.test\nSubject: x\n\nbody\n' | "$signer" -c moat.conf >/dev/null 2>twofrom.err
tap_like "two From fields: not signed" "$(cat twofrom.err)" 'no_from: several From fields'

# mxmoat-keygen --check through the configured resolver (nsd).
"$keygen" --check -c moat.conf s2026e sign.test >check.out
tap_is "--check: published key matches (exit 0)" "$?" 0
tap_like "--check says OK" "$(cat check.out)" 'OK, the published key matches .*ed\.key'
"$keygen" --check -c moat.conf --key other.key s2026e sign.test >check2.out
tap_is "--check: another key is a mismatch (exit 1)" "$?" 1
tap_like "--check says MISMATCH" "$(cat check2.out)" 'MISMATCH'
"$keygen" --check -c moat.conf --key other.key s2027 sign.test >check3.out
tap_is "--check: no record yet (exit 1)" "$?" 1
tap_like "--check says to publish first" "$(cat check3.out)" 'no TXT record \(nxdomain\)'
tap_done
