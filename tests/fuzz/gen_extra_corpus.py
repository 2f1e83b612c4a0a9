#!/usr/bin/python3
"""Seed corpora for the harnesses registered in tests/fuzz-extra/: hostile
and valid inputs for triton_launch, npy, adv_data, adv_baseline, jobproto
and report_merge. Run with Debian's /usr/bin/python3 (numpy) from the repo
root; writes tests/fuzz/corpus/<name>/. Protobuf bytes are hand-encoded so
the script needs no protoc."""
import io, json, os, struct, zipfile
import numpy as np

C = "tests/fuzz/corpus"


def put(name, fname, data):
    d = os.path.join(C, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


# ---- triton_launch: first byte 0 detect, 1 shell, 2 YAML ----------------
SH, YM, DET = b"\x01", b"\x02", b"\x00"
launch = {
    "args-open.txt": SH + b"tritonserver --model-repository=/models --http-address 0.0.0.0 "
    b"--model-control-mode=explicit --load-model=* --exit-on-error=false\n",
    "args-locked.txt": SH + b"tritonserver --model-repository=s3://b/m --allow-http=false "
    b"--grpc-use-ssl=true --grpc-restricted-protocol=model-repository,shared-memory:key=v "
    b"--http-restricted-api=model-repository:k=v --rate-limit=execution_count\n",
    "args-quotes.txt": SH + b"exec   'tritonserver' \"--model-repository=/m o d\" --log-verbose=1 \\\n"
    b"  --grpc-address=\"127.0.0.1\" $'--allow-metrics=\\x66alse' ;  rm -rf / && tritonserver --allow-grpc\n",
    "args-unterminated.txt": SH + b"tritonserver --model-repository='/models --allow-http=\"yes\\",
    "args-script.txt": SH + b"/bin/sh -c \"cd /w && tritonserver --model-control-mode=poll "
    b"--http-restricted-api='health:x=1' | tee log\"\n",
    "args-nested-sh.txt": SH + b"bash -c \"sh -c 'tritonserver --allow-http=0 \\\"--x=tritonserver a b\\\"'\"\n",
    "args-many.txt": SH + b"tritonserver " + b"--x " * 3000 + b"\n",
    "args-empty-words.txt": SH + b"tritonserver '' \"\" -- --= --model-control-mode= --rate-limit\n",
    "args-nul.txt": SH + b"tritonserver --allow-http=\x00true --http-address=\xff\xfe\n",
    "detect-args.txt": DET + b"# ops\ntritonserver --model-repository /models --metrics-address 0.0.0.0\n",
    "k8s-deploy.yaml": YM + b"""apiVersion: apps/v1
kind: Deployment
metadata: {name: triton}
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: busybox
        command: [sh, -c, "echo hi"]
      containers:
      - name: triton
        image: nvcr.io/nvidia/tritonserver:24.05-py3
        command: ["tritonserver"]
        args: ["--model-repository=/models", "--http-address=0.0.0.0", "--model-control-mode=explicit"]
---
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
      - image: nvcr.io/nvidia/tritonserver:23.10
        args: ["--model-repository", "/m", "--allow-grpc", "false"]
""",
    "helm-values.yaml": YM + b"""image: {repository: nvcr.io/nvidia/tritonserver, tag: "24.05"}
server:
  args: &a ["--model-control-mode={{ .Values.mode }}", "--exit-on-error={{ .Values.exit | default true }}"]
containers:
- name: t
  image: tritonserver
  args: *a
- name: u
  command: ["/bin/bash", "-lc", "tritonserver --model-repository=$(MODEL_REPO) --rate-limit=off"]
""",
    "yaml-alias-bomb.yaml": YM + b"""a: &a ["--x","--x","--x","--x","--x","--x","--x","--x","--x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
containers: [{image: tritonserver, args: *f}]
""",
    "yaml-self-alias.yaml": YM + b"spec: &s\n  containers:\n  - image: tritonserver\n    args: *s\n  x: *s\n",
    "yaml-deep.yaml": YM + b"spec: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "yaml-deep-map.yaml": YM + b"".join(b"  " * i + b"k:\n" for i in range(200)),
    "yaml-bad-tab.yaml": YM + b"spec:\n\tcontainers:\n  - args: [\"--allow-http\"\n",
    "yaml-tags.yaml": YM + b"%YAML 1.1\n%TAG !k! tag:k8s.io,2024:\n--- !k!Pod\nspec:\n  containers:\n  - !!map {image: !!str tritonserver, args: !!seq [--allow-http, !!binary aGk=]}\n...\n",
    "yaml-keys-nonscalar.yaml": YM + b"? [containers]\n: - image: tritonserver\n? {a: b}\n: x\ncontainers: {image: 1, command: {a: b}, args: 7}\n",
    "detect-yaml.yaml": DET + b"kind: Pod\nspec:\n  containers:\n  - image: nvcr.io/nvidia/tritonserver\n    command: [tritonserver, --allow-http=true]\n",
}
for k, v in launch.items():
    put("triton_launch", k, v)


# ---- npy ----------------------------------------------------------------
def npy_bytes(arr):
    b = io.BytesIO()
    np.save(b, arr, allow_pickle=True)
    return b.getvalue()


def npy_raw(header, ver=(1, 0), data=b""):
    h = header.encode() if isinstance(header, str) else header
    if ver[0] == 1:
        return b"\x93NUMPY" + bytes(ver) + struct.pack("<H", len(h)) + h + data
    return b"\x93NUMPY" + bytes(ver) + struct.pack("<I", len(h)) + h + data


put("npy", "f32.npy", npy_bytes(np.arange(12, dtype="<f4").reshape(3, 4)))
put("npy", "i64-fortran.npy", npy_bytes(np.asfortranarray(np.arange(6, dtype="<i8").reshape(2, 3))))
put("npy", "scalar.npy", npy_bytes(np.float64(1.5)))
put("npy", "big-endian.npy", npy_bytes(np.arange(3, dtype=">i4")))
put("npy", "object.npy", npy_bytes(np.array([{"a": 1}, None], dtype=object)))
put("npy", "structured.npy", npy_bytes(np.zeros(2, dtype=[("a", "<f4"), ("b", "O")])))
put("npy", "v2.npy", npy_raw("{'descr': '<u1', 'fortran_order': False, 'shape': (2,), }\n", (2, 0), b"\0\0"))
put("npy", "v3-utf8.npy", npy_raw("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), 'é': 1}\n", (3, 0)))
put("npy", "shape-overflow.npy", npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n"))
put("npy", "shape-negative.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }\n"))
put("npy", "shape-manydims.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 64 + "), }\n"))
put("npy", "shape-huge-int.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999,), }\n"))
put("npy", "dup-keys.npy", npy_raw("{'descr': '<f4', 'descr': '|O', 'fortran_order': 0, 'shape': (1,)}\n"))
put("npy", "escapes.npy", npy_raw("{'descr': '<f4\\' ', \"fortran_order\": False, 'shape': (1,,), }\n"))
put("npy", "long-descr.npy", npy_raw("{'descr': '" + "<f4" * 40 + "', 'fortran_order': False, 'shape': (1,), }\n"))
put("npy", "hdr-len-lies.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'")
put("npy", "hdr-len-v2-huge.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{'descr'")
put("npy", "unterminated.npy", npy_raw("{'descr': '<f4, 'shape': ((((((("))

