#!/bin/bash
# milter_leaks.sh - 1,000 messages through Postfix and mxmoat-milter (smtp-source, 10 sessions at
# a time; half of them several per connection with 5 recipients each), then SIGTERM: LeakSanitizer runs at exit in the
# ASan build and must report nothing; every session the milter saw is closed.
# Ports: 13520 (smtpd), 13521 (sink), 13522 (milter).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
top_builddir=${top_builddir:-.}
milter_pf_prepare milter-leaks smtp-source
grep -q __asan_init "$top_builddir/milter/mxmoat-milter" 2>/dev/null || \
	tap_diag "mxmoat-milter is not an ASan build: only counts are checked"

tap_ok "milter starts" milter_start inet:13522@127.0.0.1 -o log_verbose=no
milter_pf_start 13520 13521 "smtpd_milters = inet:127.0.0.1:13522" "milter_default_action = tempfail"

tap_ok "smtp-source: 500 messages, one per session" timeout 120 smtp-source -s 10 -m 500 -l 2048 \
	-f a@example.org -t b@example.net 127.0.0.1:13520
tap_ok "smtp-source: 500 messages, several per connection, 5 recipients each" timeout 120 smtp-source -s 10 -m 500 -d -r 5 -l 2048 \
	-f a@example.org -t b@example.net 127.0.0.1:13520
tap_ok "all 1000 relayed" pf_wait_delivered 1000 60
milter_stop
tap_is "SIGTERM: exit 0" "$MILTER_RC" 0
tap_is "1000 messages seen by the milter" "$(grep -c ' message queue_id=' "$MILTER_LOG")" 1000
tap_ok "no LeakSanitizer/ASan/UBSan report" milter_sanitizer_clean
tap_done
