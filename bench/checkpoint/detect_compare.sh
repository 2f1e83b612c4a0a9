#!/bin/sh
# bench/checkpoint/detect_compare.sh - detection side by side on every
# malicious fixture: picklescan's verdict (PICKLESCAN_SRC=<picklescan>/src,
# run from outside the repo, never vendored) and mlsec's highest severity.
# Usage: BUILD_DIR=build PICKLESCAN_SRC=/tmp/picklescan/src bench/checkpoint/detect_compare.sh
set -eu
BUILD_DIR=${BUILD_DIR:-build}
: "${PICKLESCAN_SRC:?set PICKLESCAN_SRC to picklescan's src directory}"
MLSEC=$(cd "$BUILD_DIR" && pwd)/bin/mlsec
cd "$(dirname "$0")/../../tests/data/checkpoint"
missed_ps=0
missed_ml=0
for f in *.pkl *.bin zip_*.pt legacy_truncated.pt st_*.safetensors object.npy; do
	ps=$(PYTHONPATH=$PICKLESCAN_SRC timeout 60 /usr/bin/python3 -m picklescan -p "$f" 2>&1 |
		awk -F': ' '/Dangerous globals/{d=$2} /Suspicious globals/{s=$2}
			END{ if (d+0 > 0) print "dangerous"; else if (s+0 > 0) print "suspicious"; else print "clean" }')
	ml=$("$MLSEC" checkpoint --no-hash --quiet --json "$f" | /usr/bin/python3 -c '
import json, sys
order = ["info", "low", "medium", "high", "critical"]
f = json.load(sys.stdin)["artifacts"][0]["findings"]
print(max((x["severity"] for x in f), key=order.index) if f else "clean")')
	printf "%-36s picklescan=%-11s mlsec=%s\n" "$f" "$ps" "$ml"
	[ "$f" = benign.pkl ] && continue
	[ "$ps" = dangerous ] || missed_ps=$((missed_ps + 1))
	case "$ml" in high|critical) ;; *) missed_ml=$((missed_ml + 1)) ;; esac
done
echo "not flagged dangerous by picklescan: $missed_ps; below high in mlsec: $missed_ml"
