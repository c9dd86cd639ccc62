#!/usr/bin/env python3
"""loadgen.py - SMTP load with a ledger, for the fault suite (tests/fault/) and tests/soak (stdlib).

usage:
  loadgen.py send --port P --run ID --ledger FILE [--sessions N] [--messages M] [--seconds S]
                  [--mix KIND,...] [--hold-src ADDR] [--per-session K] [--timeout S]
  loadgen.py verify --ledger FILE --dumps DIR [--ledger FILE ...]
  loadgen.py dnsdelay --port P --upstream P [--delay-ms MS] [--seed N]
  loadgen.py replay --port P --corpus DIR [--corpus DIR ...] [--skip N] [--sessions N] [--seconds S]
  loadgen.py records --corpus KIND=DIR [--corpus KIND=DIR ...] (--zone FILE |
                  --port P --run ID --ledger FILE [--sessions N] [--seconds S])
  loadgen.py idle --port P --sessions N [--slowloris N] [--spread] [--replies FILE] --ready FILE
                  --until FILE

send: N sessions at once (default 20), until M messages were tried (default 500) or S seconds
  passed (default 120). Each session connects, reads the greeting, EHLO, then sends up to K
  messages (default 5) and QUIT; then it connects again. KIND picks, round robin over the
  sessions: plain, starttls (STARTTLS first; the certificate is not verified), pipelined (MAIL,
  RCPT and DATA in one write when PIPELINING is offered) and hold (from --hold-src, default
  127.0.0.2, which the test puts in internal_networks so the proxy holds and signs the message).
  Every message has a unique id in an X-Load-Id field and the Subject. One ledger line per
  message tried: "ID OUTCOME DETAIL", OUTCOME one of
    250        the client got 250 to the final dot: the message must be at the backend
    reply      another reply to a command of the transaction (DETAIL: the command and code)
    nodot      the connection ended after the final dot, before its reply: either way
    conn       the connection ended before the final dot was sent: never delivered by us
    refused    no connection, or no 220 (closed or silent instead): DETAIL the reason
  Prints "sent=N ok=N reply=N nodot=N conn=N refused=N p50_ms=X p95_ms=X p99_ms=X" (the
  percentiles of MAIL-to-250-for-the-dot times) and exits 0 (outcomes are counted, not judged:
  the test judges them).

verify: reads the ledgers and every file under DIR (smtp-sink -d dumps or any file holding the
  message), and prints key=value lines:
    tried, ok (got 250), at_backend (ok ones found), lost (ok ones not found, listed on stderr),
    dups (ids found more than once), nodot_delivered, nodot_missing, not_ok_delivered (a non-250
    reply to the dot, yet delivered: listed on stderr), conn_delivered (never sent a dot, yet
    delivered: impossible, listed), strangers (ids of these runs at the backend that no ledger
    tried; the dumps of earlier runs are not counted)

idle: N sessions that connect, read the greeting (220) and say nothing, and M slowloris sessions that
  send a command one byte every 2 s; writes FILE --ready once all are connected, then holds them
  until the file --until exists (bounded: 300 s). --spread: from 127.0.1.1, 127.0.2.1 ... (200
  sessions an address) instead of 127.0.0.1. --replies: what the sessions that got no 220 got
  instead, "COUNT<TAB>LINE" (LINE: the first line, "closed", or an exception's name such as
  TimeoutError), before FILE --ready is written. Prints "idle=N slowloris=N open_at_end=N".

replay: every file under the --corpus folders (fuzz corpora: byte 0 of a session target's input
  picks options, --skip 1 drops it) sent as a client's bytes over its own connection, --sessions at
  once, round after round until --seconds passed (at least one round); the replies are read and
  thrown away (bounded: 2 s of silence ends a connection). Prints "replayed=N rounds=N errors=N".

records: the corpora of the parsers below the session, fed to them the way a sender would: as DNS
  records and message fields. Each input gets a domain of its own under "test." (KIND letter and
  number, e.g. s12.test) and becomes, by KIND (the fuzz target whose corpus DIR is):
    spf     the SPF record of the domain ("v=spf1 " prepended unless the input starts with '!',
            as fuzz_spf_record does), which is the MAIL FROM domain
    macro   an SPF macro-string (fuzz_spf_macro: byte 0 bit 0 the explanation mode, then the local
            part up to a NUL): "v=spf1 exists:MACRO -all", or "v=spf1 -all exp=x.DOMAIN" with the
            macro-string as the explanation's record; the local part is MAIL FROM's when it is a
            dot-atom
    dmarc   the DMARC record at _dmarc.DOMAIN, the From domain (SPF neutral, no signature)
    dkim    fuzz_dkim_verify's and fuzz_arc's input: the first line the key at
    arc     sel._domainkey.DOMAIN, the rest the message, "example.com" in it replaced by DOMAIN
    from    fuzz_from's: up to three From fields (NUL-separated) in a message
    sig     fuzz_dkim_sig_tags': the value of a DKIM-Signature field in a message
  Records longer than the resolver takes (8,192 bytes) are left out. --zone FILE writes the zone
  "test." (TTL 0: every message asks again) with the names fuzz_spf_record's fixture has; then,
  with the server running, the same command with --port sends one message per input (an X-Load-Id
  field first), --sessions at once over kept-open sessions, round after round until --seconds
  passed (at least one round), with a ledger line per message as for send. Prints
  "inputs=N rounds=N sent=N ok=N reply=N nodot=N conn=N refused=N".

dnsdelay: a UDP forwarder on 127.0.0.1:--port to the DNS server on 127.0.0.1:--upstream that holds
  each query for a random 0 to --delay-ms (seeded) before passing it on: a slow resolver path.
  Runs until killed; prints "listening" once it is up.

backend: a scripted MTA on 127.0.0.1:P for faults smtp-sink has no option for. --mode
  nogreet     accepts and never says a word
  middata     greets and answers like a sink, but closes the connection in the middle of every
              message's content (after its first line): nothing is ever delivered
  random      answers each command 250 (DATA 354), or, with --odds percent each, a 4xx, a 5xx or
              a dropped connection, seeded (--seed): every message it answers 250 to the final dot
              is written to --dumps as a file of its own first
  slow        answers like random with no faults, each reply after a random wait of up to
              --delay-ms (seeded): a slow or distant MTA
  Runs until killed; prints "listening" once it accepts.
"""
import argparse
import asyncio
import collections
import os
import re
import ssl
import sys
import time

