#!/usr/bin/python3
"""report_check.py - read mxmoat-report's output with an independent parser and compare it with
what tests/helpers/report_fill recorded, recomputed here from the same rule.

usage: report_check.py xml DIR COUNT DOMAINS DAYS FIRST_DAY IPS
       report_check.py json FILE COUNT DOMAINS DAYS FIRST_DAY IPS

Prints one "name value" line per figure (the shell test compares them), then "mismatches N":
every (policy domain, day, source IP, disposition) count that differs from the rule's.
"""
import collections
import gzip
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

NS = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}


def expected(count, domains, days, first_day, ips):
    """(domain, begin, ip, disposition) -> messages, for the records a report must hold."""
    want = collections.Counter()
    for i in range(count):
        if i % 1000 == 999 or i % 250 == 7:
            continue            # tempfailed, or no policy: in no report
        k = i % domains
        fail = i % 3 == 0
        disp = "none" if not fail else ("reject" if k % 2 == 0 else "quarantine")
        day = first_day + (i // domains) % days
        n = i % ips
        ip = "10.%d.%d.%d" % (n // 65536 % 256, n // 256 % 256, n % 256)
        want[("d%d.example" % k, day * 86400, ip, disp)] += 1
    return want


def from_xml(path):
    got = collections.Counter()
    files = sorted(os.listdir(path))
    bad_names = 0
    for name in files:
        with gzip.open(os.path.join(path, name)) as f:
            root = ET.parse(f).getroot()
        domain = root.find("d:policy_published/d:domain", NS).text
        begin = int(root.find("d:report_metadata/d:date_range/d:begin", NS).text)
        end = int(root.find("d:report_metadata/d:date_range/d:end", NS).text)
        rid = root.find("d:report_metadata/d:report_id", NS).text
        m = re.fullmatch(r"([^!]+)!([^!]+)!(\d+)!(\d+)!([^!.]+)\.xml\.gz", name)
        if not m or m.group(2) != domain or int(m.group(3)) != begin or int(m.group(4)) != end \
                or m.group(5) != rid or end != begin + 86399:
            bad_names += 1
        for rec in root.findall("d:record", NS):
            row = rec.find("d:row", NS)
            ip = row.find("d:source_ip", NS).text
            disp = row.find("d:policy_evaluated/d:disposition", NS).text
            got[(domain, begin, ip, disp)] += int(row.find("d:count", NS).text)
    return got, len(files), bad_names


def from_json(path):
    got = collections.Counter()
    with open(path) as f:
        doc = json.load(f)
    for rep in doc["reports"]:
        domain = rep["policy_published"]["domain"]
        begin = rep["report_metadata"]["date_range"]["begin"]
        for rec in rep["records"]:
            got[(domain, begin, rec["source_ip"], rec["policy_evaluated"]["disposition"])] += rec["count"]
    return got, len(doc["reports"]), 0


def main():
    kind, path = sys.argv[1], sys.argv[2]
    count, domains, days, first_day, ips = (int(a) for a in sys.argv[3:8])
    want = expected(count, domains, days, first_day, ips)
    got, reports, bad_names = from_xml(path) if kind == "xml" else from_json(path)
    print("reports", reports)
    print("bad_names", bad_names)
    print("messages", sum(got.values()))
    print("expected", sum(want.values()))
    for disp in ("none", "quarantine", "reject"):
        print(disp, sum(v for k, v in got.items() if k[3] == disp))
    print("mismatches", sum(1 for k in set(want) | set(got) if want[k] != got[k]))


main()
