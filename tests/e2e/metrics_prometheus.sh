#!/bin/bash
# metrics_prometheus.sh - a real Prometheus (Debian's prometheus, started here on loopback with a
# temporary configuration and the shipped alerting rules) scrapes mxmoat-milter behind Postfix
# and mxmoat-proxy in front of smtp-sink while mail goes through both, and its HTTP API returns
# the counts that traffic must give: sessions, messages by verdict, refusals by reason, SPF and
# DMARC results (nsd serves the records), DNS query times, backend replies, a TLS 1.3
# handshake, the configuration generation after SIGHUP; both daemons expose the same names.
# The metrics endpoint itself: 404 elsewhere, 405 for POST, and a client outside metrics_allow
# is closed without an answer.
# Ports: 15610 (smtpd), 15611 (sink), 15612 (milter), 15613 (nsd), 15614 (milter metrics),
# 15615 (proxy), 15616 (proxy sink), 15617 (proxy metrics), 15618 (prometheus).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/dns.sh"
. "${top_srcdir:-.}/tests/lib/proxy.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
[ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
command -v prometheus >/dev/null || tap_skip_all "prometheus not installed (tests/packages/metrics.txt)"
command -v curl >/dev/null || tap_skip_all "curl not installed"
milter_pf_prepare metrics-prometheus

PROM_PID=
prom_stop() { [ -n "$PROM_PID" ] && proc_stop "$PROM_PID"; PROM_PID=; }
trap 'prom_stop; milter__pf_cleanup' EXIT

cat >"$MILTER_DIR/metrics.test.zone" <<'EOF'
$ORIGIN metrics.test.
$TTL 300
@	IN SOA ns.metrics.test. hostmaster.metrics.test. 1 3600 600 86400 300
@	IN NS ns
ns	IN A 127.0.0.1
pass	IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.pass	IN TXT "v=DMARC1; p=reject"
r	IN TXT "v=spf1 -all"
_dmarc.r	IN TXT "v=DMARC1; p=reject"
EOF
dns_start 15613 .="$top_srcdir/tests/e2e/data/root.zone" metrics.test="$MILTER_DIR/metrics.test.zone" ||
	tap_bail "nsd did not start"

auth=(-o auth_inbound=yes -o dns_resolver=127.0.0.1@15613 -o authserv_id=mx.mxmoat.test
	-o limit_recipients=1)
tap_ok "milter starts with metrics_listen = 127.0.0.1:15614" milter_start inet:15612@127.0.0.1 \
	"${auth[@]}" -o metrics_listen=127.0.0.1:15614
milter_pf_start 15610 15611 "smtpd_milters = inet:127.0.0.1:15612" "milter_default_action = tempfail"

px_init || tap_bail "no temp dir"
mkdir -p "$PX_DIR/spool" && chown nobody "$PX_DIR/spool"
px_tls_key || tap_bail "no test key"
px_sink_start 15616 || tap_bail "smtp-sink did not start"
tap_ok "proxy starts with metrics_listen = 127.0.0.1:15617" px_start 15615 127.0.0.1:15616 \
	"${auth[@]}" -o "proxy_spool_dir=$PX_DIR/spool" -o metrics_listen=127.0.0.1:15617 \
	-o "tls_cert_file=$PX_DIR/rsa.pem" -o "tls_key_file=$PX_DIR/rsa.key"

# The endpoint: exact status codes; a client outside metrics_allow hears nothing at all.
tap_is "GET /metrics: 200" "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15617/metrics)" 200
tap_like "GET /metrics: the exposition format's content type" \
	"$(curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:15617/metrics)" '^text/plain; version=0\.0\.4'
tap_is "GET /: 404" "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15617/)" 404
tap_is "POST /metrics: 405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x http://127.0.0.1:15617/metrics)" 405
tap_is "the same metric names from both daemons" \
	"$(diff <(curl -s http://127.0.0.1:15614/metrics | grep -v '^#' | sed 's/[ {].*//' | sort -u) \
		<(curl -s http://127.0.0.1:15617/metrics | grep -v '^#' | sed 's/[ {].*//' | sort -u) && echo same)" same

# Prometheus scrapes both every second and loads the shipped rules.
mkdir -p "$MILTER_DIR/prom"
cat >"$MILTER_DIR/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $(cd "$top_srcdir" && pwd)/contrib/prometheus/mxmoat.rules.yml
scrape_configs:
  - job_name: mxmoat-milter
    static_configs:
      - targets: ['127.0.0.1:15614']
  - job_name: mxmoat-proxy
    static_configs:
      - targets: ['127.0.0.1:15617']
EOF
prometheus --config.file="$MILTER_DIR/prom/prometheus.yml" --storage.tsdb.path="$MILTER_DIR/prom/data" \
	--web.listen-address=127.0.0.1:15618 >"$MILTER_DIR/prom/log" 2>&1 &
PROM_PID=$!
proc_wait_ready "$PROM_PID" curl -sf -o /dev/null http://127.0.0.1:15618/-/ready ||
	{ sed 's/^/# /' "$MILTER_DIR/prom/log"; tap_bail "prometheus did not start"; }

# prom_value QUERY - the value of an instant query with one result ("" when there is none)
prom_value() {
	curl -s --get --data-urlencode "query=$1" http://127.0.0.1:15618/api/v1/query |
		python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if len(r) == 1 else "")'
}
# prom_wait NAME QUERY WANT - bounded wait (30 s) until Prometheus has scraped the value WANT
prom_wait() {
	local got i
	for i in $(seq 1 150); do
		got=$(prom_value "$2")
		[ "$got" = "$3" ] && break
		sleep 0.2
	done
	tap_is "$1" "$got" "$3"
}
prom_wait "both targets up" 'sum(up{job=~"mxmoat-.*"})' 2