HOLD_FROM = "hold@example.org"


class Ledger:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.counts = collections.Counter()
        self.latency = []  # seconds from MAIL to the 250 for the dot

    def note(self, mid, outcome, detail=""):
        self.f.write("%s %s %s\n" % (mid, outcome, detail))
        self.counts["ok" if outcome == "250" else outcome] += 1
        self.counts["sent"] += 1


class Conn:
    def __init__(self, r, w, timeout):
        self.r, self.w, self.timeout = r, w, timeout

    async def reply(self):
        """one whole reply: (code, lines); raises on EOF or a timeout"""
        lines = []
        while True:
            line = await asyncio.wait_for(self.r.readline(), self.timeout)
            if not line.endswith(b"\n"):
                raise ConnectionError("eof")
            text = line.rstrip(b"\r\n").decode("latin-1")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                if not text[:3].isdigit():
                    raise ConnectionError("bad reply " + text[:40])
                return int(text[:3]), lines

    async def send(self, data):
        self.w.write(data)
        await asyncio.wait_for(self.w.drain(), self.timeout)


def message(mid, sender, size):
    body = "".join("line %d of %s %s\r\n" % (i, mid, "x" * 40) for i in range(size))
    return ("From: <%s>\r\nTo: <rcpt@example.net>\r\nSubject: load %s\r\nMessage-ID: <%s@load.test>\r\n"
            "X-Load-Id: %s\r\n\r\n%s..line starting with a dot (stuffed)\r\n" % (sender, mid, mid, mid, body)).encode()


