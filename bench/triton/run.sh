#!/usr/bin/env bash
# Runs bench_triton with the original Python auditor beside it when a copy
# can be found: $MLSEC_PY_TRITON_AUDITOR, or a local git mirror of
# scthornton/ml-security-tools ($MLSEC_PY_TOOLS_GIT, a git dir), from which
# triton_config_auditor.py is extracted to a temp dir (never committed here).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BUILD_DIR:-build}/bin/bench_triton
py=${MLSEC_PY_TRITON_AUDITOR:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git_dir=${MLSEC_PY_TOOLS_GIT:-/work/.mirror/scthornton+ml-security-tools/repo}
if [ -z "$py" ] && [ -d "$git_dir" ]; then
	if git --git-dir="$git_dir" show HEAD:triton_config_auditor.py >"$tmp/triton_config_auditor.py" 2>/dev/null; then
		py=$tmp/triton_config_auditor.py
	fi
fi
MLSEC_BIN=${BUILD_DIR:-build}/bin/mlsec exec "$bin" ${py:+--python "$py"} "$@"
