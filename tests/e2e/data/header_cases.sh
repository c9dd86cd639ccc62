# header_cases.sh - the table of odd header sections that tests/e2e/header_table.sh (Postfix,
# mxmoat-proxy in holding and streaming mode, mxmoat-check) and tests/e2e/milter_header.sh
# (mxmoat-milter behind Postfix) run (sourced; bash). The classes of SECURITY.md "Header
# sections", espoofer-style: every case but the controls carries a From of good.test, which
# publishes p=reject and no key, sent from an address its SPF does not allow, so a From that is
# read as a field must fail DMARC. Our authserv-id is mx.mxmoat.test.
#
# hc NAME PROXY CHECK MESSAGE
#   PROXY    the reply mxmoat-proxy gives after the dot (an extended regex)
#   CHECK    mxmoat-check's "verdict:" line (an extended regex)
#   MESSAGE  the DATA content, backslash escapes (\r \n \t \x00) decoded, without the final dot
HC_NAME=() HC_PROXY=() HC_CHECK=() HC_MSG=()
hc() { HC_NAME+=("$1"); HC_PROXY+=("$2"); HC_CHECK+=("$3"); HC_MSG+=("$4"); }

OK='^250 2\.0\.0 Ok'
DMARC='^550 5\.7\.1 Message rejected: DMARC policy of good\.test'
CDMARC='^verdict: reject 550 5\.7\.1 Message rejected: DMARC policy of good\.test'
FROM1='^550 5\.7\.1 Message must have exactly one From address'
CFROM1='^verdict: reject 550 5\.7\.1 Message must have exactly one From address'
AMB='^550 5\.6\.0 Message header refused: '
CAMB='^verdict: reject 550 5\.6\.0 Message header refused: '
WSP='header section starts with whitespace'
NOTF='header line is neither a field nor a continuation'
INNAME='whitespace inside a header field name'
BODY='\r\n\r\nhi\r\n'

hc "control: an ordinary message" "$OK" '^verdict: accept' "From: a@example.net\r\nSubject: t$BODY"
hc "control: a spoof of a p=reject domain" "$DMARC" "$CDMARC" "From: ceo@good.test\r\nSubject: t$BODY"
hc "control: a forged A-R of ours, unfolded" "$OK" '^verdict: accept' \
	"Authentication-Results: mx.mxmoat.test; dmarc=pass header.from=good.test\r\nFrom: a@example.net$BODY"
hc "From : (space before the colon)" "$DMARC" "$CDMARC" "From : ceo@good.test\r\nSubject: t$BODY"
hc "a second From, From :" "$FROM1" "$CFROM1" "From: a@example.net\r\nFrom : ceo@good.test$BODY"
hc "a folded From name" "$AMB$NOTF" "$CAMB$NOTF" "From\r\n : ceo@good.test\r\nSubject: t$BODY"
hc "a second From, folded" "$AMB$NOTF" "$CAMB$NOTF" "From: a@example.net\r\nFrom\r\n : ceo@good.test$BODY"
hc "a folded name with blanks" "$AMB$INNAME" "$CAMB$INNAME" "From \r\n : ceo@good.test$BODY"
hc "a first line starting with a space" "$AMB$WSP" "$CAMB$WSP" " x\r\nFrom: ceo@good.test$BODY"
hc "a first line of blanks only" "$AMB$WSP" "$CAMB$WSP" " \r\nFrom: ceo@good.test$BODY"
hc "a first line starting with a tab, then an A-R of ours" "$AMB$WSP" "$CAMB$WSP" \
	"\tx\r\nAuthentication-Results: mx.mxmoat.test; dmarc=pass header.from=good.test\r\nFrom: ceo@good.test$BODY"
hc "a first line without a colon" "$AMB$NOTF" "$CAMB$NOTF" "hello\r\nFrom: ceo@good.test$BODY"
hc "a first line starting with a colon" "$AMB$NOTF" "$CAMB$NOTF" ":x\r\nFrom: ceo@good.test$BODY"
hc "a later line that is no field" "$AMB$NOTF" "$CAMB$NOTF" \
	"Subject: t\r\nhello\r\nFrom: ceo@good.test$BODY"
hc "a space inside a name" "$AMB$INNAME" "$CAMB$INNAME" "X Y: 1\r\nFrom: ceo@good.test$BODY"
hc "a folded A-R name with our authserv-id" "$AMB$NOTF" "$CAMB$NOTF" \
	"Authentication-Results\r\n : mx.mxmoat.test; dmarc=pass header.from=good.test\r\nFrom: ceo@good.test$BODY"
# The proxy's DATA reader refuses a NUL or a bare CR anywhere in DATA before the header reader
# sees it; mxmoat-check reads files and leaves that to the header reader.
hc "a NUL in the header" '^550 5\.6\.0 NUL byte in message' "${CAMB}NUL in the header section" \
	"Subject: a\x00b\r\nFrom: ceo@good.test$BODY"
hc "a bare CR in the header" '^550 5\.5\.2 Bare <CR> or <LF> in message' \
	"${CAMB}bare CR in the header section" "Subject: a\rFrom: ceo@good.test$BODY"
hc "an empty first line (no header fields)" "$FROM1 \(no From field\)" "$CFROM1 \(no From field\)" \
	"\r\nFrom: ceo@good.test$BODY"
hc "no empty line and no field" "$AMB$NOTF" "$CAMB$NOTF" "just-text\r\nFrom: ceo@good.test\r\n"
