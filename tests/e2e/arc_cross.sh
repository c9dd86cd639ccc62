#!/bin/bash
# arc_cross.sh - ARC (RFC 8617) through mxmoat-check against an independent implementation:
# chains of 1 to 3 hops, 50 and 51 sets sealed by python3-dkim (dkimpy), and broken ones (the
# body changed after hop 2, a signed header after hop 3, a wrong i=, a cv=fail seal in the middle,
# a duplicate AAR) must get the same verdict here and in dkimpy's arc_verify; the one place they
# differ is the 51-set chain, which dkimpy's verifier accepts and RFC 8617 4.2.1 does not (dkimpy
# refuses to seal it: the test seals it with a copy of the module whose limit is raised). Then
# arc_trusted_sealers: a p=reject message whose DKIM signature a list broke (a footer) is
# rejected, unless the list's seal is trusted and its AAR shows the author's aligned DKIM pass;
# an untrusted sealer, an AAR naming an unaligned domain, or a failed chain change nothing.
# Keys are made at test time (dknewkey) and served by nsd on 127.0.0.1:15410 (tests/lib/dns.sh).
top_srcdir=$(cd "$top_srcdir" && pwd)
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/lock.sh"
. "$top_srcdir/tests/lib/arc.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
/usr/bin/python3 -c 'import dkim, authres' 2>/dev/null || tap_skip_all "python3-dkim or python3-authres not installed"
port_lock arc-cross || tap_skip_all "another run of this test held its ports for 600 s"
PORT=15410
CHECK=$top_builddir/tools/mxmoat-check
work=$(mktemp -d)
trap 'dns_stop; rm -rf "$work"' EXIT

arc_fixture "$work" $PORT

# check FILE ARGS... - mxmoat-check from the list's address (outside author.test's SPF record):
# sets OUT, RC, AR.
check() {
	local f=$1
	shift
	OUT=$("$CHECK" --resolver 127.0.0.1@$PORT -o authserv_id=mx.test -o dns_timeout=2s \
		--client-ip 198.51.100.7 --helo lists.arc.test --mail-from bounce@lists.arc.test "$@" "$f" 2>&1)
	RC=$?
	AR=$(printf '%s\n' "$OUT" | grep '^Authentication-Results: ')
}
# arc_of AR - the arc= result of our Authentication-Results
arc_of() {
	sed -n 's/.*; arc=\([a-z]*\).*/\1/p' <<<"$1"
}
dkimpy() {
	sed -n "s/^$1 //p" "$work/dkimpy"
}

# name, our verdict, the reason or header.oldest-pass we write
while read -r name want detail; do
	check "$work/$name.eml"
	tap_is "$name: arc=$want" "$(arc_of "$AR")" "$want"
	tap_has "$name: $detail" "$AR" "$detail"
	if [ "$name" = fifty_one ]; then
		tap_is "$name: dkimpy's verifier has no instance limit" "$(dkimpy "$name")" pass
	else
		tap_is "$name: dkimpy agrees" "$(dkimpy "$name")" "$want"
	fi
done <<'EOF'
plain none dkim=none; arc=none; dmarc=fail
hop1 pass arc=pass header.oldest-pass=0; dmarc=pass
hop2 pass arc=pass header.oldest-pass=0; dmarc=pass
hop3 pass arc=pass header.oldest-pass=0; dmarc=pass
footer pass arc=pass header.oldest-pass=2; dmarc=fail
fifty pass arc=pass header.oldest-pass=0;
body_after_hop2 fail arc=fail reason="ARC-Message-Signature 2: body hash did not verify"
subject_after_hop3 fail arc=fail reason="ARC-Message-Signature 3: signature verification failed"
wrong_i fail arc=fail reason="no ARC-Message-Signature for instance 2"
cv_fail_middle fail arc=fail reason="ARC-Seal 2 says cv=fail"
duplicate fail arc=fail reason="duplicate ARC-Authentication-Results for instance 1"
fifty_one fail arc=fail reason="ARC-Seal instance 51 is above 50"
EOF
check "$work/hop3.eml" -o arc_max_instances=2
tap_has "hop3 with arc_max_instances=2: fail" "$AR" \
	'arc=fail reason="ARC-Seal instance 3 is above arc_max_instances"'
check "$work/hop3.eml" -o arc_verify=no
tap_is "hop3 with arc_verify=no: no arc= result" "$(arc_of "$AR")" ""

# ---- arc_trusted_sealers ----
list_fail='dmarc=fail reason="no aligned SPF or DKIM pass for author.test (relaxed alignment)" header.from=author.test policy.dmarc=reject'
check "$work/list_footer.eml"
tap_has "list footer, no trusted sealer: the author's signature broke" "$AR" 'dkim=fail reason="body hash did not verify" header.d=author.test'
tap_has "list footer, no trusted sealer: arc=pass, dmarc=fail" "$AR" "arc=pass header.oldest-pass=0; $list_fail"
tap_is "list footer, no trusted sealer: rejected" "$RC" 1
tap_has "list footer, no trusted sealer: 550" "$OUT" "verdict: reject 550 5.7.1 Message rejected: DMARC policy of author.test"
check "$work/list_footer.eml" -o arc_trusted_sealers=arc.test --explain
tap_has "list footer, trusted sealer: the override is in policy.dmarc" "$AR" \
	"$list_fail (override trusted_forwarder: arc sealed by lists.arc.test)"
