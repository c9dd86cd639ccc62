#!/usr/bin/env python3
"""tls_chat.py - a byte-exact SMTP client that can start TLS mid-conversation (stdlib only).

usage: tls_chat.py HOST PORT [--implicit] [--sni NAME] [--src ADDR] STEP...
  R            read one complete reply (multi-line) and print it, one line each, as "<- line"
  S:TEXT       send TEXT (one write) with backslash escapes (\\r \\n ...) decoded to bytes
  T            start TLS now (after a 220 to STARTTLS); prints "TLS <version> <cipher>"
  P:SECS       pause
  A            read everything until the server closes (bounded: 10 s), printing replies
--implicit: TLS from the first byte (RFC 8314). --src: the local address to connect from. Certificates are not verified (test certs).
Prints "EOF" when the server closed, "TIMEOUT" after 10 s without a reply, "TLSERR ..." on failure.
"""
import socket
import ssl
import sys
import time


def main():
    args = sys.argv[1:]
    host, port = args[0], int(args[1])
    args = args[2:]
    implicit, sni, src = False, None, None
    while args and args[0].startswith("--"):
        if args[0] == "--implicit":
            implicit = True
            args = args[1:]
        elif args[0] == "--sni":
            sni = args[1]
            args = args[2:]
        elif args[0] == "--src":
            src = args[1]
            args = args[2:]
        else:
            break
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = socket.create_connection((host, port), timeout=10,
                                 source_address=(src, 0) if src else None)
    buf = b""

    def start_tls():
        nonlocal s
        try:
            s = ctx.wrap_socket(s, server_hostname=sni)
        except (ssl.SSLError, OSError) as e:
            print("TLSERR %s" % e.__class__.__name__)
            sys.exit(0)
        print("TLS %s %s" % (s.version(), s.cipher()[0]))

    def read_more():
        nonlocal buf
        try:
            d = s.recv(65536)
        except socket.timeout:
            print("TIMEOUT")
            sys.exit(0)
        except (ssl.SSLError, OSError):
            d = b""
        if not d:
            print("EOF")
            sys.exit(0)
        buf += d

    def read_reply():
        nonlocal buf
        while True:
            while b"\n" not in buf:
                read_more()
            line, buf = buf.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("latin-1")
            print("<- " + text)
            if len(text) < 4 or text[3] != "-":
                return

    if implicit:
        start_tls()
    for step in args:
        if step == "R":
            read_reply()
        elif step == "T":
            if buf:
                print("PLAINTEXT-AFTER-220 %r" % buf)
            start_tls()
        elif step == "A":
            end = time.time() + 10
            while time.time() < end:
                read_reply()
        elif step.startswith("S:"):
            s.sendall(step[2:].encode("latin-1").decode("unicode_escape").encode("latin-1"))
        elif step.startswith("P:"):
            time.sleep(float(step[2:]))
    s.close()


if __name__ == "__main__":
    main()