# ---- adv_data -----------------------------------------------------------
def npz(members, compress=False):
    b = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(b, "w", method) as z:
        for n, d in members.items():
            # a fixed date: the script regenerates identical files
            z.writestr(zipfile.ZipInfo(n, date_time=(2024, 1, 1, 0, 0, 0)), d, compress_type=method)
    return b.getvalue()


x = np.linspace(0, 1, 2 * 1 * 4 * 4, dtype="<f4").reshape(2, 1, 4, 4)
y = np.array([3, 7], dtype="<i8")
put("adv_data", "ok.npz", npz({"x.npy": npy_bytes(x), "y.npy": npy_bytes(y)}))
put("adv_data", "ok-deflate.npz", npz({"x.npy": npy_bytes(x.astype("<f8")), "y.npy": npy_bytes(y.astype("<u1"))}, True))
put("adv_data", "nan.npz", npz({"x.npy": npy_bytes(np.array([[np.nan, 1]], "<f4")), "y.npy": npy_bytes(np.array([0], "<i4"))}))
put("adv_data", "object-y.npz", npz({"x.npy": npy_bytes(x), "y.npy": npy_bytes(np.array([1, None], dtype=object))}))
put("adv_data", "mismatch.npz", npz({"x.npy": npy_bytes(x), "y.npy": npy_bytes(np.arange(5, dtype="<i8"))}))
put("adv_data", "neg-label.npz", npz({"x.npy": npy_bytes(x), "y.npy": npy_bytes(np.array([-1, 2.5], "<f8"))}))
put("adv_data", "zero-dim.npz", npz({"x.npy": npy_bytes(np.zeros((2, 0), "<f4")), "y.npy": npy_bytes(np.array([0, 1], "<i8"))}))
put("adv_data", "truncated-x.npz", npz({"x.npy": npy_bytes(x)[:-7], "y.npy": npy_bytes(y)}))
put("adv_data", "lying-shape.npz", npz({"x.npy": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4611686018427387904), }\n", data=b"\0" * 16), "y.npy": npy_bytes(y)}))
put("adv_data", "no-y.npz", npz({"x.npy": npy_bytes(x)}))


def safetensors(tensors, meta=None, extra=b""):
    hdr, data = {}, b""
    for n, (dt, shape, raw) in tensors.items():
        hdr[n] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + data + extra


put("adv_data", "ok.safetensors", safetensors({"x": ("F32", [2, 4], x.reshape(2, 16)[:, :4].tobytes()), "y": ("I64", [2], y.tobytes())}, {"k": "v"}))
put("adv_data", "bf16.safetensors", safetensors({"x": ("BF16", [1, 2], b"\0" * 4), "y": ("U8", [1], b"\1")}))
put("adv_data", "huge-shape.safetensors", b"".join([struct.pack("<Q", 120), json.dumps({"x": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}, "y": {"dtype": "I64", "shape": [0], "data_offsets": [0, 0]}}).encode().ljust(120)]))
put("adv_data", "overlap.safetensors", safetensors({"x": ("F32", [1, 1], b"\0\0\x80\x7f"), "y": ("F32", [1], b"\0\0\x80\x3f")}))

