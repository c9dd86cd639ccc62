#!/bin/bash
# proxy_transcripts.sh - the proxy session's golden transcripts (tests/transcripts/*.in against
# their .ref), one TAP case each, run by tests/helpers/px_transcript. MXMOAT_TRANSCRIPT_UPDATE=1
# rewrites the .ref files instead, for review with git diff.
exec "${top_builddir:-.}/tests/helpers/px_transcript" "${top_srcdir:-.}"/tests/transcripts/*.in
