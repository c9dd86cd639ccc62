#!/usr/bin/env python3
"""smtp_chat.py - a byte-exact SMTP client for e2e tests (stdlib only).

usage: smtp_chat.py HOST PORT [--src ADDR] STEP...
  R            read one complete reply (multi-line) and print it, one line each, as "<- line"
  S:TEXT       send TEXT with backslash escapes (\\r \\n \\x00 ...) decoded to bytes
  P:SECS       pause
  W:PATH       wait (bounded: 30 s) until the file PATH exists: the test says when to go on
  X            close the connection now (abrupt, at any state)
  A            read everything until the server closes (bounded: 10 s), printing replies
  M            print "ms=N": the milliseconds since the connection was made (after A: how long
               the server took to close it, timed without the interpreter's start-up)
Prints "EOF" when the server closed, "TIMEOUT" when a read waited more than 10 s.
"""
import os
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    host, port = args[0], int(args[1])
    args = args[2:]
    src = None
    if args and args[0] == "--src":
        src = args[1]
        args = args[2:]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(10)
    s.connect((host, port))
    t0 = time.monotonic()
    buf = b""

    def read_reply():
        nonlocal buf
        lines = []
        while True:
            while b"\n" not in buf:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    print("TIMEOUT", flush=True)
                    return None
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    print("EOF", flush=True)
                    return None
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("latin-1")
            print("<- " + text, flush=True)
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return lines

    for step in args:
        if step == "R":
            if read_reply() is None:
                break
        elif step.startswith("S:"):
            data = step[2:].encode("latin-1").decode("unicode_escape").encode("latin-1")
            try:
                s.sendall(data)
            except OSError:
                print("SENDFAIL")
                break
        elif step.startswith("P:"):
            time.sleep(float(step[2:]))
        elif step.startswith("W:"):
            deadline = time.time() + 30
            while time.time() < deadline and not os.path.exists(step[2:]):
                time.sleep(0.02)
        elif step == "X":
            s.close()
            return
        elif step == "A":
            deadline = time.time() + 10
            while time.time() < deadline:
                if read_reply() is None:
                    break
        elif step == "M":
            print("ms=%d" % ((time.monotonic() - t0) * 1000), flush=True)
    s.close()


if __name__ == "__main__":
    main()
