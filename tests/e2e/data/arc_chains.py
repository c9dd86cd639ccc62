# arc_chains.py - ARC chains made and judged by dkimpy (python3-dkim), for tests/e2e/arc_cross.sh.
# Run with Debian's /usr/bin/python3: arc_chains.py WORK. Reads the keys made by the test
# (WORK/rsa.key, WORK/rsa.dns; dkimpy seals ARC with rsa-sha256 only), writes WORK/NAME.eml for every chain and prints
# one line per chain: "NAME dkimpy-verdict", the verdict being pass, fail or none (dkimpy's
# "chain terminated", a cv=fail seal, is fail: RFC 8617 5.2 step 2).
import importlib.util
import re
import sys

import dkim

work = sys.argv[1]
RSA = open(work + '/rsa.key', 'rb').read()
KEYS = {
    b'rsa._domainkey.author.test.': open(work + '/rsa.dns', 'rb').read(),
}
for sealer in (b'lists.arc.test', b'fwd.arc.test', b'relay.arc.test'):
    KEYS[b'rsa._domainkey.' + sealer + b'.'] = KEYS[b'rsa._domainkey.author.test.']


def dns(name, timeout=5):
    return KEYS.get(name)


def verdict(msg):
    cv, _, _ = dkim.arc_verify(msg, dnsfunc=dns)
    return {dkim.CV_Pass: 'pass', dkim.CV_None: 'none'}.get(cv, 'fail')


# dkimpy refuses to seal past instance 50 (RFC 8617 4.2.1); the 51-set chain is made by a copy of
# the module with that limit raised. Its verifier has no such limit.
spec = importlib.util.find_spec('dkim')
src = open(spec.origin).read().replace('INSTANCE_LIMIT = 50', 'INSTANCE_LIMIT = 60')
assert 'INSTANCE_LIMIT = 60' in src
unlimited = importlib.util.module_from_spec(importlib.util.spec_from_loader('dkim', loader=None))
unlimited.__dict__['__package__'] = 'dkim'
exec(compile(src, spec.origin, 'exec'), unlimited.__dict__)


def seal(msg, sealer, arc=None, results=None, mod=dkim, srv=None):
    """One hop: its A-R (arc= there says the cv; SRV, its authserv-id, is the sealer unless
    given), then the ARC set dkimpy makes."""
    srv = srv or sealer
    ar = results or b'spf=fail smtp.mailfrom=alice@author.test; dkim=pass header.d=author.test'
    if arc is not None:
        ar += b'; arc=' + arc
    msg = b'Authentication-Results: ' + srv + b'; ' + ar + b'\r\n' + msg
    sets = mod.arc_sign(msg, b'rsa', sealer, RSA, srv, timestamp=1700000000)
    assert sets, 'dkimpy made no ARC set'
    return b''.join(sets) + msg


base = (b'From: Alice <alice@author.test>\r\nTo: bob@example.net\r\nSubject: cross-check\r\n'
        b'Date: Sun, 22 Nov 2026 21:00:00 +0000\r\nMessage-ID: <arc@author.test>\r\n\r\n'
        b'Hello Bob,\r\n  two spaces, a tab\tand trailing space \r\nhere.\r\n')
signed = dkim.sign(base, b'rsa', b'author.test', RSA, canonicalize=(b'relaxed', b'relaxed')) + base
hop1 = seal(signed, b'lists.arc.test')
hop2 = seal(hop1, b'fwd.arc.test', arc=b'pass')
hop3 = seal(hop2, b'relay.arc.test', arc=b'pass')
chains = {
    'plain': base,
    'hop1': hop1,
    'hop2': hop2,
    'hop3': hop3,
    # a list footer between hop 1 and hop 2: the chain passes, AMS 1 does not (oldest-pass 2)
    'footer': seal(hop1 + b'-- \r\nlist footer\r\n', b'fwd.arc.test', arc=b'pass'),
    # the body changed after hop 2 sealed it
    'body_after_hop2': hop2.replace(b'Hello Bob', b'Hello Rob'),
    # a signed header field changed after hop 3
    'subject_after_hop3': hop3.replace(b'Subject: cross-check', b'Subject: cross-check!'),
    # the AMS of hop 2 claims instance 3
    'wrong_i': re.sub(rb'(ARC-Message-Signature: i=)2;', rb'\g<1>3;', hop2, count=1),
    # hop 2 found the chain broken (cv=fail); hop 3 seals over it claiming cv=pass
    'cv_fail_middle': seal(seal(hop1, b'fwd.arc.test', arc=b'fail'), b'relay.arc.test', arc=b'pass'),
    # the AAR of instance 1 twice
    'duplicate': re.sub(rb'(ARC-Authentication-Results: i=1;[^\r]*\r\n(?:[ \t][^\r]*\r\n)*)',
                        rb'\1\1', hop2, count=1),
}
many = signed
for i in range(1, 51):
    many = seal(many, b'lists.arc.test', arc=None if i == 1 else b'pass', srv=b'mx%d.lists.arc.test' % i)
chains['fifty'] = many
chains['fifty_one'] = seal(many, b'lists.arc.test', arc=b'pass', mod=unlimited, srv=b'mx51.lists.arc.test')
# the forwarded-mail case of arc_trusted_sealers: the list breaks the author's DKIM signature
# (a footer) and seals what it saw; the second one's sealer saw a pass of an unaligned domain
listed = signed.replace(b'Hello Bob', b'[list] Hello Bob')
chains['list_footer'] = seal(listed, b'lists.arc.test')
chains['list_unaligned'] = seal(listed, b'lists.arc.test', results=b'spf=pass smtp.mailfrom=bounce@lists.arc.test; dkim=pass header.d=lists.arc.test')
for name, msg in chains.items():
    open('%s/%s.eml' % (work, name), 'wb').write(msg)
    print(name, verdict(msg))