async def session_once(a, kind, wid, seq, ledger, budget):
    """one connection: greeting, EHLO, [STARTTLS], up to per_session messages, QUIT"""
    src = a.hold_src if kind == "hold" else "127.0.0.1"
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", a.port, local_addr=(src, 0)), a.timeout)
    except (OSError, asyncio.TimeoutError) as e:
        mid = "%s-%d-%d" % (a.run, wid, seq[0])
        seq[0] += 1
        budget[0] -= 1
        ledger.note(mid, "refused", type(e).__name__)
        return False
    c = Conn(r, w, a.timeout)
    mid = None
    stage = "greeting"
    try:
        code, _ = await c.reply()
        if code != 220:
            mid = "%s-%d-%d" % (a.run, wid, seq[0])
            seq[0] += 1
            budget[0] -= 1
            ledger.note(mid, "refused", "greeting-%d" % code)
            return False
        await c.send(b"EHLO load.example\r\n")
        code, ehlo = await c.reply()
        if kind == "starttls" and any(l[4:].upper().startswith("STARTTLS") for l in ehlo):
            await c.send(b"STARTTLS\r\n")
            code, _ = await c.reply()
            if code == 220:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                await asyncio.wait_for(w.start_tls(ctx), a.timeout)
                await c.send(b"EHLO load.example\r\n")
                code, ehlo = await c.reply()
        pipelining = any(l[4:].upper() == "PIPELINING" for l in ehlo)
        for _ in range(a.per_session):
            if budget[0] <= 0 or time.monotonic() > a.deadline:
                break
            budget[0] -= 1
            if a.rate > 0:  # pace: message k of the run starts no earlier than k / rate
                a.paced += 1
                await asyncio.sleep(max(0.0, a.start + a.paced / a.rate - time.monotonic()))
            mid = "%s-%d-%d" % (a.run, wid, seq[0])
            seq[0] += 1
            sender = HOLD_FROM if kind == "hold" else "load@example.org"
            stage = "MAIL"
            t0 = time.monotonic()
            cmds = [b"MAIL FROM:<%s>\r\n" % sender.encode(), b"RCPT TO:<rcpt@example.net>\r\n", b"DATA\r\n"]
            if kind == "pipelined" and pipelining:
                await c.send(b"".join(cmds))
                codes = []
                for name in ("MAIL", "RCPT", "DATA"):
                    stage = name
                    codes.append((name, (await c.reply())[0]))
            else:
                codes = []
                for name, cmd in zip(("MAIL", "RCPT", "DATA"), cmds):
                    stage = name
                    await c.send(cmd)
                    code = (await c.reply())[0]
                    codes.append((name, code))
                    if code >= 400:
                        break
            bad = [(n, k) for n, k in codes if (k != 354 if n == "DATA" else k >= 400)]
            if bad:
                ledger.note(mid, "reply", "%s-%d" % bad[0])
                mid = None
                if codes[-1][0] == "DATA" and codes[-1][1] == 354:
                    await c.send(b".\r\n")  # a DATA that was accepted must be ended
                    await c.reply()
                await c.send(b"RSET\r\n")
                if (await c.reply())[0] >= 400:
                    return True
                continue
            stage = "body"
            await c.send(message(mid, sender, 1 + (seq[0] * 7) % a.lines) + b".\r\n")
            stage = "dot"
            code = (await c.reply())[0]
            ledger.note(mid, "250" if code == 250 else "reply", "" if code == 250 else "dot-%d" % code)
            if code == 250:
                ledger.latency.append(time.monotonic() - t0)
            mid = None
            if code == 421:
                return True
        stage = "QUIT"
        await c.send(b"QUIT\r\n")
        await c.reply()
    except (OSError, ConnectionError, asyncio.TimeoutError, ssl.SSLError, asyncio.IncompleteReadError) as e:
        if stage == "greeting":  # connected, then closed or left without a word
            mid = "%s-%d-%d" % (a.run, wid, seq[0])
            seq[0] += 1
            budget[0] -= 1
            ledger.note(mid, "refused", "greeting-%s" % type(e).__name__)
            return False
        if mid is not None:
            ledger.note(mid, "nodot" if stage == "dot" else "conn", "%s-%s" % (stage, type(e).__name__))
    finally:
        w.close()
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except Exception:
            pass
    return True


async def worker(a, kind, wid, ledger, budget):
    seq = [0]
    while budget[0] > 0 and time.monotonic() < a.deadline:
        if not await session_once(a, kind, wid, seq, ledger, budget):
            await asyncio.sleep(0.2)  # refused: the proxy is restarting or full


async def send(a):
    ledger = Ledger(a.ledger)
    a.start = time.monotonic()
    a.deadline = a.start + a.seconds
    a.paced = 0
    kinds = a.mix.split(",")
    budget = [a.messages]
    await asyncio.gather(*(worker(a, kinds[i % len(kinds)], i, ledger, budget) for i in range(a.sessions)))
    c = ledger.counts
    lat = sorted(ledger.latency) or [0.0]
    pct = [lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 for q in (0.5, 0.95, 0.99)]
    print("sent=%d ok=%d reply=%d nodot=%d conn=%d refused=%d p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f" %
          (c["sent"], c["ok"], c["reply"], c["nodot"], c["conn"], c["refused"], *pct))


