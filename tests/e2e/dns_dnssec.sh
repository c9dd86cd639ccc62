#!/bin/bash
# dns_dnssec.sh - DNSSEC validation in the DNS layer (dns_dnssec_trust_anchor): spf.test signed
# with ldns-signzone at test time, served by nsd on 127.0.0.1:15340, and queried through
# tests/helpers/dns_query with and without the zone's key as trust anchor, with a record altered
# after signing, and with a trust anchor that does not match.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v ldns-signzone >/dev/null || tap_skip_all "ldns-signzone not installed (Debian package ldnsutils)"
port_lock dns-dnssec || tap_skip_all "another run of this test held its ports for 600 s"
PORT=15340
Q=$top_builddir/tests/helpers/dns_query
work=$(mktemp -d)
trap 'dns_stop; rm -rf "$work"' EXIT

# sign ZONEFILE OUT - sign spf.test with a fresh KSK and ZSK; the KSK's DNSKEY goes to OUT.key.
sign() {
	local ksk zsk
	(cd "$work" && cp "$1" zone &&
		ksk=$(ldns-keygen -a ECDSAP256SHA256 -k spf.test) &&
		zsk=$(ldns-keygen -a ECDSAP256SHA256 spf.test) &&
		ldns-signzone -f "$2.signed" -o spf.test zone "$zsk" "$ksk" &&
		cp "$ksk.key" "$2.key" && rm -f K*) >/dev/null
}
# sign runs in $work: the zone's path must not be relative to where make check started
zone=$(cd "$top_srcdir/tests/e2e/data" && pwd)/spf.test.zone
sign "$zone" "$work/good" || tap_bail "signing failed"
sign "$zone" "$work/other" || tap_bail "signing failed"

dns_start $PORT spf.test="$work/good.signed" || tap_bail "nsd did not start"
tap_is "signed TXT validates: secure" "$("$Q" 127.0.0.1@$PORT "$work/good.key" soft.spf.test TXT)" \
	"ok secure=1 n=1
v=spf1 ~all"
tap_is "signed A validates: secure" "$("$Q" 127.0.0.1@$PORT "$work/good.key" mail.spf.test A)" \
	"ok secure=1 n=1
c633644d"
tap_is "authenticated denial: nxdomain" "$("$Q" 127.0.0.1@$PORT "$work/good.key" nope.spf.test TXT)" \
	"nxdomain secure=0 n=0"
tap_is "no trust anchor: the same answer, not secure" \
	"$("$Q" 127.0.0.1@$PORT "" soft.spf.test TXT)" "ok secure=0 n=1
v=spf1 ~all"
tap_is "a trust anchor of another key: bogus is tempfail" \
	"$("$Q" 127.0.0.1@$PORT "$work/other.key" soft.spf.test TXT)" "tempfail secure=0 n=0"
dns_stop

# The same signed zone with one TXT record changed after signing.
sed 's/"v=spf1 ~all"/"v=spf1 +all"/' "$work/good.signed" >"$work/tampered.signed"
cmp -s "$work/good.signed" "$work/tampered.signed"
tap_is "the tampered zone differs" "$?" 1
dns_start $PORT spf.test="$work/tampered.signed" || tap_bail "nsd did not start"
tap_is "record altered after signing: bogus is tempfail" \
	"$("$Q" 127.0.0.1@$PORT "$work/good.key" soft.spf.test TXT)" "tempfail secure=0 n=0"
tap_is "an untouched record of that zone still validates" \
	"$("$Q" 127.0.0.1@$PORT "$work/good.key" mail.spf.test A)" "ok secure=1 n=1
c633644d"
tap_is "without validation the altered record is taken as given" \
	"$("$Q" 127.0.0.1@$PORT "" soft.spf.test TXT)" "ok secure=0 n=1
v=spf1 +all"
dns_stop

# An unsigned zone where the trust anchor says it must be signed.
dns_start $PORT spf.test="$top_srcdir/tests/e2e/data/spf.test.zone" || tap_bail "nsd did not start"
tap_is "unsigned answer under a trust anchor: tempfail" \
	"$("$Q" 127.0.0.1@$PORT "$work/good.key" soft.spf.test TXT)" "tempfail secure=0 n=0"
tap_is "missing trust-anchor file: refused at start" \
	"$("$Q" 127.0.0.1@$PORT "$work/none.key" soft.spf.test TXT 2>&1; echo "rc=$?")" \
	"dns_query: dns_dnssec_trust_anchor $work/none.key: No such file or directory
rc=2"
tap_done
