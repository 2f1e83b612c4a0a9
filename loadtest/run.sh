#!/usr/bin/env bash
# run.sh [CONCURRENCY] [COUNT] [DURATION_S] - brings up a loopback cluster
# (redis-server, mlsec-devbroker, one Triton stage service, the
# orchestrator), runs mlsec-loadgen against it and tears everything down.
# The stage is mlsec-tritond when built, else the test-only fake stage.
# Env: BIN (default build/bin), STAGE_WORKERS (Kafka workers per stage
# service, default 2).
BIN=${BIN:-build/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/cluster/lib.sh
. "$HERE/../tests/cluster/lib.sh"
C=${1:-8}
N=${2:-2000}
D=${3:-10}
if [ -x "$BIN/mlsec-tritond" ]; then STAGE_BIN="$BIN/mlsec-tritond"; fi
STAGE_BIN=${STAGE_BIN:-$BIN/mlsec-fake-tritond}
start_redis
start_broker 4
export MLSEC_LOG_LEVEL=warn
start_stage s1 --kafka-workers "${STAGE_WORKERS:-2}"
start_orch --insecure-local
printf 'name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n' >"$ROOT/config.pbtxt"
# warm up: consumer groups formed, connections open
"$BIN/mlsec-loadgen" --endpoint "$ENDPOINT" --uri config.pbtxt --concurrency 1 --count 5 \
	--duration 60 >/dev/null || fail "warm-up failed"
echo "stage service: $(basename "$STAGE_BIN"), ${STAGE_WORKERS:-2} Kafka worker(s)"
"$BIN/mlsec-loadgen" --endpoint "$ENDPOINT" --uri config.pbtxt --concurrency "$C" --count "$N" \
	--duration "$D"
