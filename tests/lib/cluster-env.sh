# shellcheck shell=bash
# cluster-env.sh - source this from an integration test script to get a
# private redis-server and mlsec-devbroker on free loopback ports:
#
#   . "$MLSEC_SOURCE_DIR/tests/lib/cluster-env.sh"
#   mlsec_env_up            # exports MLSEC_REDIS_URL, MLSEC_KAFKA_BROKERS,
#                           # MLSEC_ENV_DIR (scratch dir), MLSEC_REDIS_PORT
#   ...                     # run services / clients against them
#   mlsec_env_down          # also run automatically on EXIT
#
# Helpers: mlsec_free_port, mlsec_wait_port PORT [SECS], mlsec_redis_stop,
# mlsec_redis_start [PORT] (restart on the same port), mlsec_env_spawn NAME
# CMD... (background process tracked and killed by mlsec_env_down).
# Only loopback is used. Binaries come from $MLSEC_BIN_DIR (ctest sets it)
# or build/bin.

MLSEC_ENV_BIN=${MLSEC_BIN_DIR:-build/bin}
MLSEC_ENV_PIDS=()

# A TCP port nobody listens on right now (random in 20000-59999).
mlsec_free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Waits until something accepts connections on 127.0.0.1:PORT.
mlsec_wait_port() {
	local port=$1 secs=${2:-10}
	for _ in $(seq 1 $((secs * 20))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# shellcheck disable=SC2120 # PORT is optional (restart on the same port)
mlsec_redis_start() {
	local port=${1:-}
	[ -n "$port" ] || port=$(mlsec_free_port) || return 1
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$MLSEC_ENV_DIR" --daemonize yes \
		--pidfile "$MLSEC_ENV_DIR/redis.pid" --logfile "$MLSEC_ENV_DIR/redis.log" >/dev/null || return 1
	if ! mlsec_wait_port "$port" 5; then
		echo "cluster-env: redis-server did not start on $port" >&2
		return 1
	fi
	MLSEC_REDIS_PORT=$port
	export MLSEC_REDIS_PORT
	export MLSEC_REDIS_URL="redis://127.0.0.1:$port/0"
}

mlsec_redis_stop() {
	[ -n "${MLSEC_REDIS_PORT:-}" ] || return 0
	redis-cli -p "$MLSEC_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$MLSEC_REDIS_PORT") 2>/dev/null || return 0
		sleep 0.05
	done
	[ -f "$MLSEC_ENV_DIR/redis.pid" ] && kill -9 "$(cat "$MLSEC_ENV_DIR/redis.pid")" 2>/dev/null
	return 0
}

# Runs CMD in the background (log in $MLSEC_ENV_DIR/NAME.log), tracked.
mlsec_env_spawn() {
	local name=$1
	shift
	"$@" >"$MLSEC_ENV_DIR/$name.log" 2>&1 &
	MLSEC_ENV_PIDS+=("$!")
	eval "MLSEC_PID_${name//[^A-Za-z0-9_]/_}=$!"
}

mlsec_env_up() {
	MLSEC_ENV_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mlsec-env-XXXXXX") || return 1
	export MLSEC_ENV_DIR
	trap mlsec_env_down EXIT
	mlsec_redis_start || return 1
	mlsec_env_spawn devbroker "$MLSEC_ENV_BIN/mlsec-devbroker" --bootstrap-file "$MLSEC_ENV_DIR/kafka.env"
	for _ in $(seq 1 200); do
		[ -s "$MLSEC_ENV_DIR/kafka.env" ] && break
		sleep 0.05
	done
	if [ ! -s "$MLSEC_ENV_DIR/kafka.env" ]; then
		echo "cluster-env: mlsec-devbroker did not start" >&2
		cat "$MLSEC_ENV_DIR/devbroker.log" >&2
		return 1
	fi
	MLSEC_KAFKA_BROKERS=$(sed -n 's/^MLSEC_KAFKA_BROKERS=//p' "$MLSEC_ENV_DIR/kafka.env")
	export MLSEC_KAFKA_BROKERS
}

mlsec_env_down() {
	local p
	for p in "${MLSEC_ENV_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${MLSEC_ENV_PIDS[@]}"; do
		for _ in $(seq 1 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$p" 2>/dev/null || true
		{ wait "$p"; } 2>/dev/null || true
	done
	MLSEC_ENV_PIDS=()
	mlsec_redis_stop
	if [ -n "${MLSEC_ENV_DIR:-}" ] && [ -d "$MLSEC_ENV_DIR" ]; then
		rm -rf "$MLSEC_ENV_DIR"
	fi
	MLSEC_ENV_DIR=
}
