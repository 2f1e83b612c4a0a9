#!/usr/bin/env bash
# Stand-in for `docker build` where no container engine runs: assemble the
# runtime stage of deploy/docker/Dockerfile by hand in a debootstrap'd
# Debian 12 root (minbase), with only RUNTIME_PACKAGES from the Dockerfile,
# the built programs and the launcher, then run them there as uid 10001.
# Proves the runtime package list is enough and the launcher works, on a
# root that has none of the build machine's -dev packages.
#
# Usage: deploy/docker/rootfs-check.sh [BUILD_DIR]   (root; needs debootstrap
# and the Debian mirror; ~70 MB download the first time, cached in
# .tools/rootfs). Optional: not run by CI by default (set MLSEC_ROOTFS_CHECK=1
# for tests/ci/docker.sh to call it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-$ROOT/build}}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
RFS="$ROOT/.tools/rootfs"
MIRROR=${MLSEC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
UID_GID=10001

command -v debootstrap >/dev/null || {
	echo "rootfs-check: debootstrap missing (apt-get install debootstrap)" >&2
	exit 1
}
pkgs=$(sed -n 's/^ARG RUNTIME_PACKAGES="\([^"]*\)"/\1/p' "$ROOT/deploy/docker/Dockerfile")
[ -n "$pkgs" ] || { echo "rootfs-check: no RUNTIME_PACKAGES in the Dockerfile" >&2; exit 1; }
ls "$BUILD_DIR"/bin/mlsec* >/dev/null 2>&1 || { echo "rootfs-check: build first ($BUILD_DIR/bin)" >&2; exit 1; }

if [ ! -x "$RFS/usr/bin/apt-get" ]; then
	rm -rf "$RFS"
	timeout 900 debootstrap --variant=minbase bookworm "$RFS" "$MIRROR" >/dev/null
fi
cp /etc/resolv.conf "$RFS/etc/resolv.conf"
log="$RFS/tmp/rootfs-check.log"
# shellcheck disable=SC2086
if ! timeout 900 chroot "$RFS" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
	sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs" >"$log" 2>&1; then
	echo "FAIL rootfs: apt-get install of RUNTIME_PACKAGES"
	tail -20 "$log"
	exit 1
fi
chroot "$RFS" sh -c "getent group $UID_GID >/dev/null || groupadd --gid $UID_GID mlsec;
	getent passwd $UID_GID >/dev/null || useradd --uid $UID_GID --gid $UID_GID \
	  --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mlsec"

rm -rf "$RFS/usr/local/bin" && mkdir -p "$RFS/usr/local/bin"
programs=$(sed -n 's/^ARG PROGRAMS="\([^"]*\)"/\1/p' "$ROOT/deploy/docker/Dockerfile")
for p in $programs; do
	if [ -x "$BUILD_DIR/bin/$p" ]; then cp "$BUILD_DIR/bin/$p" "$RFS/usr/local/bin/"; fi
done
cc -std=c11 -O2 -Wall -Wextra -Werror -o "$RFS/usr/local/bin/mlsec-launch" "$ROOT/deploy/docker/mlsec-launch.c"

fail=0
for f in "$RFS"/usr/local/bin/mlsec*; do
	name=$(basename "$f")
	if chroot "$RFS" ldd "/usr/local/bin/$name" | grep -q 'not found'; then
		echo "FAIL rootfs: $name misses libraries:"
		chroot "$RFS" ldd "/usr/local/bin/$name" | grep 'not found'
		fail=1
	else
		echo "PASS rootfs: $name links in the runtime root"
	fi
done
run() { chroot --userspec=$UID_GID:$UID_GID "$RFS" /usr/local/bin/mlsec-launch "$@"; }
if run --help | grep -q 'mlsec'; then echo "PASS rootfs: mlsec-launch --help as uid $UID_GID"; else
	echo "FAIL rootfs: mlsec-launch --help"; fail=1; fi
for p in "$RFS"/usr/local/bin/mlsec*; do
	name=$(basename "$p")
	[ "$name" = mlsec-launch ] && continue
	if run "$name" --help >/dev/null 2>&1; then echo "PASS rootfs: $name --help via the launcher"; else
		echo "FAIL rootfs: $name --help via the launcher"; fail=1; fi
done
exit $fail
