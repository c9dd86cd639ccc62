#!/usr/bin/python3
# dkim-verify.py - verify every DKIM-Signature of a message with python3-dkim (dkimpy), an
# implementation independent of libopendkim, taking public keys from a zone-style file instead of
# DNS when --keys is given. Prints one line per signature: "s=SEL a=ALG pass|fail".
# Exit 0 when every signature verifies and there is at least one, else 1.
#   dkim-verify.py [--keys FILE] < message
# FILE lines: "SEL._domainkey.DOMAIN TXT-CONTENT" (the strings concatenated).
import re
import sys

import dkim

keys = {}
args = sys.argv[1:]
if len(args) == 2 and args[0] == "--keys":
    with open(args[1], "rb") as f:
        for line in f:
            name, _, txt = line.strip().partition(b" ")
            if name:
                keys[name.rstrip(b".").lower() + b"."] = txt

def dnsfunc(name, timeout=5):
    n = name if isinstance(name, bytes) else name.encode()
    n = n.rstrip(b".").lower() + b"."
    return keys.get(n, b"")

msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
nsig = 0
ok = True
for i, (name, value) in enumerate(d.headers):
    if name.lower() != b"dkim-signature":
        continue
    v = re.sub(rb"\s+", b"", value)
    sel = re.search(rb"(?:^|;)s=([^;]*)", v).group(1).decode()
    alg = re.search(rb"(?:^|;)a=([^;]*)", v).group(1).decode()
    res = d.verify(idx=nsig, dnsfunc=dnsfunc) if keys else d.verify(idx=nsig)
    print("s=%s a=%s %s" % (sel, alg, "pass" if res else "fail"))
    ok = ok and res
    nsig += 1
sys.exit(0 if ok and nsig > 0 else 1)