# ---- adv_baseline -------------------------------------------------------
put("adv_baseline", "ok.json", json.dumps({"resnet": {"fgsm": {"epsilon=0.03": 0.71, "epsilon=0.1": 0.2}, "cw_l2": {"epsilon=inf": 0.05}}}))
put("adv_baseline", "weird-keys.json", '{"m": {"pgd": {"epsilon=": 1, "epsilon=nan": 0.5, "epsilon=1e999": 0.3, "epsilon=0x10": 2, "epsilon=-0": -1, "x": "y"}}}')
put("adv_baseline", "not-object.json", '[1, 2, {"m": {}}]')
put("adv_baseline", "dup.json", '{"m": {"a": {"epsilon=0.1": 0.1, "epsilon=0.1": 0.2}}}')
put("adv_baseline", "wrong-levels.json", '{"m": 1, "n": {"fgsm": [0.1]}, "o": {"fgsm": {"epsilon=0.1": null}}}')
put("adv_baseline", "deep.json", "{\"m\":" * 3000 + "1" + "}" * 3000)
put("adv_baseline", "unicode.json", '{"m\\u0000x": {"f\\ud800": {"epsilon=0.03": 0.5}}, "": {"": {"epsilon=1": 1}}}')
put("adv_baseline", "bad-utf8.json", b'{"\xff\xfe": {}}')

# ---- protobuf wire helpers (jobproto) ------------------------------------
def varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fld(n, v):
    if isinstance(v, int):
        return varint(n << 3) + varint(v)
    if isinstance(v, str):
        v = v.encode()
    return varint(n << 3 | 2) + varint(len(v)) + v


def artifact(uri, sha="", size=0):
    return fld(1, uri) + (fld(2, sha) if sha else b"") + (fld(3, size) if size else b"")


def finding(rule, sev, art="model.onnx", evidence=None):
    b = fld(1, rule) + fld(2, sev) + fld(3, "t") + fld(8, art)
    for k, v in (evidence or {}).items():
        b += fld(6, fld(1, k) + fld(2, v))
    return b


report = {"tool": "mlsec", "stage": "triton", "exit_code": 2, "artifacts": [
    {"path": "model.onnx", "format": "onnx", "sha256": "0" * 64, "findings": [
        {"rule_id": "X-1", "severity": "high", "title": "t", "location": "a:1:2", "evidence": {"k": "v"}}]}],
    "errors": ["e"]}

SR = b"\x00"
for i, uri in enumerate(["model.onnx", "sub/a.pt", "passwd", "etc/passwd", "sub/up/etc/hostname", "../../etc/passwd",
                         "/etc/passwd", "sub/../model.onnx", "loop", "model.onnx/", "./model.onnx", "sub//a.pt",
                         "x" * 5000, "model.onnx\x00.txt"]):
    put("jobproto", "req-%02d.bin" % i, SR + fld(1, "job1") + fld(2, "inspect") + fld(3, artifact(uri)) + fld(6, 3))
