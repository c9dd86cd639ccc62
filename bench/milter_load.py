#!/usr/bin/python3
"""milter_load.py HOST PORT SESSIONS CONNS - Postfix's side of the milter protocol, for
bench/milter_engines: CONNS threads, each running SESSIONS SMTP sessions one after the other, a
milter connection each, and waiting for every reply (a reject fails the run)."""
import socket
import struct
import sys
import threading


def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def strs(*xs):
    return b"".join(x.encode() + b"\0" for x in xs)


def read_pkt(s):
    buf = b""
    while len(buf) < 5:
        got = s.recv(5 - len(buf))
        if not got:
            raise EOFError("milter closed")
        buf += got
    left = struct.unpack(">I", buf[:4])[0] - 1
    data = b""
    while len(data) < left:
        got = s.recv(left - len(data))
        if not got:
            raise EOFError("milter closed")
        data += got
    return buf[4:5], data


BODY = (b"x" * 70 + b"\r\n") * 28


def expect_continue(s):
    cmd, _ = read_pkt(s)
    if cmd != b"c":
        raise RuntimeError("reply %r" % cmd)


def session(i):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(pkt(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF)))
    if read_pkt(s)[0] != b"O":
        raise RuntimeError("no negotiation")
    s.sendall(pkt(b"D", b"C" + strs("j", "mx", "{daemon_name}", "smtpd"))
              + pkt(b"C", strs("localhost") + b"4" + struct.pack(">H", 1024 + i % 60000)
                    + strs("127.0.0.1")))
    expect_continue(s)
    s.sendall(pkt(b"H", strs("client.example")) + pkt(b"D", b"M" + strs("i", "4BENCH"))
              + pkt(b"M", strs("<a@bench.test>")))
    expect_continue(s)
    s.sendall(pkt(b"R", strs("<b@example.net>")))
    expect_continue(s)
    s.sendall(pkt(b"L", strs("From", " <a@bench.test>")) + pkt(b"L", strs("Subject", " bench"))
              + pkt(b"N") + pkt(b"B", BODY) + pkt(b"D", b"E" + strs("i", "4BENCH")) + pkt(b"E"))
    while True:
        cmd, _ = read_pkt(s)
        if cmd in (b"c", b"a"):
            break
        if cmd in (b"r", b"t", b"y", b"d"):
            raise RuntimeError("end of message refused: %r" % cmd)
    s.sendall(pkt(b"Q"))
    s.close()


def worker(n):
    for i in range(n):
        session(i)


threads = [threading.Thread(target=worker, args=(int(sys.argv[3]),)) for _ in range(int(sys.argv[4]))]
for t in threads:
    t.start()
for t in threads:
    t.join()
