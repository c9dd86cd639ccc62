#!/bin/bash
# proxy_postfix_bdat.sh - CHUNKING (RFC 3030) through mxmoat-proxy (proxy_chunking = yes) into a
# real Postfix. Postfix's smtp client does not send BDAT, so a client (tests/lib/smtp_chat.py fed
# by bdat_steps below) sends the messages in BDAT chunks, one at a time and pipelined, cut inside
# CRLFs and before dots. Each arrives byte-identical apart from the fields added on top, its "."
# lines, lines starting with "." and a "CRLF . CRLF" inside a chunk included (the proxy relays with
# DATA and stuffs afresh); a message past proxy_hold_memory is spooled and arrives the same. Every
# end-of-data smuggling variant (tests/lib/proxy.sh) is sent in BDAT chunks: refused
# with 550 in reject mode, one message with the smuggled commands as body lines in normalize mode,
# and Postfix never sees the smuggled MAIL. Ports 12900-12901.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK: Postfix tests skipped"
[ "$(id -u)" = 0 ] || tap_skip_all "postfix -c needs root"

PF_PORT=12900 P=12901
cleanup() { px_cleanup; pf_stop; }
port_lock proxy-postfix-bdat || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chmod 777 "$PX_DIR/spool"
pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" || tap_bail "pf_init failed"
pf_start || tap_bail "postfix did not start"
px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_pass=xclient -o proxy_chunking=yes \
	-o proxy_hold_memory=4k -o "proxy_spool_dir=$PX_DIR/spool" || tap_bail "proxy did not start"

# bdat_steps MODE SOURCE PIPE CUT... - smtp_chat.py steps that send a message as BDAT chunks cut
# at the octet offsets CUT..., the last one LAST, each followed by R, or (PIPE=1) all in one
# write and then one R each. MODE file: SOURCE is a file of LF lines, sent with CRLF; MODE text:
# SOURCE is bytes with smtp_chat.py's escapes, sent as they are.
bdat_steps() {
	/usr/bin/python3 - "$@" <<'EOF'
import sys
mode, src, pipe = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if mode == "file":
    data = open(src, "rb").read().replace(b"\n", b"\r\n")
else:
    data = src.encode("latin-1").decode("unicode_escape").encode("latin-1")
cuts = sorted(c for c in map(int, sys.argv[4:]) if 0 < c < len(data))
bounds = [0] + cuts + [len(data)]
chunks = []
for i in range(len(bounds) - 1):
    piece = data[bounds[i]:bounds[i + 1]]
    last = " LAST" if i == len(bounds) - 2 else ""
    chunks.append(b"BDAT %d%s\r\n" % (len(piece), last.encode()) + piece)
def esc(b):
    return "S:" + "".join(c if 32 <= ord(c) < 127 and c != "\\" else "\\x%02x" % ord(c)
                          for c in b.decode("latin-1"))
if pipe:
    print(esc(b"".join(chunks)))
    print("\n".join("R" * len(chunks)))
else:
    for c in chunks:
        print(esc(c))
        print("R")
EOF
}

# body_only - a delivered message without the fields the hops add on top
body_only() {
	awk 'top && /^[ \t]/ { next } top && /^(Return-Path|Delivered-To|X-Original-To|Received):/ { next }
		{ top = 0; print }' top=1 "$1"
}

HELLO=(R "S:EHLO client.example\r\n" R)
TXN=("S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R)
out=$(px_chat $P "${HELLO[@]}" "S:QUIT\r\n" A)
tap_like "EHLO offers CHUNKING" "$out" $'<- 250-CHUNKING\n'

# the messages: dots where DATA would stuff them, and a DATA end of data with a transaction after it
for i in 1 2; do
	printf 'From: a@example.org\nTo: b@example.net\nSubject: bdat %s\nMessage-ID: <bdat%s@example.org>\nDate: Mon, 7 Dec 2026 12:00:00 +0000\n\nline one\n.\n..two dots\n.leading dot\n.\nMAIL FROM:<smuggled@evil.example>\nRCPT TO:<b@example.net>\nDATA\nsmuggled body\n.\nend\n' \
		"$i" "$i" > "$PX_DIR/msg$i"
done
# a message past proxy_hold_memory (4k): spooled, with a dot line every 100 lines
{
	printf 'From: a@example.org\nTo: b@example.net\nSubject: bdat 3\nMessage-ID: <bdat3@example.org>\nDate: Mon, 7 Dec 2026 12:00:00 +0000\n\n'
	for l in $(seq 1 600); do
		printf 'body line %s of a spooled message, long enough to pass the memory limit\n' "$l"
		[ $((l % 100)) = 0 ] && printf '.\n.x\n'
	done
} > "$PX_DIR/msg3"

before=$(pf_delivered_count)
# one BDAT at a time: a 1-octet chunk, chunks ending between CR and LF (139, 154, 252: the "."
# lines' CRLFs) and one ending just before a dot that starts a line (143)
mapfile -t steps < <(bdat_steps file "$PX_DIR/msg1" 0 1 139 143 154 252)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "${steps[@]}" "S:QUIT\r\n" A)
tap_is "one chunk at a time: 250 for each chunk but the last" \
	"$(grep -c '^<- 250 2\.0\.0 [0-9]* octets received' <<< "$out")" 5
