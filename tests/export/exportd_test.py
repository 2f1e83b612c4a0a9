#!/usr/bin/python3
"""exportd_test.py MLSEC_EXPORTD - mlsec-exportd over gRPC (gRPC only, no
Kafka/Redis): an independent Python client (python3-grpcio, stubs generated
at test time) sends Analyze requests for a clean export, a trigger
backdoor, a signed-less attestation with its chain, and a path outside the
artifact root."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "export")
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from wire_test import gen_stubs  # noqa: E402  (stub generation shared with the cluster test)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    exe = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="mlsec-exportd-")
    proc = None
    try:
        gen_stubs(os.path.join(tmp, "stubs"))
        import grpc
        from mlsec.v1 import analyzer_pb2_grpc, common_pb2
        art = os.path.join(tmp, "art")
        shutil.copytree(DATA, art)
        ready = os.path.join(tmp, "ready")
        proc = subprocess.Popen([exe, "--kafka-workers", "0", "--grpc-listen", "127.0.0.1:0",
                                 "--artifact-root", art, "--ready-file", ready,
                                 "--log-level", "warn"])
        for _ in range(200):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            if proc.poll() is not None:
                sys.exit("FAIL: mlsec-exportd exited with %d" % proc.returncode)
            time.sleep(0.05)
        endpoint = open(ready).read().strip()
        ch = grpc.insecure_channel(endpoint)
        an = analyzer_pb2_grpc.AnalyzerStub(ch)

        def analyze(paths, options=None):
            arts = [common_pb2.Artifact(uri=p, sha256=sha(p)) for p in paths]
            return an.Analyze(common_pb2.StageRequest(
                job_id="t", stage="export", artifacts=arts,
                options_json=json.dumps(options) if options else "",
                gate=common_pb2.SEVERITY_HIGH), timeout=30)

        r = analyze([os.path.join(art, "clean_cnn.onnx")])
        assert r.status == common_pb2.STAGE_STATUS_OK, r
        r = analyze([os.path.join(art, "lint", "pos_torch_trigger_where.onnx")])
        assert r.status == common_pb2.STAGE_STATUS_ALERT, r
        assert any(f.rule_id == "EXPORT-TRIGGER-BACKDOOR" for f in r.findings), r.findings
        r = analyze([os.path.join(art, "lint", "pos_custom_domain.onnx")],
                    {"allowed-domain": ["com.example"]})
        assert not any(f.rule_id == "EXPORT-CUSTOM-DOMAIN" for f in r.findings), r.findings

        # An attestation made by the CLI, verified by the service.
        mlsec = os.path.join(os.path.dirname(exe), "mlsec")
        chain = os.path.join(art, "chain")
        subprocess.run([mlsec, "export-guard", "--model", os.path.join(chain, "model.pt"),
                        "--output", os.path.join(chain, "model.onnx"), "--engine",
                        os.path.join(chain, "model.plan"), "--attestation",
                        os.path.join(chain, "prov.json"), "--quiet"], check=True)
        members = [os.path.join(chain, n) for n in ("prov.json", "model.pt", "model.onnx",
                                                     "model.plan")]
        r = analyze(members)
        assert r.status == common_pb2.STAGE_STATUS_OK, r
        with open(os.path.join(chain, "model.plan"), "r+b") as f:
            f.seek(100)
            f.write(b"\x00\x01")
        r = analyze(members)
        assert r.status == common_pb2.STAGE_STATUS_ALERT, r
        assert any(f.rule_id == "EXPORT-ATTEST-DIGEST" and "tensorrt" in f.location
                   for f in r.findings), r.findings

        r = an.Analyze(common_pb2.StageRequest(job_id="t", stage="export", artifacts=[
            common_pb2.Artifact(uri="/etc/passwd")]), timeout=30)
        assert r.status == common_pb2.STAGE_STATUS_ERROR, r
        ch.close()
        print("mlsec-exportd: ok")
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
