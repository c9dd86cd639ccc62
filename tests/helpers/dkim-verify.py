#!/usr/bin/python3
# dkim-verify.py - verify every DKIM-Signature of a message with python3-dkim (dkimpy), an
# implementation independent of libopendkim, taking public keys from a zone-style file instead of
# DNS when --keys is given. Prints one line per signature: "s=SEL a=ALG pass|fail".
# Exit 0 when every signature verifies and there is at least one, else 1.
#   dkim-verify.py [--arc] [--keys FILE | --dns ADDR@PORT] < message
# With --arc it judges the ARC chain instead (dkimpy's arc_verify) and prints pass, fail or none
# (a seal with cv=fail, which dkimpy reports as a chain that ended, is fail); exit 0 on pass.
# FILE lines: "SEL._domainkey.DOMAIN TXT-CONTENT" (the strings concatenated). --dns asks that
# server (the nsd fixture) for the key records, with dnspython.
import re
import sys

import dkim

keys = {}
args = sys.argv[1:]
arc = "--arc" in args
args = [a for a in args if a != "--arc"]
if len(args) == 2 and args[0] == "--keys":
    with open(args[1], "rb") as f:
        for line in f:
            name, _, txt = line.strip().partition(b" ")
            if name:
                keys[name.rstrip(b".").lower() + b"."] = txt

server = None
if len(args) == 2 and args[0] == "--dns":
    server = args[1].split("@")
    keys = None

def dnsfunc(name, timeout=5):
    n = name if isinstance(name, bytes) else name.encode()
    n = n.rstrip(b".").lower() + b"."
    if server is not None:
        import dns.resolver
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [server[0]]
        r.port = int(server[1])
        r.lifetime = 5
        try:
            ans = r.resolve(n.decode(), "TXT")
        except Exception:
            return b""
        return b"".join(b"".join(rr.strings) for rr in ans)
    return keys.get(n, b"")

msg = sys.stdin.buffer.read()
if arc:
    cv, _, _ = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    verdict = {dkim.CV_Pass: "pass", dkim.CV_None: "none"}.get(cv, "fail")
    print(verdict)
    sys.exit(0 if verdict == "pass" else 1)
d = dkim.DKIM(msg)
nsig = 0
ok = True
for i, (name, value) in enumerate(d.headers):
    if name.lower() != b"dkim-signature":
        continue
    v = re.sub(rb"\s+", b"", value)
    sel = re.search(rb"(?:^|;)s=([^;]*)", v).group(1).decode()
    alg = re.search(rb"(?:^|;)a=([^;]*)", v).group(1).decode()
    try:
        res = d.verify(idx=nsig, dnsfunc=dnsfunc) if (keys or server) else d.verify(idx=nsig)
    except dkim.ValidationError:
        res = False
    print("s=%s a=%s %s" % (sel, alg, "pass" if res else "fail"))
    ok = ok and res
    nsig += 1
sys.exit(0 if ok and nsig > 0 else 1)
