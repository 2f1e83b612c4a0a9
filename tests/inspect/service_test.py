#!/usr/bin/python3
"""service_test.py - mlsec-inspectd end to end over gRPC (gRPC only, no
Kafka/Redis): health, an Analyze of a tampered ONNX model with its data set
(findings and the activation table come back), options from JSON, a
weights-only checkpoint, and a path outside the artifact root.

Needs Debian python3-grpcio + python3-grpc-tools (stubs generated at test
time from proto/). Run from the repository root with MLSEC_BIN_DIR set.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("MLSEC_SOURCE_DIR", os.getcwd())
BIN = os.environ.get("MLSEC_BIN_DIR", os.path.join(ROOT, "build", "bin"))
DATA = os.path.join(ROOT, "tests", "data", "inspect")
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import wire_test  # noqa: E402  (its stub generator)


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def artifact(common_pb2, name):
    path = os.path.join(DATA, name)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return common_pb2.Artifact(uri=name, sha256=digest)


def main():
    tmp = tempfile.mkdtemp(prefix="inspect-svc-")
    wire_test.gen_stubs(os.path.join(tmp, "stubs"))
    import grpc
    from mlsec.v1 import analyzer_pb2_grpc, common_pb2
    from mlsechealth import health_pb2, health_pb2_grpc

    ready = os.path.join(tmp, "ready")
    proc = subprocess.Popen([os.path.join(BIN, "mlsec-inspectd"), "--kafka-workers", "0",
                             "--grpc-listen", "127.0.0.1:0", "--ready-file", ready,
                             "--artifact-root", DATA, "--log-level", "warn"])
    try:
        for _ in range(200):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            check(proc.poll() is None, "mlsec-inspectd exited early")
            time.sleep(0.05)
        addr = open(ready).read().strip()
        ch = grpc.insecure_channel(addr)
        r = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="mlsec.v1.Analyzer"), timeout=20)
        check(r.status == health_pb2.HealthCheckResponse.SERVING, "health")
        an = analyzer_pb2_grpc.AnalyzerStub(ch)

        res = an.Analyze(common_pb2.StageRequest(
            job_id="inspect1", stage="inspect",
            artifacts=[artifact(common_pb2, "nan_bias.onnx"), artifact(common_pb2, "data.npz")],
            options_json=json.dumps({"checks": "weights,activations"}),
            gate=common_pb2.SEVERITY_HIGH), timeout=60)
        check(res.status == common_pb2.STAGE_STATUS_ALERT, "ALERT expected: %s" % res.error)
        rules = {(f.rule_id, f.location) for f in res.findings}
        check(any(r == "INSPECT-ACT-NONFINITE" and "/0/Gemm" in loc for r, loc in rules),
              "NaN located at /0/Gemm: %s" % rules)
        check(any(r == "INSPECT-WEIGHT-NAN" for r, _ in rules), "weight NaN: %s" % rules)
        rep = json.loads(res.report_json)
        det = rep["artifacts"][0]["details"]
        check(det["activations"]["inputs"] == "data", "the data set was used")
        check(len(det["activations"]["nodes"]) == 5, "activation table")
        check("fgsm" not in det, "fgsm was not asked for")

        res = an.Analyze(common_pb2.StageRequest(
            job_id="inspect2", stage="inspect", artifacts=[artifact(common_pb2, "clean_mlp.pt")],
            gate=common_pb2.SEVERITY_HIGH), timeout=60)
        check(res.status == common_pb2.STAGE_STATUS_OK, "clean checkpoint OK: %s" % res.error)
        check([f.rule_id for f in res.findings] == ["INSPECT-NEEDS-GRAPH"], "needs-graph note")

        res = an.Analyze(common_pb2.StageRequest(
            job_id="inspect3", stage="inspect",
            artifacts=[common_pb2.Artifact(uri="/etc/passwd")]), timeout=20)
        check(res.status == common_pb2.STAGE_STATUS_ERROR, "outside the root is an error")

        res = an.Analyze(common_pb2.StageRequest(
            job_id="inspect4", stage="inspect", artifacts=[artifact(common_pb2, "clean_mlp.onnx")],
            options_json=json.dumps({"checks": "nonsense"})), timeout=20)
        check(res.status == common_pb2.STAGE_STATUS_ERROR and "nonsense" in res.error,
              "bad option is an error: " + res.error)
        ch.close()
        print("inspect service ok")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
