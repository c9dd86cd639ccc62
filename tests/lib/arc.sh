# arc.sh - the ARC fixture of the e2e tests (source it after tap.sh and dns.sh; bash).
#
#   arc_fixture WORK PORT
#       Make the keys in WORK (dknewkey's rsa key for the author and the dkimpy sealers
#       lists/fwd/relay.arc.test; mxmoat-keygen's seal.key for relay.arc.test and ed.key,
#       ed25519, for fwd.arc.test, owned by nobody for the signer), serve author.test (SPF
#       192.0.2.0/24 -all, p=reject) and arc.test with nsd on 127.0.0.1:PORT, and have dkimpy
#       (tests/e2e/data/arc_chains.py) write the chains WORK/NAME.eml and its verdicts
#       WORK/dkimpy ("NAME pass|fail|none"). Bails out of the test when something is missing.
# Needs $top_srcdir and $top_builddir as absolute paths.

arc__zone() {
	printf '$ORIGIN %s.\n$TTL 300\n' "$1"
	printf '@\tIN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' "$1" "$1"
	printf '@\tIN NS ns\nns\tIN A 127.0.0.1\n@\tIN A 192.0.2.10\n'
}

arc_fixture() {
	local work=$1 port=$2 s served
	(cd "$work" && dknewkey rsa >/dev/null 2>&1 &&
		"$top_builddir/tools/mxmoat-keygen" -o seal.key seal relay.arc.test >seal.out &&
		"$top_builddir/tools/mxmoat-keygen" -a ed25519 -o ed.key ed fwd.arc.test >ed.out) ||
		tap_bail "cannot make keys"
	[ "$(id -u)" = 0 ] && chown nobody "$work/seal.key" "$work/ed.key"
	{
		arc__zone author.test
		dns_txt @ "v=spf1 ip4:192.0.2.0/24 -all"
		dns_txt _dmarc "v=DMARC1; p=reject"
		dns_txt rsa._domainkey "$(cat "$work/rsa.dns")"
	} >"$work/author.test.zone"
	{
		arc__zone arc.test
		for s in lists fwd relay; do
			printf '%s\tIN A 192.0.2.20\n' $s
			dns_txt rsa._domainkey.$s "$(cat "$work/rsa.dns")"
		done
		grep -h '_domainkey' "$work/seal.out" "$work/ed.out"
	} >"$work/arc.test.zone"
	dns_wait_free "$port"
	dns_start "$port" .="$top_srcdir/tests/e2e/data/root.zone" \
		author.test="$work/author.test.zone" arc.test="$work/arc.test.zone" ||
		tap_bail "nsd did not start"
	served=$("$top_builddir/tests/helpers/dns_query" "127.0.0.1@$port" "" \
		rsa._domainkey.lists.arc.test TXT | sed -n 2p)
	[ "$served" = "$(cat "$work/rsa.dns")" ] ||
		tap_bail "127.0.0.1:$port does not serve this run's keys (another server on the port?)"
	/usr/bin/python3 "$top_srcdir/tests/e2e/data/arc_chains.py" "$work" >"$work/dkimpy" \
		2>"$work/err" || tap_bail "arc_chains.py failed: $(tail -3 "$work/err")"
}
