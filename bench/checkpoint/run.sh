#!/bin/sh
# bench/checkpoint/run.sh - checkpoint triage throughput against peers, in
# one invocation on the same files (warm page cache):
#   mlsec (in-process engine)  vs  torch.load + Python statistics
#   mlsec pickle scanning      vs  picklescan (if PICKLESCAN_SRC points at
#                                  its src/ directory; never vendored)
# Data is generated under $BENCH_DIR (default $BUILD_DIR/bench-data), never
# committed. Usage: BUILD_DIR=build bench/checkpoint/run.sh [GIB]
set -eu
BUILD_DIR=${BUILD_DIR:-build}
GIB=${1:-1}
DIR=${BENCH_DIR:-$BUILD_DIR/bench-data}
PY=/usr/bin/python3
HERE=$(dirname "$0")
BENCH=$BUILD_DIR/bin/bench_checkpoint
mkdir -p "$DIR"
CKPT=$DIR/ckpt_${GIB}g.pt
PKL=$DIR/objects_64m.pkl
[ -f "$CKPT" ] || { echo "generating $CKPT"; $PY "$HERE/peers.py" gen-ckpt "$CKPT" "$GIB"; }
[ -f "$PKL" ] || { echo "generating $PKL"; $PY "$HERE/peers.py" gen-pickle "$PKL" 64; }
cat "$CKPT" "$PKL" > /dev/null   # warm the page cache

echo "== tensor checkpoint: $(du -h "$CKPT" | cut -f1)"
M=$("$BENCH" "$CKPT" 3)
echo "$M"
T=$($PY "$HERE/peers.py" torch-triage "$CKPT")
echo "$T"
SIZE=$(stat -c %s "$CKPT")
ms=$(echo "$M" | sed 's/.*mlsec_seconds=\([0-9.]*\).*/\1/')
ts=$(echo "$T" | sed 's/.*torch_seconds=\([0-9.]*\).*/\1/')
awk -v m="$ms" -v t="$ts" -v s="$SIZE" 'BEGIN {
	printf "torch.load+stats: %.3f GB/s   mlsec: %.3f GB/s   ratio: %.1fx\n", s/t/1e9, s/m/1e9, t/m }'

echo "== pickle-heavy file: $(du -h "$PKL" | cut -f1)"
M2=$("$BENCH" "$PKL" 3)
echo "$M2"
ps_=$(echo "$M2" | sed 's/.*mlsec_seconds=\([0-9.]*\).*/\1/')
PSIZE=$(stat -c %s "$PKL")
if [ -n "${PICKLESCAN_SRC:-}" ] && [ -d "$PICKLESCAN_SRC/picklescan" ]; then
	t0=$(date +%s.%N)
	PYTHONPATH=$PICKLESCAN_SRC $PY -m picklescan -p "$PKL" > /dev/null 2>&1 || true
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v m="$ps_" -v s="$PSIZE" 'BEGIN {
		printf "picklescan: %.1f MB/s   mlsec: %.1f MB/s   ratio: %.0fx\n", s/(b-a)/1e6, s/m/1e6, (b-a)/m }'
	t0=$(date +%s.%N)
	PYTHONPATH=$PICKLESCAN_SRC $PY -m picklescan -p "$CKPT" > /dev/null 2>&1 || true
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v s="$SIZE" 'BEGIN { printf "picklescan on the tensor checkpoint: %.2f s (pickle only, no tensor checks)\n", b-a }'
else
	awk -v m="$ps_" -v s="$PSIZE" 'BEGIN { printf "mlsec pickle scanning: %.1f MB/s (set PICKLESCAN_SRC for the peer)\n", s/m/1e6 }'
fi
