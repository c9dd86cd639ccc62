#!/bin/bash
# report_failure_redis.sh - report_failure.sh with dmarc_report_store = redis: the same failure
# reports, limits, authorization check and --send, kept in a real redis-server instead of SQLite.
REPORT_FAILURE_STORE=redis exec bash "${top_srcdir:-.}/tests/e2e/report_failure.sh"
