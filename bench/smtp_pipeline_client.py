#!/usr/bin/env python3
"""smtp_pipeline_client.py - an SMTP load client that pipelines (RFC 2920), for bench/proxy-pipelining.

smtp-source cannot pipeline ("No SMTP command pipelining support", its man page), so the proxy's
pipelining target is measured with this client: SESSIONS kept-open sessions, each sending
MESSAGES messages of SIZE bytes; per message one write carries the previous message's content and
final dot followed by the next MAIL, RCPT and DATA (RFC 2920 3.1: content may be the first
"command" of a group, DATA its last). Every reply is read and checked; any unexpected code stops
the run with exit 1. Prints "MESSAGES_TOTAL SECONDS MSG_PER_S". Bounded by --timeout.

usage: smtp_pipeline_client.py HOST:PORT [--sessions N] [--messages N] [--size BYTES] [--timeout S]
"""
import argparse
import selectors
import socket
import sys
import time


def body(size):
    line = b"x" * 78 + b"\r\n"
    head = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: pipelining bench\r\n\r\n"
    n = max(0, size - len(head)) // len(line) + 1
    return head + line * n


class Session:
    """One connection: a queue of expected reply codes, and what to send when they are in."""

    def __init__(self, addr, messages, content):
        self.sock = socket.create_connection(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.left = messages
        self.content = content
        self.inbuf = b""
        self.out = b""
        self.expect = [b"220"]          # codes still owed by the server, in order
        self.phase = "greet"
        self.closed = False

    MAIL = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"

    def on_reply(self, code):
        want = self.expect.pop(0)
        if code != want:
            raise RuntimeError("expected %s, got %s in phase %s" % (want, code, self.phase))
        if self.expect:
            return
        if self.phase == "greet":
            self.out += b"EHLO bench.example\r\n"
            self.expect, self.phase = [b"250"], "ehlo"
        elif self.phase == "ehlo":
            self.out += self.MAIL
            self.expect, self.phase = [b"250", b"250", b"354"], "msg"
        elif self.phase == "msg":          # the 354 of a message is in: its content, then more
            self.left -= 1
            if self.left > 0:
                self.out += self.content + b".\r\n" + self.MAIL
                self.expect = [b"250", b"250", b"250", b"354"]
            else:
                self.out += self.content + b".\r\nQUIT\r\n"
                self.expect, self.phase = [b"250", b"221"], "quit"
        elif self.phase == "quit":
            self.closed = True

    def feed(self, data):
        self.inbuf += data
        while True:
            i = self.inbuf.find(b"\r\n")
            if i < 0:
                return
            line, self.inbuf = self.inbuf[:i], self.inbuf[i + 2:]
            if len(line) < 4 or line[3:4] == b"-":
                continue                 # a continuation line; only the last one counts
            self.on_reply(line[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    content = body(a.size)
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    sessions = [Session((host, int(port)), a.messages, content) for _ in range(a.sessions)]
    for s in sessions:
        sel.register(s.sock, selectors.EVENT_READ, s)
    open_ = len(sessions)
    while open_ > 0:
        if time.monotonic() - start > a.timeout:
            print("timeout", file=sys.stderr)
            return 1
        for s in sessions:
            if s.out and not s.closed:
                try:
                    n = s.sock.send(s.out)
                    s.out = s.out[n:]
                except BlockingIOError:
                    pass
        for key, _ in sel.select(timeout=0 if any(s.out for s in sessions) else 1):
            s = key.data
            try:
                data = s.sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                if not s.closed:
                    print("server closed early", file=sys.stderr)
                    return 1
                continue
            s.feed(data)
            if s.closed:
                sel.unregister(s.sock)
                s.sock.close()
                open_ -= 1
    secs = time.monotonic() - start
    total = a.sessions * a.messages
    print("%d %.3f %.1f" % (total, secs, total / secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