tap_is "list footer, trusted sealer: accepted" "$RC" 0
tap_has "list footer, trusted sealer: the decision says why" "$OUT" \
	"override trusted_forwarder: arc=pass and the ARC-Authentication-Results of instance 1, sealed by lists.arc.test, shows an aligned pass"
check "$work/list_footer.eml" -o arc_trusted_sealers=fwd.arc.test
tap_is "list footer, another sealer trusted: rejected" "$RC" 1
check "$work/list_unaligned.eml" -o arc_trusted_sealers=lists.arc.test
tap_has "trusted sealer's AAR shows only unaligned passes: no override" "$AR" "arc=pass header.oldest-pass=0; $list_fail"
tap_is "trusted sealer's AAR shows only unaligned passes: rejected" "$RC" 1
sed 's/\[list\] Hello Bob/[list] Hello Rob/' "$work/list_footer.eml" >"$work/list_broken.eml"
check "$work/list_broken.eml" -o arc_trusted_sealers=lists.arc.test
tap_has "trusted sealer, chain broken after it: arc=fail" "$AR" 'arc=fail reason="ARC-Message-Signature 1: body hash did not verify"'
tap_is "trusted sealer, chain broken after it: rejected" "$RC" 1

# ---- arc_seal: our ARC set on mail we pass on, checked by dkimpy and by ourselves ----
{ tail -n 1 "$work/seal.out"; tail -n 1 "$work/ed.out"; } >"$work/table"
printf 'dkim_signing_table = %s/table\nauthserv_id = mx.test\narc_seal = yes\n' "$work" >"$work/seal.conf"
pyarc() {
	/usr/bin/python3 "$top_srcdir/tests/helpers/dkim-verify.py" --arc --dns 127.0.0.1@$PORT <"$1"
}
# seal IN OUT SEALER - our A-R of IN (as the inbound daemon adds it), then sign_message seals
seal() {
	check "$1"
	{ printf '%s\n' "$AR"; cat "$1"; } >"$2.in"
	"$top_builddir/tests/helpers/sign_message" -c "$work/seal.conf" -o "arc_seal_domain=$3" \
		<"$2.in" >"$2" 2>"$2.err"
}
seal "$work/hop2.eml" "$work/sealed3.eml" relay.arc.test
tap_has "hop 3 sealed by us (rsa-sha256)" "$(cat "$work/sealed3.eml.err")" \
	"arc-seal: sealed: i=3 cv=pass d=relay.arc.test s=seal a=rsa-sha256"
tap_is "our ARC set is on top: seal, signature, results" \
	"$(grep -o '^ARC-[A-Za-z-]*: i=[0-9]*' "$work/sealed3.eml" | head -3 | tr '\n' ' ')" \
	"ARC-Seal: i=3 ARC-Message-Signature: i=3 ARC-Authentication-Results: i=3 "
tap_has "the AAR copies our Authentication-Results" "$(grep '^ARC-Authentication-Results: i=3' "$work/sealed3.eml")" \
	"ARC-Authentication-Results: i=3; mx.test; spf=none"
tap_is "dkimpy verifies the chain we sealed" "$(pyarc "$work/sealed3.eml")" pass
check "$work/sealed3.eml"
tap_has "so do we" "$AR" "arc=pass header.oldest-pass=0"
seal "$work/sealed3.eml" "$work/sealed4.eml" fwd.arc.test
tap_has "hop 4 sealed by us (ed25519-sha256)" "$(cat "$work/sealed4.eml.err")" \
	"arc-seal: sealed: i=4 cv=pass d=fwd.arc.test s=ed a=ed25519-sha256"
check "$work/sealed4.eml"
tap_has "we verify our ed25519 seal" "$AR" "arc=pass header.oldest-pass=0"
tap_is "dkimpy does not verify ARC with ed25519 (rsa-sha256 only)" "$(pyarc "$work/sealed4.eml")" fail
seal "$work/plain.eml" "$work/sealed1.eml" relay.arc.test
tap_has "a message with our A-R and no chain: instance 1, cv=none" "$(cat "$work/sealed1.eml.err")" \
	"arc-seal: sealed: i=1 cv=none d=relay.arc.test"
tap_is "dkimpy verifies our first set" "$(pyarc "$work/sealed1.eml")" pass
seal "$work/body_after_hop2.eml" "$work/sealed_broken.eml" relay.arc.test
tap_has "a chain that failed here is sealed with cv=fail" "$(cat "$work/sealed_broken.eml.err")" \
	"arc-seal: sealed: i=3 cv=fail"
tap_is "dkimpy: fail" "$(pyarc "$work/sealed_broken.eml")" fail
check "$work/sealed_broken.eml"
tap_has "we: fail" "$AR" 'arc=fail reason="ARC-Seal 3 says cv=fail"'
"$top_builddir/tests/helpers/sign_message" -c "$work/seal.conf" -o arc_seal_domain=relay.arc.test \
	<"$work/plain.eml" >/dev/null 2>"$work/skip.err"
tap_has "no chain and no A-R of ours: not sealed" "$(cat "$work/skip.err")" \
	"arc-seal: skipped: nothing to attest: no ARC chain and no Authentication-Results of ours"
seal "$work/fifty.eml" "$work/sealed51.eml" relay.arc.test
tap_has "a chain of 50 sets is not sealed again" "$(cat "$work/sealed51.eml.err")" \
	"arc-seal: skipped: the chain has 50 sets already (RFC 8617 4.2.1)"
tap_done