def verify(a):
    tried = {}
    for path in a.ledger:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    tried[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    seen = collections.Counter()
    pat = re.compile(rb"^X-Load-Id: (\S+)", re.M)
    for root, _, files in os.walk(a.dumps):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    for m in pat.finditer(f.read()):
                        seen[m.group(1).decode()] += 1
            except OSError:
                pass
    out = collections.Counter()
    for mid, (outcome, detail) in tried.items():
        out["tried"] += 1
        n = seen.get(mid, 0)
        if outcome == "250":
            out["ok"] += 1
            if n:
                out["at_backend"] += 1
            else:
                out["lost"] += 1
                print("lost %s" % mid, file=sys.stderr)
        elif outcome == "nodot":
            out["nodot_delivered" if n else "nodot_missing"] += 1
        elif outcome == "reply" and n:
            out["not_ok_delivered"] += 1
            print("not-ok but delivered %s %s" % (mid, detail), file=sys.stderr)
        elif outcome == "conn" and n:
            out["conn_delivered"] += 1
            print("never sent a dot, delivered %s" % mid, file=sys.stderr)
        if n > 1:
            out["dups"] += 1
            print("duplicate %s x%d (%s)" % (mid, n, outcome), file=sys.stderr)
    runs = {mid.split("-", 1)[0] for mid in tried}
    out["strangers"] = sum(1 for mid in seen if mid.split("-", 1)[0] in runs and mid not in tried)
    for k in ("tried", "ok", "at_backend", "lost", "dups", "nodot_delivered", "nodot_missing",
              "not_ok_delivered", "conn_delivered", "strangers"):
        print("%s=%d" % (k, out[k]))


class Refused(Exception):
    """a session that got no 220: the line it got instead, or "closed" """


async def idle(a):
    conns, stop = [], time.monotonic() + 300

    async def open_one(k):
        # from 127.0.X.Y, 200 sessions an address: under limit_sessions_per_ip
        src = "127.0.%d.%d" % (1 + k // 40000, 1 + (k // 200) % 200) if a.spread else "127.0.0.1"
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", a.port, local_addr=(src, 0)), 60)
        line = await asyncio.wait_for(r.readline(), 60)
        if not line.startswith(b"220"):
            w.close()
            raise Refused(line.decode("latin-1").rstrip("\r\n") if line else "closed")
        return r, w

    for i in range(0, a.sessions + a.slowloris, 200):  # in batches: the listen backlog is finite
        n = min(200, a.sessions + a.slowloris - i)
        conns += await asyncio.gather(*(open_one(i + k) for k in range(n)), return_exceptions=True)
    live = [c for c in conns if not isinstance(c, BaseException)]
    if a.replies:
        why = collections.Counter(str(c) if isinstance(c, Refused) else type(c).__name__
                                  for c in conns if isinstance(c, BaseException))
        with open(a.replies, "w") as f:
            f.writelines("%d\t%s\n" % (n, line) for line, n in sorted(why.items()))
    open(a.ready, "w").write("%d\n" % len(live))
    slow = live[a.sessions:]
    cmd = b"NOOP\r\n"
    k = 0
    while not os.path.exists(a.until) and time.monotonic() < stop:
        for _, w in slow:
            try:
                w.write(cmd[k % len(cmd):k % len(cmd) + 1])
            except Exception:
                pass
        k += 1
        await asyncio.sleep(2)
    still = 0
    for r, w in live:
        if not w.is_closing() and not r.at_eof():
            still += 1
        w.close()
    print("idle=%d slowloris=%d open_at_end=%d" % (min(len(live), a.sessions), len(slow), still))


async def replay(a):
    inputs = []
    for d in a.corpus:
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                inputs.append(f.read()[a.skip:])
    done, errors, rounds = [0], [0], 0
    stop = time.monotonic() + a.seconds

    async def one(data):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port), 10)
        except (OSError, asyncio.TimeoutError):
            errors[0] += 1
            return
        try:
            w.write(data)
            await asyncio.wait_for(w.drain(), 5)
            if w.can_write_eof():
                w.write_eof()
            while await asyncio.wait_for(r.read(65536), 2):
                pass
        except (OSError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            w.close()
        done[0] += 1

    sem = asyncio.Semaphore(a.sessions)

    async def guarded(data):
        async with sem:
            await one(data)

    while rounds == 0 or time.monotonic() < stop:
        await asyncio.gather(*(guarded(d) for d in inputs))
        rounds += 1
    print("replayed=%d rounds=%d errors=%d" % (done[0], rounds, errors[0]))


DNS_MAX_TXT = 8192  # src/dns.h MOAT_DNS_MAX_TXT: longer records are refused before any parser
DOT_ATOM = re.compile(rb"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
# fuzz_spf_record's fixture names, so that a record of its corpus reaches what it reached there
RECORD_FIXTURE = [("fuzz", "TXT", b"v=spf1 ?all"), ("fuzz", "A", "192.0.2.1"), ("fuzz", "AAAA", "2001:db8::1"),
                  ("fuzz", "MX", "10 mx.fuzz.test."), ("mx.fuzz", "A", "192.0.2.1"),
                  ("inc", "TXT", b"v=spf1 include:fuzz.test ?all"), ("exp", "TXT", b"%{i} %{c} %{r} %{t} %{p}")]


def record_message(fields, body=b"body\r\n"):
    """a message of these header fields (bytes, LF or CRLF lines) and a body"""
    return b"\r\n".join(fields) + b"\r\n\r\n" + body


def record_inputs(corpora):
    """[(kind, number, domain, [(owner, type, rdata)], mail_from, message)] for every input"""
    out = []
    for spec in corpora:
        kind, d = spec.split("=", 1)
        for n, name in enumerate(sorted(os.listdir(d))):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            dom = "%s%d" % (kind[0], n)
            rrs, local, msg = [], b"a", None
            if kind == "spf":
                rrs.append((dom, "TXT", data[1:] if data[:1] == b"!" else b"v=spf1 " + data))
            elif kind == "macro":
                if not data:
                    continue
                head, _, macro = data[1:].partition(b"\0")
                if DOT_ATOM.match(head) and len(head) <= 64:
                    local = head
                if data[0] & 1:
                    rrs += [(dom, "TXT", b"v=spf1 -all exp=x.%s.test" % dom.encode()), ("x." + dom, "TXT", macro)]
                else:
                    rrs.append((dom, "TXT", b"v=spf1 exists:" + macro + b" -all"))
            elif kind == "dmarc":
                rrs += [(dom, "TXT", b"v=spf1 ?all"), ("_dmarc." + dom, "TXT", data)]
            elif kind in ("dkim", "arc"):
                key, _, rest = data.partition(b"\n")
                rrs += [(dom, "TXT", b"v=spf1 ?all"), ("_dmarc." + dom, "TXT", b"v=DMARC1; p=quarantine"),
                        ("sel._domainkey." + dom, "TXT", key.rstrip(b"\r"))]
                msg = rest.replace(b"example.com", dom.encode() + b".test")
            elif kind == "from":
                msg = record_message(data.split(b"\0", 2))
            elif kind == "sig":
                msg = record_message([b"DKIM-Signature: " + data, b"From: <a@%s.test>" % dom.encode()])
            else:
                raise SystemExit("records: unknown kind %s" % kind)
            if any(t == "TXT" and len(r) > DNS_MAX_TXT for _, t, r in rrs):
                continue
            if msg is None:
                msg = record_message([b"From: <%s@%s.test>" % (local, dom.encode()), b"Subject: " + kind.encode()])
            out.append((kind, n, dom, rrs, b"%s@%s.test" % (local, dom.encode()), msg))
    return out


def zone_txt(rdata):
    """TXT rdata in zone-file syntax: 255-byte character-strings, anything unusual as \\DDD"""
    parts = [rdata[i:i + 255] for i in range(0, len(rdata), 255)] or [b""]
    return " ".join('"%s"' % "".join(chr(b) if 0x20 <= b < 0x7f and b not in b'"\\' else "\\%03d" % b
                                       for b in part) for part in parts)


def records_zone(a, inputs):
    with open(a.zone, "w") as z:
        z.write("$ORIGIN test.\n$TTL 0\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 0\n@ IN NS ns\n"
                "ns IN A 127.0.0.1\n")
        for owner, t, r in RECORD_FIXTURE + [rr for i in inputs for rr in i[3]]:
            z.write("%s IN %s %s\n" % (owner, t, zone_txt(r) if t == "TXT" else r))


def data_content(msg):
    """message bytes (LF or CRLF lines) as DATA content: CRLF lines, dot-stuffed, the final dot"""
    lines = msg.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines) + b".\r\n"


async def records_send(a, inputs):
    ledger = Ledger(a.ledger)
    stop = time.monotonic() + a.seconds
    rounds = 0

    async def session(queue):
        c = None
        try:
            while queue:
                rnd, (kind, n, _, _, mail_from, msg) = queue.pop()
                mid = "%s-%d-%s-%d" % (a.run, rnd, kind, n)
                stage = "connect"
                try:
                    if c is None:
                        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port), a.timeout)
                        c = Conn(r, w, a.timeout)
                        stage = "greeting"
                        if (await c.reply())[0] != 220:
                            raise ConnectionError("no 220")
                        await c.send(b"EHLO records.example\r\n")
                        await c.reply()
                    for stage, cmd in (("MAIL", b"MAIL FROM:<%s>\r\n" % mail_from),
                                       ("RCPT", b"RCPT TO:<rcpt@example.net>\r\n"), ("DATA", b"DATA\r\n")):
                        await c.send(cmd)
                        code = (await c.reply())[0]
                        if code >= 400:
                            break
                    if code == 354:
                        stage = "dot"
                        await c.send(data_content(b"X-Load-Id: " + mid.encode() + b"\r\n" + msg))
                        code = (await c.reply())[0]
                    delivered = code == 250 and stage == "dot"
                    ledger.note(mid, "250" if delivered else "reply", "" if delivered else "%s-%d" % (stage, code))
                    if code == 421:  # the proxy closes after it: the next input opens a new session
                        c.w.close()
                        c = None
                    elif stage != "dot":
                        await c.send(b"RSET\r\n")
                        await c.reply()
                except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                    if stage in ("connect", "greeting"):
                        ledger.note(mid, "refused", "%s-%s" % (stage, type(e).__name__))
                    else:
                        ledger.note(mid, "nodot" if stage == "dot" else "conn", "%s-%s" % (stage, type(e).__name__))
                    if c is not None:
                        c.w.close()
                    c = None
        finally:
            if c is not None:
                try:
                    await c.send(b"QUIT\r\n")
                    await c.reply()
                except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                    pass
                c.w.close()

    while rounds == 0 or time.monotonic() < stop:
        queue = [(rounds, i) for i in reversed(inputs)]
        await asyncio.gather(*(session(queue) for _ in range(a.sessions)))
        rounds += 1
    k = ledger.counts
    print("inputs=%d rounds=%d sent=%d ok=%d reply=%d nodot=%d conn=%d refused=%d" %
          (len(inputs), rounds, k["sent"], k["ok"], k["reply"], k["nodot"], k["conn"], k["refused"]))