tap_like "one chunk at a time: the LAST chunk gets Postfix's queue id" "$out" \
	$'octets received\n<- 250 2\\.0\\.0 Ok: queued as [0-9A-Za-z]+\n<- 221'
# all chunks pipelined in one write; the third is the "." of a "." line alone
mapfile -t steps < <(bdat_steps file "$PX_DIR/msg2" 1 7 140 141)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "${steps[@]}" "S:QUIT\r\n" A)
tap_like "pipelined chunks: 250s, then Postfix's queue id" "$out" \
	$'<- 250 2\\.0\\.0 7 octets received\n<- 250 2\\.0\\.0 133 octets received\n<- 250 2\\.0\\.0 1 octets received\n<- 250 2\\.0\\.0 Ok: queued as [0-9A-Za-z]+'
mapfile -t steps < <(bdat_steps file "$PX_DIR/msg3" 1 4096 20000)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "${steps[@]}" "S:QUIT\r\n" A)
tap_like "a message past proxy_hold_memory: Postfix's queue id" "$out" $'<- 250 2\\.0\\.0 Ok: queued as [0-9A-Za-z]+\n<- 221'
tap_ok "the proxy spooled it" px_wait_log ' hold size=[0-9]+ spooled=yes '

pf_wait_delivered $((before + 3)) 30
same=0
for f in $(pf_delivered_files); do
	i=$(sed -n 's/^Subject: bdat //p' "$f" | head -1)
	[ -n "$i" ] && body_only "$f" | cmp -s - "$PX_DIR/msg$i" && same=$((same + 1))
done
tap_is "every message arrived byte-identical apart from the fields added on top" "$same" 3
tap_ok "the proxy's Received field is among them" grep -q '(mxmoat) with ESMTP' "$(pf_delivered_last)"
if pf_maillog_grep 'smuggled@evil'; then r=1; else r=0; fi
tap_is "the CRLF . CRLF inside a chunk: Postfix never saw the MAIL after it" "$r" 0

# smuggling through BDAT, reject mode: every variant, in one chunk and cut inside the variant
before=$(pf_delivered_count)
for v in "${PX_SMUGGLE_VECTORS[@]}"; do
	for cut in 0 25; do  # 25: inside the variant
		mapfile -t steps < <(bdat_steps text "Subject: smuggle\r\n\r\nbody$v$PX_SMUGGLE" 0 $cut)
		out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "${steps[@]}" "S:QUIT\r\n" A)
		# refused at the end of the chunk that shows it; a LAST chunk pipelined after it: 503
		tap_like "BDAT smuggling $v (cut $cut): refused with 550" "$out" \
			$'<- 550 5\\.(5\\.2|6\\.0)[^\n]*\n(<- 503 5\\.5\\.1[^\n]*\n)?<- 221'
	done
done
sleep 1
tap_is "BDAT smuggling: Postfix delivered nothing" "$(( $(pf_delivered_count) - before ))" 0
if pf_maillog_grep 'smuggled@evil'; then r=1; else r=0; fi
tap_is "BDAT smuggling: Postfix never saw the smuggled MAIL" "$r" 0

# normalize mode: each variant is one message, its smuggled commands body lines (NUL still 550)
px_stop
px_start $P 127.0.0.1:$PF_PORT -o proxy_backend_pass=xclient -o proxy_chunking=yes \
	-o proxy_bare_newline=normalize || tap_bail "normalize proxy did not start"
n=0 nul=0
for v in "${PX_SMUGGLE_VECTORS[@]}"; do
	n=$((n + 1))
	head="Subject: normalize $n\r\n\r\nbody"
	# cut after the variant's first octet (the four escapes in head are one octet each)
	mapfile -t steps < <(bdat_steps text "$head$v$PX_SMUGGLE" 0 $((${#head} - 4 + 1)))
	out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "${steps[@]}" "S:QUIT\r\n" A)
	case $v in
	*x00*)
		nul=$((nul + 1))
		tap_like "normalize BDAT $v: NUL refused, 550 5.6.0" "$out" $'<- 550 5\\.6\\.0' ;;
	*)
		tap_like "normalize BDAT $v: one message, Postfix's queue id" "$out" $'<- 250 2\\.0\\.0 Ok: queued as' ;;
	esac
done
pf_wait_delivered $((before + n - nul)) 30
lines=0
for f in $(pf_delivered_files); do
	grep -q '^Subject: normalize ' "$f" || continue
	[ "$(grep -c -x -E 'MAIL FROM:<smuggled@evil\.example>|RCPT TO:<b@example\.net>|DATA|smuggled body' "$f")" = 4 ] &&
		lines=$((lines + 1))
done
tap_is "normalize: $((n - nul)) messages, each with the smuggled commands as body lines" "$lines" $((n - nul))
if pf_maillog_grep 'smuggled@evil'; then r=1; else r=0; fi
tap_is "normalize: Postfix never saw the smuggled MAIL" "$r" 0
tap_is "no sanitizer report in the proxy log" "$(grep -c 'AddressSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
if [ "$TAP_FAILED" -gt 0 ]; then
	pf_diag
	sed 's/^/# /' "$PX_DIR/proxy.log" | tail -40
fi
tap_done
