#!/usr/bin/python3
# afrf.py DUMPDIR - each DMARC failure report (RFC 6591 AFRF) that smtp-sink wrote into DUMPDIR,
# parsed with Python's email package (an independent MIME parser), as one line of facts:
#   rcpt type report-type parts | feedback fields | the original header as reported
# Messages that are not multipart/report (mail the proxy relayed) are skipped. Sorted.
import email, email.policy, os, sys

lines = []
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    m = email.message_from_binary_file(open(os.path.join(d, f), "rb"), policy=email.policy.compat32)
    if m.get_content_type() != "multipart/report":
        continue
    parts = m.get_payload()
    kinds = ",".join(p.get_content_type() for p in parts)
    fb = parts[1].get_payload()[0]   # message/feedback-report: one block of fields
    fields = ["%s=%s" % (k, " ".join(fb[k].split())) for k in
              ("Feedback-Type", "Auth-Failure", "Version", "Reported-Domain", "Source-IP",
               "Original-Mail-From", "Delivery-Result", "Identity-Alignment")]
    ua = fb["User-Agent"] or ""
    ar = " ".join((fb["Authentication-Results"] or "").split())
    orig = email.message_from_string(parts[2].get_payload())
    lines.append(" ".join([
        m["X-Rcpt-Args"] or "", m.get_content_type(), "report-type=" + (m.get_param("report-type") or ""),
        kinds, "|", " ".join(fields), "ua=" + ua.split("/")[0],
        "ar=" + ("dmarc=fail" if "dmarc=fail" in ar else "dmarc=pass" if "dmarc=pass" in ar else "?"),
        "|", "To=" + (orig["To"] or ""), "Cc=" + (orig["Cc"] or ""), "Bcc=" + str(orig["Bcc"]),
        "Subject=" + (orig["Subject"] or ""), "body=" + repr(orig.get_payload().strip()),
        "subject=" + m["Subject"]]))
print("\n".join(sorted(lines)))
