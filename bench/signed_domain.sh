# shellcheck shell=bash
# bench/signed_domain.sh - the "checks on" domain of the proxy benchmarks (source it; bash): the
# domain bench.test, whose SPF record allows 127.0.0.1, whose DKIM key (selector sel, rsa, made
# by dknewkey) is published and whose DMARC policy is p=reject, and one 10 KB message from it,
# DKIM-signed by dkimpy (relaxed/simple, From, To, Subject, Date and Message-ID signed).
#
#   signed_domain_ok           0 when the tools are there (dknewkey, Debian's python3-dkim)
#   signed_domain DIR          write DIR/sel.key, DIR/bench.test.zone (for tests/lib/dns.sh's
#                              dns_start: bench.test=DIR/bench.test.zone) and DIR/signed.msg
#                              (LF line ends, as smtp-source -F and sendmail take it); 1 on failure

signed_domain_ok() {
	command -v dknewkey >/dev/null && /usr/bin/python3 -c 'import dkim' 2>/dev/null
}

signed_domain() {
	local dir=$1
	(cd "$dir" && dknewkey sel >/dev/null 2>&1) || return 1
	# shellcheck disable=SC2016 # $ORIGIN and $TTL are the zone file's
	{
		printf '$ORIGIN bench.test.\n$TTL 300\n'
		printf '@\tIN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300\n'
		printf '@\tIN NS ns\nns\tIN A 127.0.0.1\n'
		printf '@\tIN TXT "v=spf1 ip4:127.0.0.1 -all"\n_dmarc\tIN TXT "v=DMARC1; p=reject"\n'
		printf 'sel._domainkey\tIN TXT'
		printf '%s\n' "$(cat "$dir/sel.dns")" | fold -w 200 | while IFS= read -r part; do printf ' "%s"' "$part"; done
		printf '\n'
	} > "$dir/bench.test.zone"
	/usr/bin/python3 - "$dir/sel.key" "$dir/signed.msg" <<'PY'
import sys, dkim
body = b"".join(b"line %04d " % i + b"x" * 64 + b"\r\n" for i in range(140))
msg = (b"From: Alice <a@bench.test>\r\nTo: b@example.net\r\nSubject: bench\r\n"
       b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@bench.test>\r\n\r\n" + body)
sig = dkim.sign(msg, b"sel", b"bench.test", open(sys.argv[1], "rb").read(),
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
open(sys.argv[2], "wb").write((sig + msg).replace(b"\r\n", b"\n"))
PY
}
