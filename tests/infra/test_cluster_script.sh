#!/usr/bin/env bash
# test_cluster_script.sh - deploy/local/mlsec-cluster up/status/down with
# whatever services are built: everything healthy, cluster.env complete,
# the token private, a second `up` refused, and nothing left after `down`.
set -uo pipefail
ROOT=${MLSEC_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export MLSEC_BIN_DIR=${MLSEC_BIN_DIR:-$ROOT/build/bin}
CLUSTER=$ROOT/deploy/local/mlsec-cluster
export MLSEC_RUN_DIR
MLSEC_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mlsec-cluster-script-XXXXXX")
fails=0
check() { # DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then
		echo "ok   - $what"
	else
		echo "FAIL - $what"
		fails=$((fails + 1))
	fi
}
cleanup() {
	"$CLUSTER" down >/dev/null 2>&1 || true
	rm -rf "$MLSEC_RUN_DIR"
}
trap cleanup EXIT

out=$("$CLUSTER" up 2>"$MLSEC_RUN_DIR/up.err")
rc=$?
check "up exits 0" test "$rc" = 0
[ "$rc" = 0 ] || cat "$MLSEC_RUN_DIR/up.err"
env_file=$MLSEC_RUN_DIR/cluster.env
check "cluster.env written" test -s "$env_file"
check "up prints cluster.env" test "$out" = "$(cat "$env_file" 2>/dev/null)"
for v in MLSEC_ENDPOINT MLSEC_TOKEN_FILE MLSEC_KAFKA_BROKERS MLSEC_REDIS_URL MLSEC_ARTIFACT_ROOT; do
	check "cluster.env has $v" grep -q "^$v=" "$env_file"
done
set -a
# shellcheck source=/dev/null
. "$env_file"
set +a
check "token file is 0600" test "$(stat -c %a "$MLSEC_TOKEN_FILE")" = 600
check "token is not empty" test -s "$MLSEC_TOKEN_FILE"
check "redis answers" test "$(redis-cli -u "$MLSEC_REDIS_URL" ping 2>/dev/null)" = PONG
check "kafka bootstrap is loopback" bash -c '[[ $MLSEC_KAFKA_BROKERS == 127.0.0.1:* ]]'
check "status exits 0" bash -c '"$0" status >/dev/null' "$CLUSTER"
if [ -x "$MLSEC_BIN_DIR/mlsec-orchestratord" ] && [ -x "$MLSEC_BIN_DIR/mlsec-submit" ]; then
	check "orchestrator endpoint set" test -n "$MLSEC_ENDPOINT"
	check "orchestrator SERVING" "$MLSEC_BIN_DIR/mlsec-submit" --health --endpoint "$MLSEC_ENDPOINT"
fi
for f in "$MLSEC_RUN_DIR"/pids/*.pid; do
	check "$(basename "$f" .pid) running" kill -0 "$(cat "$f")"
done
check "second up refused" bash -c '! "$0" up >/dev/null 2>&1' "$CLUSTER"

pids=$(cat "$MLSEC_RUN_DIR"/pids/*.pid)
check "down exits 0" "$CLUSTER" down
sleep 0.2
for p in $pids; do
	# A zombie awaiting its reaper is not running.
	check "pid $p gone" bash -c "[ ! -d /proc/$p ] || grep -q '^State:.*Z' /proc/$p/status"
done
check "status after down says not running" bash -c '"$0" status >/dev/null; [ $? = 3 ]' "$CLUSTER"
check "cluster.env removed" test ! -e "$env_file"
no_procs() { ! pgrep -f -- "$MLSEC_RUN_DIR" >/dev/null; } # pgrep skips itself
check "no process runs from the run dir" no_procs
echo "$fails failure(s)"
[ "$fails" = 0 ]