# Sessions so far: the fixtures' readiness probes connected too (the proxy counts every connection,
# the milter every connection from the MTA or a probe).
declare -A sessions_before
sessions_before[mxmoat-milter]=$(curl -s http://127.0.0.1:15614/metrics | sed -n 's/^mxmoat_sessions_total //p')
sessions_before[mxmoat-proxy]=$(curl -s http://127.0.0.1:15617/metrics | sed -n 's/^mxmoat_sessions_total //p')

# Three messages through each daemon: an aligned SPF pass, the same with a second recipient
# over limit_recipients (452, the message goes on), and a p=reject domain failing SPF (550).
send() {	# send PORT FROM RCPTS [SWAKS-OPTIONS...]
	local port=$1 from=$2 to=$3; shift 3
	swaks --server "127.0.0.1:$port" --from "bounce@$from" --to "$to" \
		--header "From: <alice@$from>" --header 'Subject: metrics' --body 'm' "$@" 2>&1
}
for port in 15610 15615; do
	tls=()
	[ "$port" = 15615 ] && tls=(--tls)
	out=$(send "$port" pass.metrics.test b@example.net "${tls[@]}")
	tap_like "$port: the SPF pass is accepted" "$out" "<[-~]  250 2\.0\.0 Ok"
	out=$(send "$port" pass.metrics.test b@example.net,c@example.net)
	tap_like "$port: the second recipient gets 452 4.5.3" "$out" "<\*\* 452 4\.5\.3 "
	tap_like "$port: that message is accepted for the first" "$out" "<-  250 2\.0\.0 Ok"
	out=$(send "$port" r.metrics.test b@example.net)
	tap_like "$port: p=reject failing SPF gets 550 5.7.1" "$out" "<\*\* 550 5\.7\.1 "
done
tap_ok "Postfix relayed two messages" pf_wait_delivered 2 20
kill -HUP "$PX_PID"
for i in $(seq 1 50); do grep -q ' reload status=ok' "$PX_DIR/proxy.log" && break; sleep 0.1; done

for job in mxmoat-milter mxmoat-proxy; do
	j="job=\"$job\""
	prom_wait "$job: sessions_total grew by the 3 SMTP sessions" \
		"mxmoat_sessions_total{$j} - ${sessions_before[$job]}" 3
	prom_wait "$job: sessions_active 0" "mxmoat_sessions_active{$j}" 0
	prom_wait "$job: 2 messages accepted" "mxmoat_messages_total{$j,verdict=\"accept\"}" 2
	prom_wait "$job: 1 message rejected" "mxmoat_messages_total{$j,verdict=\"reject\"}" 1
	prom_wait "$job: 0 tempfailed" "mxmoat_messages_total{$j,verdict=\"tempfail\"}" 0
	prom_wait "$job: refusals limit_recipients 1" "mxmoat_refusals_total{$j,reason=\"limit_recipients\"}" 1
	prom_wait "$job: refusals dmarc_fail 1" "mxmoat_refusals_total{$j,reason=\"dmarc_fail\"}" 1
	prom_wait "$job: spf pass 2" "mxmoat_auth_results_total{$j,method=\"spf\",result=\"pass\"}" 2
	prom_wait "$job: spf fail 1" "mxmoat_auth_results_total{$j,method=\"spf\",result=\"fail\"}" 1
	prom_wait "$job: dmarc pass 2" "mxmoat_auth_results_total{$j,method=\"dmarc\",result=\"pass\"}" 2
	prom_wait "$job: dmarc fail 1" "mxmoat_auth_results_total{$j,method=\"dmarc\",result=\"fail\"}" 1
	prom_wait "$job: dkim none 3" "mxmoat_auth_results_total{$j,method=\"dkim\",result=\"none\"}" 3
	prom_wait "$job: DNS queries were timed" "mxmoat_dns_query_seconds_count{$j} > bool 0" 1
	prom_wait "$job: every DNS query in a bucket" \
		"mxmoat_dns_query_seconds_count{$j} - ignoring(le) mxmoat_dns_query_seconds_bucket{$j,le=\"+Inf\"}" 0
	prom_wait "$job: nothing held now" "mxmoat_hold_bytes{$j}" 0
done
# The milter has no backend of its own and does no TLS here (Postfix talks to the client).
prom_wait "milter: no backend replies" 'sum(mxmoat_backend_replies_total{job="mxmoat-milter"})' 0
prom_wait "milter: config generation 1" 'mxmoat_config_generation{job="mxmoat-milter"}' 1
prom_wait "proxy: one TLSv1.3 handshake" 'mxmoat_tls_handshakes_total{job="mxmoat-proxy",version="TLSv1.3"}' 1
prom_wait "proxy: config generation 2 after SIGHUP" 'mxmoat_config_generation{job="mxmoat-proxy"}' 2
# The sink's dialogue: 220 greetings, 250s, one 354 for each message relayed (the rejected one
# is never sent on: holding mode decides before the backend's DATA).
prom_wait "proxy: 354 twice (3xx)" 'mxmoat_backend_replies_total{job="mxmoat-proxy",class="3xx"}' 2
prom_wait "proxy: no 4xx or 5xx from the sink" \
	'sum(mxmoat_backend_replies_total{job="mxmoat-proxy",class=~"4xx|5xx"})' 0
prom_wait "proxy: 2xx replies counted" 'mxmoat_backend_replies_total{job="mxmoat-proxy",class="2xx"} > bool 5' 1
prom_wait "no alert pending or firing on this healthy run" \
	'count(ALERTS) or vector(0)' 0
rules=$(curl -s http://127.0.0.1:15618/api/v1/rules)
health=$(printf '%s' "$rules" | python3 -c 'import json, sys
g = json.load(sys.stdin)["data"]["groups"]
print(",".join(sorted(r["health"] for x in g if x["name"] == "mxmoat" for r in x["rules"])))')
tap_is "prometheus: the six rules of the group loaded, each evaluated without error" \
	"$health" "ok,ok,ok,ok,ok,ok"
[ "$health" = "ok,ok,ok,ok,ok,ok" ] || tap_diag "$rules"

# A client outside metrics_allow: accepted by the kernel, closed before any answer.
px_stop
tap_ok "proxy restarts with metrics_allow = 192.0.2.0/24" px_start 15615 127.0.0.1:15616 \
	-o metrics_listen=127.0.0.1:15617 -o metrics_allow=192.0.2.0/24
tap_is "loopback outside metrics_allow: no HTTP answer" \
	"$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15617/metrics)" 000
px_stop
tap_is "proxy: no sanitizer report" \
	"$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PX_DIR/proxy.log")" 0
milter_stop
tap_is "milter: SIGTERM, exit 0" "$MILTER_RC" 0
tap_ok "milter: no sanitizer report" milter_sanitizer_clean
tap_done
