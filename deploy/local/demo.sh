#!/usr/bin/env bash
# demo.sh - `make demo`: bring the local mlsec cluster up, submit a clean and
# a hostile Triton model repository (examples/triton/{clean,hostile}), show
# both verdicts (exit codes 0 and 2), and take the cluster down again, even
# when something fails or the user presses Ctrl-C.
#
# Without mlsec-submit / mlsec-orchestratord / mlsec-tritond in build/bin it
# says so and runs the same checks in-process with `build/bin/mlsec triton`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR=${MLSEC_BIN_DIR:-$ROOT/build/bin}
export MLSEC_RUN_DIR=${MLSEC_RUN_DIR:-$ROOT/.run/demo}
CLUSTER=$ROOT/deploy/local/mlsec-cluster
EXAMPLES=$ROOT/examples/triton

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

for d in clean hostile; do
	if [ ! -d "$EXAMPLES/$d" ]; then
		echo "demo: $EXAMPLES/$d is missing" >&2
		exit 1
	fi
done

mode=cluster
for b in mlsec-submit mlsec-orchestratord mlsec-tritond mlsec-devbroker; do
	if [ ! -x "$BIN_DIR/$b" ]; then
		mode=local
		missing=$b
		break
	fi
done

run_case() { # NAME -> prints the report, returns the verdict's exit code
	local name=$1
	if [ "$mode" = cluster ]; then
		"$BIN_DIR/mlsec-submit" triton "$EXAMPLES/$name"
	else
		"$BIN_DIR/mlsec" triton "$EXAMPLES/$name"
	fi
}

if [ "$mode" = cluster ]; then
	trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
	trap 'exit 130' INT TERM
	bold "== starting the local mlsec cluster (loopback only)"
	if ! "$CLUSTER" up; then
		echo "demo: the cluster did not start (logs in $MLSEC_RUN_DIR/logs)" >&2
		exit 1
	fi
	set -a
	# shellcheck disable=SC1091
	. "$MLSEC_RUN_DIR/cluster.env"
	set +a
else
	bold "== $missing is not built: running the Triton checks in-process (build/bin/mlsec triton)"
	if [ ! -x "$BIN_DIR/mlsec" ]; then
		echo "demo: $BIN_DIR/mlsec not built (run: make build)" >&2
		exit 1
	fi
fi

bold "== clean model repository: examples/triton/clean"
run_case clean
clean_rc=$?
bold "== hostile model repository: examples/triton/hostile"
run_case hostile
hostile_rc=$?

echo
bold "== verdicts"
printf '  examples/triton/clean    exit %d  (expected 0: clean)\n' "$clean_rc"
printf '  examples/triton/hostile  exit %d  (expected 2: findings at or above high)\n' "$hostile_rc"
if [ "$mode" = cluster ]; then
	bold "== stopping the cluster"
fi
if [ "$clean_rc" = 0 ] && [ "$hostile_rc" = 2 ]; then
	exit 0
fi
echo "demo: unexpected verdicts" >&2
exit 1