put("jobproto", "req-sha.bin", SR + fld(1, "j") + fld(3, artifact("model.onnx", "a" * 64)) + fld(3, artifact("model.onnx", "zz")))
put("jobproto", "req-options.bin", SR + fld(1, "j") + fld(3, artifact("model.onnx")) + fld(4, '{"launch-args": "/etc/passwd", "a": [1,{"b":null}]}') + fld(6, 99) + fld(7, -1))
res = fld(1, "job1") + fld(2, "triton") + fld(3, 2) + fld(4, finding("TRITON-X", 4, evidence={"k": "v"})) + fld(6, json.dumps(report)) + fld(7, 12)
put("jobproto", "result.bin", b"\x01" + res)
put("jobproto", "result-badsev.bin", b"\x01" + fld(1, "j") + fld(2, "s") + fld(3, 77) + fld(4, finding("R", -5)) + fld(4, finding("R", 1 << 40)))
put("jobproto", "result-badreport.bin", b"\x01" + fld(1, "j") + fld(2, "s") + fld(6, '{"artifacts": [{"findings": [{"severity": "nope"}]}, 3], "errors": {}}'))
put("jobproto", "verdict.bin", b"\x02" + fld(1, "job1") + fld(2, 3) + fld(3, 2) + fld(4, res) + fld(4, b"") + fld(5, 3) + fld(6, "poison"))
put("jobproto", "verdict-weird.bin", b"\x02" + fld(4, fld(3, 9)) + fld(5, 1000) + fld(3, -7))
put("jobproto", "submit.bin", b"\x03" + fld(1, artifact("model.onnx", "b" * 64, 11)) + fld(2, "auto") + fld(2, "triton") + fld(3, 4) + fld(4, 1) + fld(5, "{}") + fld(6, 600000) + fld(7, "me"))
put("jobproto", "submit-hostile.bin", b"\x03" + fld(1, artifact("../x")) + fld(2, "\xff") + fld(3, -1) + fld(5, "[" * 2000) + fld(6, 0xFFFFFFFF))
put("jobproto", "wire-garbage.bin", b"\x01" + b"\x0a\xff\xff\xff\xff\x0f" + b"\x22\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")
put("jobproto", "wire-groups.bin", b"\x00" + b"\x0b\x0c\x1a\x00" + fld(5, 1 << 63))

# ---- report_merge -------------------------------------------------------
put("report_merge", "ok.json", json.dumps(report))
put("report_merge", "many.json", json.dumps({"artifacts": [{"path": "a%d" % i, "findings": [
    {"rule_id": "R%d" % k, "severity": s, "title": "x", "detail": "d", "remediation": "r", "location": "f:%d" % k,
     "evidence": {"e": str(k), "n": k}} for k, s in enumerate(["info", "low", "medium", "high", "critical"])]} for i in range(3)]}))
put("report_merge", "types.json", '{"artifacts": [{"path": 1, "format": [], "findings": {"a": 1}}, {"findings": [null, 1, {"severity": 3}, {"rule_id": {}}]}], "errors": [1, null, "x"]}')
put("report_merge", "not-object.json", '["artifacts"]')
put("report_merge", "deep-evidence.json", '{"artifacts": [{"path": "p", "findings": [{"rule_id": "R", "severity": "high", "evidence": ' + "{\"a\":" * 500 + "1" + "}" * 500 + "}]}]}")
put("report_merge", "unicode.json", '{"artifacts": [{"path": "\\u0000\\u202e\\ud83d\\ude00", "findings": [{"rule_id": "\\u001b[31m", "severity": "HIGH", "title": "\\"<x>&", "location": "a:-1:99999999999999999999"}]}]}')
put("report_merge", "huge-numbers.json", '{"exit_code": 1e999, "artifacts": [{"path": "p", "size": -1, "findings": [{"rule_id": "R", "severity": "low", "line": 9223372036854775807, "col": -9223372036854775808}]}]}')
put("report_merge", "loc-details.json", json.dumps({"stage": "inspect", "artifacts": [
    {"path": "m.onnx", "format": "onnx", "stage": "x" * 300, "sha256": "ab" * 32, "size": 12,
     "details": {"layers": [1, 2], "nested": {"a": None}},
     "findings": [{"rule_id": "R", "severity": "critical", "title": "t", "detail": "%s%n%x",
                   "location": {"file": "f", "line": -5, "column": 2 ** 62, "field": "a.b[3]", "offset": -2},
                   "evidence": {"k": [1, {"x": "y"}]}, "remediation": "r"}]},
    {"path": "m2", "sha256": "zz", "findings": []}], "errors": ["%s%s%s", ""]}))
