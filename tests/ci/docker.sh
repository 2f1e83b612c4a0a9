#!/usr/bin/env bash
# Offline checks of deploy/docker/Dockerfile (no container engine here):
#   - every shared library linked by $BUILD_DIR/bin/mlsec* comes from a
#     Debian package in the runtime stage's RUNTIME_PACKAGES or their
#     dependencies (so the slim image cannot miss a library);
#   - the image user matches the Helm chart's runAsUser/runAsGroup;
#   - exec-form ENTRYPOINT on the launcher, non-root USER, pinned base.
# Prints PASS/FAIL per check and "docker: N passed, M failed" last.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
DOCKERFILE="$ROOT/deploy/docker/Dockerfile"
VALUES="$ROOT/helm/mlsec/values.yaml"

timeout 300 python3 - "$DOCKERFILE" "$VALUES" "$BUILD_DIR/bin" <<'EOF'
import os, re, subprocess, sys

dockerfile, values, bindir = sys.argv[1:4]
text = open(dockerfile).read()
passed = failed = 0

def check(ok, what, why=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS docker: {what}")
    else:
        failed += 1
        print(f"FAIL docker: {what}" + (f": {why}" if why else ""))

m = re.search(r'ARG RUNTIME_PACKAGES="([^"]+)"', text)
check(m is not None, "Dockerfile declares RUNTIME_PACKAGES")
runtime = m.group(1).split() if m else []

# Installed packages' Depends/Pre-Depends, for the closure of runtime.
def deps_of(pkg):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", pkg],
                             capture_output=True, text=True, timeout=30).stdout
    except Exception:
        return []
    names = []
    for alt in out.split(","):
        alt = alt.strip()
        if not alt:
            continue
        # "a (>= 1) | b": any alternative may be what the base has; take all.
        for a in alt.split("|"):
            n = a.strip().split(" ")[0].split(":")[0]
            if n:
                names.append(n)
    return names

closure, todo = set(), list(runtime)
while todo:
    p = todo.pop()
    if p in closure or len(closure) > 2000:
        continue
    closure.add(p)
    todo.extend(deps_of(p))
# Always present in debian:bookworm-slim (Essential / Priority required).
closure |= {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1", "liblzma5", "libselinux1"}

pm = re.search(r'ARG PROGRAMS="([^"]+)"', text)
check(pm is not None and "mlsec-orchestratord" in pm.group(1).split(), "Dockerfile lists the PROGRAMS it ships")
programs = pm.group(1).split() if pm else []
check(not any(p in programs for p in ("mlsec-devbroker", "mlsec-fake-tritond", "mlsec-loadgen")),
      "no dev broker, test fake or load generator in the image")
bins = [os.path.join(bindir, p) for p in programs if os.access(os.path.join(bindir, p), os.X_OK)]
if not bins:
    print(f"note: no programs in {bindir}; library coverage not checked (build first)")
# Every linked library once, then one dpkg -S for all of them (it is slow).
linked = {}
for b in bins:
    ldd = subprocess.run(["ldd", b], capture_output=True, text=True, timeout=30).stdout
    linked[b] = re.findall(r"=> (/\S+)", ldd)
candidates = {}
for lib in {l for libs in linked.values() for l in libs}:
    real = os.path.realpath(lib)
    candidates[lib] = [lib, real, lib.replace("/lib/", "/usr/lib/", 1), real.replace("/lib/", "/usr/lib/", 1),
                       lib.replace("/usr/lib/", "/lib/", 1), real.replace("/usr/lib/", "/lib/", 1)]
paths = sorted({p for c in candidates.values() for p in c})
owners = {}
if paths:
    r = subprocess.run(["dpkg", "-S"] + paths, capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        owners[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
for b in bins:
    missing = []
    for lib in linked[b]:
        owner = next((owners[p] for p in candidates[lib] if p in owners), "")
        if not owner or owner not in closure:
            missing.append(f"{os.path.basename(lib)} ({owner or 'no package'})")
    check(not missing, f"{os.path.basename(b)}: every library in the runtime image", ", ".join(missing))

# Image user == chart user.
user = re.search(r"^USER (\d+):(\d+)\s*$", text, re.M)
check(user is not None, "numeric non-root USER uid:gid")
vals = open(values).read()
ru = re.search(r"^\s+runAsUser: (\d+)", vals, re.M)
rg = re.search(r"^\s+runAsGroup: (\d+)", vals, re.M)
if user and ru and rg:
    check(user.group(1) == ru.group(1) and user.group(2) == rg.group(1) and user.group(1) != "0",
          "image uid/gid match the chart's runAsUser/runAsGroup")
check(re.search(r"useradd[^\n]*--uid (\d+)", text) and re.search(r"useradd[^\n]*--uid (\d+)", text).group(1) == (user.group(1) if user else ""),
      "useradd creates the USER's uid")
check(re.search(r'^ENTRYPOINT \["/usr/local/bin/mlsec-launch"\]', text, re.M) is not None,
      "exec-form ENTRYPOINT on mlsec-launch (no shell at run time)")
froms = re.findall(r"^FROM (\S+)", text, re.M)
check(len(froms) >= 2, "multi-stage build")
base = re.search(r"^ARG DEBIAN_IMAGE=(\S+)", text, re.M)
check(base is not None and base.group(1) == "debian:bookworm-slim", "base is debian:bookworm-slim")
check("deploy/install-deps.sh" in text, "build stage installs deps with deploy/install-deps.sh")
check(not re.search(r"-dev\b", m.group(1)) if m else False, "no -dev packages in the runtime stage")
dockerignore = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(dockerfile))), ".dockerignore")
di = open(dockerignore).read().split() if os.path.exists(dockerignore) else []
check(".git" in di and "build" in di and ".tools" in di, ".dockerignore keeps .git, build and .tools out of the context")

print(f"docker: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
status=$?
# Optional, slower (debootstrap + apt): the runtime stage assembled for real.
if [ "${MLSEC_ROOTFS_CHECK:-0}" = 1 ]; then
	bash "$ROOT/deploy/docker/rootfs-check.sh" "$BUILD_DIR" || status=1
fi
exit $status
