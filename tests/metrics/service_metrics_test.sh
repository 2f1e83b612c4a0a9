#!/usr/bin/env bash
# service_metrics: a real stage service (mlsec-tritond) with
# MLSEC_METRICS_LISTEN, fed a clean and a hostile job through redis-server,
# mlsec-devbroker and mlsec-orchestratord on loopback; /metrics must show
# the jobs by outcome, the duration histogram and the findings move.
# Skips (77) until the service harness serves metrics (metrics-listen in
# --help) or when a needed program is missing.
# Usage: service_metrics_test.sh BIN_DIR SOURCE_DIR
set -u
BIN=$1
SRC=$2
EX="$SRC/examples/triton"
for p in mlsec-tritond mlsec-orchestratord mlsec-devbroker mlsec-submit; do
	[ -x "$BIN/$p" ] || { echo "service_metrics: $p not built: skipped"; exit 77; }
done
command -v redis-server >/dev/null || { echo "service_metrics: no redis-server: skipped"; exit 77; }
"$BIN/mlsec-tritond" --help 2>&1 | grep -q "metrics-listen" ||
	{ echo "service_metrics: harness has no --metrics-listen yet: skipped"; exit 77; }
[ -d "$EX/clean" ] && [ -d "$EX/hostile" ] || { echo "service_metrics: examples missing: skipped"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/mlsec-metrics-test.XXXXXX")
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	[ -n "${RPORT:-}" ] && redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL service_metrics: $*"
	tail -n 5 "$T"/*.log 2>/dev/null
	exit 1
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # FILE SECONDS
	for _ in $(seq $(($2 * 10))); do [ -s "$1" ] && return 0; sleep 0.1; done
	return 1
}
scrape() { /usr/bin/python3 -c 'import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())' "$MPORT"; }
value() { # SERIES: prints its value or "none"
	scrape | awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "none" }'
}

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
	--pidfile "$T/redis.pid" --logfile "$T/redis.log" --dir "$T" >/dev/null || fail "redis"
export MLSEC_REDIS_URL="redis://127.0.0.1:$RPORT/0"
"$BIN/mlsec-devbroker" --partitions 2 --bootstrap-file "$T/kafka.env" >"$T/broker.log" 2>&1 &
PIDS+=($!)
wait_for "$T/kafka.env" 15 || fail "devbroker"
# shellcheck disable=SC1091
. "$T/kafka.env"
export MLSEC_KAFKA_BROKERS
export MLSEC_ARTIFACT_ROOT=/

MPORT=$(free_port)
MLSEC_METRICS_LISTEN="127.0.0.1:$MPORT" "$BIN/mlsec-tritond" --grpc-listen 127.0.0.1:0 \
	--ready-file "$T/stage.ready" >"$T/stage.log" 2>&1 &
PIDS+=($!)
wait_for "$T/stage.ready" 15 || fail "mlsec-tritond"
OPORT=$(free_port)
"$BIN/mlsec-orchestratord" --insecure-local --grpc-listen "127.0.0.1:$OPORT" \
	--ready-file "$T/orch.ready" >"$T/orch.log" 2>&1 &
PIDS+=($!)
wait_for "$T/orch.ready" 15 || fail "mlsec-orchestratord"
export MLSEC_ENDPOINT="127.0.0.1:$OPORT"

passed=0
check() { # DESCRIPTION SERIES EXPECTED
	local got
	got=$(value "$2")
	if [ "$got" = "$3" ]; then passed=$((passed + 1)); else fail "$1: $2 = $got, want $3"; fi
}
ok='mlsec_jobs_total{stage="triton",outcome="ok"}'
alert='mlsec_jobs_total{stage="triton",outcome="alert"}'
count='mlsec_analysis_duration_seconds_count{stage="triton"}'

check "no job yet" "$ok" none
"$BIN/mlsec-submit" triton "$EX/clean" --timeout 30 >/dev/null 2>&1
[ $? = 0 ] || fail "clean job verdict"
check "clean job counted" "$ok" 1
check "duration observed" "$count" 1
"$BIN/mlsec-submit" triton "$EX/hostile" --timeout 30 >/dev/null 2>&1
[ $? = 2 ] || fail "hostile job verdict"
check "hostile job counted as alert" "$alert" 1
check "clean count unchanged" "$ok" 1
check "two durations" "$count" 2
findings=$(scrape | awk '$1 ~ /^mlsec_findings_total\{stage="triton"/ { n += $2 } END { print n + 0 }')
[ "$findings" -gt 0 ] || fail "no findings counted for the hostile job"
passed=$((passed + 1))
echo "service_metrics: $passed passed, 0 failed"
