#!/usr/bin/python3
# rfc7208-convert.py - turn the RFC 7208 test suite (YAML, as Debian's python3-spf ships it) into
# the line format tests/unit/test_spf_suite.c reads, so no YAML parser is needed in C.
#
# Usage: rfc7208-convert.py SUITE.yml[.gz] > OUT.txt      (needs Debian's python3-yaml)
#
# Output, one record a line, fields separated by one space, every field "x" + hex of its bytes:
#   S DESCRIPTION                     a new scenario: forget the previous zone
#   R NAME TYPE PREF DATA             a record (TYPE A AAAA MX PTR CNAME TXT; DATA for A/AAAA is the
#                                     address text, for TXT its strings concatenated)
#   F NAME TYPE                       queries for NAME of TYPE time out (the suite's TIMEOUT)
#   T ID HOST HELO MAILFROM RESULTS EXPLANATION
#                                     a case; RESULTS is a comma-separated list of acceptable
#                                     results; EXPLANATION is empty when the case names none.
# The zone data follows testspf.py's rules: SPF-type records stand for TXT when the name has no
# TXT entry of its own ("TXT: NONE" suppresses that); a bare TIMEOUT makes every query type that
# has no record listed before it time out.
import gzip
import sys

import yaml


def hx(s):
    if isinstance(s, bytes):
        b = s
    else:
        b = str(s).encode("utf-8")
    return "x" + b.hex()


def txt_value(v):
    if isinstance(v, (list, tuple)):
        return "".join(str(x) for x in v)
    return str(v)


def main():
    path = sys.argv[1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        docs = list(yaml.safe_load_all(f))
    out = sys.stdout
    ncases = 0
    for doc in docs:
        out.write("S %s\n" % hx(doc.get("description", "")))
        for name, recs in (doc.get("zonedata") or {}).items():
            recs = recs or []
            has_txt = any(isinstance(r, dict) and "TXT" in r for r in recs)
            seen_types = set()
            for r in recs:
                if r == "TIMEOUT":
                    for t in ("A", "AAAA", "MX", "PTR", "TXT"):
                        if t not in seen_types:
                            out.write("F %s %s\n" % (hx(name), hx(t)))
                    continue
                for t, v in r.items():
                    if v == "TIMEOUT":
                        out.write("F %s %s\n" % (hx(name), hx(t)))
                        continue
                    if t == "SPF":
                        if has_txt:
                            continue
                        t = "TXT"
                    if t == "TXT" and v == "NONE":
                        continue
                    seen_types.add(t)
                    pref = 0
                    if t == "MX":
                        pref, v = v[0], v[1]
                    elif t == "TXT":
                        v = txt_value(v)
                    out.write("R %s %s %s %s\n" % (hx(name), hx(t), hx(pref), hx(v)))
        for tid, case in doc["tests"].items():
            res = case["result"]
            if not isinstance(res, list):
                res = [res]
            out.write("T %s %s %s %s %s %s\n" % (
                hx(tid), hx(case["host"]), hx(case.get("helo", "")), hx(case.get("mailfrom", "")),
                hx(",".join(res)), hx(case.get("explanation", "") or "")))
            ncases += 1
    sys.stderr.write("rfc7208-convert: %d cases\n" % ncases)


if __name__ == "__main__":
    main()