def records(a):
    inputs = record_inputs(a.corpus)
    if a.zone:
        records_zone(a, inputs)
    else:
        asyncio.run(records_send(a, inputs))


async def dnsdelay(a):
    import random
    rnd = random.Random(a.seed)
    loop = asyncio.get_running_loop()
    pending = {}  # (upstream query id) -> client address

    class Up(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            client = pending.pop(data[:2], None)
            if client is not None:
                down.sendto(data, client)

    class Down(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            if len(data) < 12:
                return
            pending[data[:2]] = addr
            loop.call_later(rnd.uniform(0, a.delay_ms / 1000), up.sendto, data)

    up, _ = await loop.create_datagram_endpoint(Up, remote_addr=("127.0.0.1", a.upstream))
    down, _ = await loop.create_datagram_endpoint(Down, local_addr=("127.0.0.1", a.port))
    print("listening", flush=True)
    await asyncio.Event().wait()


async def backend(a):
    import random
    rnd = random.Random(a.seed)
    count = [0]

    async def serve(r, w):
        async def pause():
            if a.mode == "slow":
                await asyncio.sleep(rnd.uniform(0, a.delay_ms / 1000))

        def say(text):
            w.write(text.encode() + b"\r\n")

        def fault():
            """None, or the reply line of a fault (a drop is "")"""
            if a.mode != "random" or rnd.randrange(100) >= a.odds:
                return None
            return rnd.choice(["451 4.3.0 random soft fault", "554 5.3.0 random hard fault", ""])

        try:
            if a.mode == "nogreet":
                await r.read()
                return
            await pause()
            say("220 fault.test ESMTP")
            in_data, msg = False, []
            while True:
                line = await r.readline()
                if not line:
                    return
                if in_data:
                    if a.mode == "middata":
                        return
                    if line == b".\r\n":
                        in_data = False
                        await pause()
                        f = fault()
                        if f == "":
                            return
                        if f:
                            say(f)
                            continue
                        count[0] += 1
                        path = os.path.join(a.dumps, "%d.%d" % (os.getpid(), count[0]))
                        with open(path + ".tmp", "wb") as out:
                            out.write(b"".join(msg))
                        os.rename(path + ".tmp", path)
                        say("250 2.0.0 Ok: queued")
                    else:
                        msg.append(line[1:] if line.startswith(b".") else line)
                    continue
                verb = line[:4].upper()
                await pause()
                f = fault() if verb in (b"MAIL", b"RCPT", b"DATA") else None
                if f == "":
                    return
                if f:
                    say(f)
                elif verb in (b"EHLO", b"HELO"):
                    say("250-fault.test\r\n250-PIPELINING\r\n250-XCLIENT ADDR NAME HELO PROTO PORT\r\n250 8BITMIME")
                elif verb == b"XCLI":
                    say("220 fault.test ESMTP")
                elif verb == b"DATA":
                    in_data, msg = True, []
                    say("354 go ahead")
                elif verb == b"QUIT":
                    say("221 2.0.0 Bye")
                    await w.drain()
                    return
                else:
                    say("250 2.0.0 Ok")
                await w.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", a.port, reuse_address=True, backlog=512)
    print("listening", flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--run", required=True)
    s.add_argument("--ledger", required=True)
    s.add_argument("--sessions", type=int, default=20)
    s.add_argument("--messages", type=int, default=500)
    s.add_argument("--seconds", type=float, default=120)
    s.add_argument("--mix", default="plain,starttls,pipelined,hold")
    s.add_argument("--hold-src", default="127.0.0.2")
    s.add_argument("--per-session", type=int, default=5)
    s.add_argument("--lines", type=int, default=40)
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("--rate", type=float, default=0,
                   help="at most this many messages a second in all (0: as fast as they go)")
    v = sub.add_parser("verify")
    v.add_argument("--ledger", action="append", required=True)
    v.add_argument("--dumps", required=True)
    i = sub.add_parser("idle")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--sessions", type=int, default=100)
    i.add_argument("--slowloris", type=int, default=0)
    i.add_argument("--ready", required=True)
    i.add_argument("--until", required=True)
    i.add_argument("--spread", action="store_true")
    i.add_argument("--replies", help="the sessions that got no 220: COUNT<TAB>the line they got instead (or "
                   "\"closed\", or the exception's name when none)")
    rp = sub.add_parser("replay")
    rp.add_argument("--port", type=int, required=True)
    rp.add_argument("--corpus", action="append", required=True)
    rp.add_argument("--skip", type=int, default=0)
    rp.add_argument("--sessions", type=int, default=20)
    rp.add_argument("--seconds", type=float, default=60)
    rc = sub.add_parser("records")
    rc.add_argument("--corpus", action="append", required=True, help="KIND=DIR")
    rc.add_argument("--zone")
    rc.add_argument("--port", type=int)
    rc.add_argument("--run", default="rec")
    rc.add_argument("--ledger")
    rc.add_argument("--sessions", type=int, default=20)
    rc.add_argument("--seconds", type=float, default=30)
    rc.add_argument("--timeout", type=float, default=30)
    dd = sub.add_parser("dnsdelay")
    dd.add_argument("--port", type=int, required=True)
    dd.add_argument("--upstream", type=int, required=True)
    dd.add_argument("--delay-ms", type=float, default=300)
    dd.add_argument("--seed", type=int, default=1)
    b = sub.add_parser("backend")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--mode", choices=("nogreet", "middata", "random", "slow"), required=True)
    b.add_argument("--delay-ms", type=float, default=300)
    b.add_argument("--odds", type=int, default=10)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--dumps", default=".")
    a = p.parse_args()
    if a.cmd == "send":
        asyncio.run(send(a))
    elif a.cmd == "verify":
        verify(a)
    elif a.cmd == "backend":
        asyncio.run(backend(a))
    elif a.cmd == "replay":
        asyncio.run(replay(a))
    elif a.cmd == "records":
        records(a)
    elif a.cmd == "dnsdelay":
        asyncio.run(dnsdelay(a))
    else:
        asyncio.run(idle(a))


if __name__ == "__main__":
    main()
