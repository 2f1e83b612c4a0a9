#!/bin/sh
# bench/checkpoint/run.sh - checkpoint triage throughput against peers, in
# one invocation on the same files (warm page cache):
#   mlsec (in-process engine)  vs  torch.load + Python statistics
#   mlsec pickle scanning      vs  picklescan (PICKLESCAN_SRC, its src/
#                                  directory, or a git mirror found by
#                                  PICKLESCAN_GIT; never vendored)
# Wall time and CPU time are both printed: on a shared machine the CPU
# ratio is the steadier one. Data is generated under $BENCH_DIR (default
# $BUILD_DIR/bench-data), never committed.
# Usage: BUILD_DIR=build bench/checkpoint/run.sh [GIB]
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
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

field() { echo "$1" | sed "s/.*$2=\([0-9.]*\).*/\1/"; }

echo "== tensor checkpoint: $(stat -c %s "$CKPT") bytes"
MH=$("$BENCH" "$CKPT" 3)
echo "with sha256:    $MH"
M=$(BENCH_NO_HASH=1 BENCH_KERNEL=1 "$BENCH" "$CKPT" 3)
echo "without sha256: $(echo "$M" | tail -1)"
echo "stats kernel alone (float32, no CRC; mapped windows over the file, and in memory): $(echo "$M" | head -1)"
M=$(echo "$M" | tail -1)
T=$($PY "$HERE/peers.py" torch-triage "$CKPT")
echo "torch.load + per-tensor NaN/Inf/max/histc: $T"
SIZE=$(stat -c %s "$CKPT")
awk -v m="$(field "$M" mlsec_seconds)" -v mc="$(field "$M" mlsec_cpu_seconds)" \
    -v h="$(field "$MH" mlsec_seconds)" -v hc="$(field "$MH" mlsec_cpu_seconds)" \
    -v t="$(field "$T" torch_seconds)" -v tc="$(field "$T" torch_cpu_seconds)" -v s="$SIZE" 'BEGIN {
	printf "wall: torch %.3f GB/s | mlsec %.3f GB/s (%.1fx) | mlsec+sha256 %.3f GB/s (%.1fx)\n", s/t/1e9, s/m/1e9, t/m, s/h/1e9, t/h
	printf "cpu:  torch %.3f GB/s | mlsec %.3f GB/s (%.1fx) | mlsec+sha256 %.3f GB/s (%.1fx)\n", s/tc/1e9, s/mc/1e9, tc/mc, s/hc/1e9, tc/hc }'

echo "== pickle-heavy file: $(stat -c %s "$PKL") bytes"
M2=$(BENCH_NO_HASH=1 "$BENCH" "$PKL" 3)
echo "$M2"
PSIZE=$(stat -c %s "$PKL")
ms=$(field "$M2" mlsec_seconds)
mc=$(field "$M2" mlsec_cpu_seconds)
# The peer: $PICKLESCAN_SRC (its src/ directory), or a local git mirror of
# mmaitre314/picklescan ($PICKLESCAN_GIT) exported to a temp dir, never
# committed here.
PS_GIT=${PICKLESCAN_GIT:-/work/.mirror/mmaitre314+picklescan/repo}
if [ -z "${PICKLESCAN_SRC:-}" ] && [ -d "$PS_GIT" ]; then
	PS_TMP=$(mktemp -d)
	trap 'rm -rf "$PS_TMP"' EXIT
	if git --git-dir="$PS_GIT" archive HEAD src 2>/dev/null | tar -x -C "$PS_TMP" 2>/dev/null; then
		PICKLESCAN_SRC=$PS_TMP/src
	fi
fi
if [ -n "${PICKLESCAN_SRC:-}" ] && [ -d "$PICKLESCAN_SRC/picklescan" ]; then
	out=$(PYTHONPATH=$PICKLESCAN_SRC /usr/bin/time -f "ps_wall=%e ps_cpu_u=%U ps_cpu_s=%S" \
		$PY -m picklescan -p "$PKL" 2>&1 >/dev/null | tail -1)
	echo "picklescan: $out"
	awk -v w="$(field "$out" ps_wall)" -v u="$(field "$out" ps_cpu_u)" -v k="$(field "$out" ps_cpu_s)" \
	    -v m="$ms" -v c="$mc" -v s="$PSIZE" 'BEGIN {
		printf "wall: picklescan %.2f MB/s | mlsec %.1f MB/s (%.0fx)\n", s/w/1e6, s/m/1e6, w/m
		printf "cpu:  picklescan %.2f MB/s | mlsec %.1f MB/s (%.0fx)\n", s/(u+k)/1e6, s/c/1e6, (u+k)/c }'
else
	awk -v m="$ms" -v c="$mc" -v s="$PSIZE" 'BEGIN {
		printf "mlsec pickle scanning: %.1f MB/s wall, %.1f MB/s cpu (set PICKLESCAN_SRC for the peer)\n", s/m/1e6, s/c/1e6 }'
fi
