# lib.sh - helpers for the cluster integration tests (sourced by
# cluster_test.sh). Each test gets its own redis-server, mlsec-devbroker,
# stage services and orchestrator on free loopback ports, in a scratch
# directory; an EXIT trap stops exactly the processes this test started.
#
# Needs: BIN (build/bin), redis-server/redis-cli on PATH.

set -u
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mlsec-cluster-test.XXXXXX")
T_PIDS=()
ROOT="$T_DIR/root"
mkdir -p "$ROOT"

t_cleanup() {
	local pid
	for pid in "${T_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${T_PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ -n "${REDIS_PORT:-}" ]; then
		redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
	fi
	if [ "${T_KEEP:-0}" = 1 ] || [ "${T_FAILED:-0}" = 1 ]; then
		echo "logs kept in $T_DIR" >&2
	else
		rm -rf "$T_DIR"
	fi
}
trap t_cleanup EXIT

fail() {
	T_FAILED=1
	for f in "$T_DIR"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (tail)" >&2
		tail -n 12 "$f" | grep -v "Redis\|WARNING Memory\|config: " >&2
	done
	echo "FAIL: $*" >&2
	exit 1
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_file FILE SECONDS
wait_file() {
	local i
	for i in $(seq $(($2 * 10))); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

start_redis() {
	REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--daemonize yes --pidfile "$T_DIR/redis.pid" --logfile "$T_DIR/redis.log" \
		--dir "$T_DIR" >/dev/null || fail "redis-server did not start"
	for _ in $(seq 50); do
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	export MLSEC_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

stop_redis() {
	redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
}

start_broker() {
	"$BIN/mlsec-devbroker" --partitions "${1:-4}" --bootstrap-file "$T_DIR/kafka.env" \
		>"$T_DIR/broker.log" 2>&1 &
	T_PIDS+=($!)
	wait_file "$T_DIR/kafka.env" 10 || fail "devbroker did not start"
	# shellcheck disable=SC1091
	. "$T_DIR/kafka.env"
	export MLSEC_KAFKA_BROKERS
}

# start_stage NAME [extra flags...]: a stage service (fake engine unless
# STAGE_BIN is set); its pid in STAGE_PID_<NAME>.
start_stage() {
	local name=$1
	shift
	rm -f "$T_DIR/$name.ready"
	MLSEC_ARTIFACT_ROOT="$ROOT" "${STAGE_BIN:-$BIN/mlsec-fake-tritond}" \
		--grpc-listen 127.0.0.1:0 --ready-file "$T_DIR/$name.ready" "$@" \
		>>"$T_DIR/$name.log" 2>&1 &
	local pid=$!
	T_PIDS+=($pid)
	eval "STAGE_PID_$name=$pid"
	wait_file "$T_DIR/$name.ready" 15 || fail "stage $name did not start"
}

# start_orch [extra flags...]: orchestrator on ORCH_PORT (fixed per test so
# a restart keeps the endpoint); ENDPOINT set.
start_orch() {
	ORCH_PORT=${ORCH_PORT:-$(free_port)}
	rm -f "$T_DIR/orch.ready"
	MLSEC_ARTIFACT_ROOT="$ROOT" $ORCH_WRAP "$BIN/mlsec-orchestratord" \
		--grpc-listen "127.0.0.1:$ORCH_PORT" --ready-file "$T_DIR/orch.ready" "$@" \
		>>"$T_DIR/orch.log" 2>&1 &
	ORCH_PID=$!
	T_PIDS+=($ORCH_PID)
	wait_file "$T_DIR/orch.ready" "${ORCH_WAIT:-15}" || fail "orchestrator did not start"
	ENDPOINT="127.0.0.1:$ORCH_PORT"
	export MLSEC_ENDPOINT=$ENDPOINT
}
ORCH_WRAP=""

# wait_serving ENDPOINT SECONDS
wait_serving() {
	local i
	for i in $(seq $(($2 * 5))); do
		"$BIN/mlsec-submit" --health "$1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# submit ARGS...: runs mlsec-submit; exit code in RC, stdout/stderr in
# $T_DIR/out / $T_DIR/err; the job id (if any) in JOB.
submit() {
	"$BIN/mlsec-submit" "$@" >"$T_DIR/out" 2>"$T_DIR/err"
	RC=$?
	JOB=$(sed -n 's/^mlsec-submit: job \([0-9a-f]*\):.*/\1/p' "$T_DIR/err" | head -n 1)
}

expect_rc() {
	[ "$RC" = "$1" ] || fail "expected exit $1, got $RC: $(cat "$T_DIR/err")"
}

expect_err() {
	grep -q -- "$1" "$T_DIR/err" || fail "stderr lacks '$1': $(cat "$T_DIR/err")"
}

write_file() { printf '%b' "$2" >"$1"; }

# A clean and a hostile file for the fake engine (named like Triton configs
# so that stage auto-selection picks "triton").
make_fixtures() {
	mkdir -p "$T_DIR/in/clean" "$T_DIR/in/evil" "$T_DIR/in/slow"
	write_file "$T_DIR/in/clean/config.pbtxt" 'name: "m"\nplatform: "onnxruntime_onnx"\n'
	write_file "$T_DIR/in/evil/config.pbtxt" 'name: "m"\n# EVIL\n'
	write_file "$T_DIR/in/slow/config.pbtxt" 'name: "m"\n# SLOW EVIL\n'
}
