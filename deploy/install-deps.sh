#!/usr/bin/env bash
# Install the Debian 12 packages mlsec needs to build, test and run.
# Idempotent: quiet and fast when everything is already installed.
# Usage: deploy/install-deps.sh [--with-fixtures]   (root, or sudo available)
set -euo pipefail

BUILD_PKGS="build-essential cmake pkg-config git ca-certificates
  libgrpc-dev grpc-proto protobuf-c-compiler libprotobuf-c-dev
  librdkafka-dev libhiredis-dev libssl-dev libjansson-dev libcmocka-dev
  libopenblas-dev zlib1g-dev libmicrohttpd-dev libyaml-dev
  clang libclang-rt-14-dev
  redis-server redis-tools openssl"
# Independent clients and fixture tooling used only by tests.
TEST_PKGS="python3 python3-grpcio python3-grpc-tools python3-numpy python3-prometheus-client gnuplot-nox valgrind"
# Only needed to regenerate committed fixtures (tests never need torch).
FIXTURE_PKGS="python3-torch python3-onnx python3-sklearn"

pkgs="$BUILD_PKGS $TEST_PKGS"
[ "${1:-}" = "--with-fixtures" ] && pkgs="$pkgs $FIXTURE_PKGS"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
