#!/usr/bin/python3
"""service_test.py - mlsec-checkpointd end to end over gRPC (no Kafka):
starts the stage service on a free loopback port with an artifact root,
calls mlsec.v1.Analyzer/Analyze with an independent Python client (stubs
generated at test time from proto/) and checks the verdicts: a malicious
pickle is ALERT with CKPT-PICKLE-EXEC, a clean state dict is OK, options
reach the engine, and a path outside the root is an ERROR.

  service_test.py BIN_DIR
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIX = os.path.join(ROOT, "tests", "data", "checkpoint")


def main():
    bindir = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="mlsec-ckpt-svc-")
    proc = None
    try:
        from grpc_tools import protoc
        out = os.path.join(tmp, "stubs")
        os.makedirs(out)
        files = ["mlsec/v1/common.proto", "mlsec/v1/analyzer.proto"]
        proto = os.path.join(ROOT, "proto")
        if protoc.main(["protoc", "-I" + proto, "--python_out=" + out, "--grpc_python_out=" + out]
                       + [os.path.join(proto, f) for f in files]) != 0:
            sys.exit("protoc failed")
        sys.path.insert(0, out)
        import grpc
        from mlsec.v1 import analyzer_pb2_grpc, common_pb2

        art = os.path.join(tmp, "root")
        os.makedirs(art)
        for f in ("exec_os_system.pkl", "clean_state_dict.pt"):
            shutil.copy(os.path.join(FIX, f), art)
        ready = os.path.join(tmp, "ready")
        log = open(os.path.join(tmp, "svc.log"), "w")
        proc = subprocess.Popen([os.path.join(bindir, "mlsec-checkpointd"), "--kafka-workers", "0",
                                 "--grpc-listen", "127.0.0.1:0", "--ready-file", ready,
                                 "--artifact-root", art], stdout=log, stderr=log)
        for _ in range(200):
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                break
            time.sleep(0.05)
        else:
            sys.exit("service did not become ready")
        addr = open(ready).read().strip()
        ch = grpc.insecure_channel(addr)
        an = analyzer_pb2_grpc.AnalyzerStub(ch)

        def analyze(name, options=""):
            p = os.path.join(art, name)
            digest = hashlib.sha256(open(p, "rb").read()).hexdigest() if os.path.exists(p) else ""
            return an.Analyze(common_pb2.StageRequest(
                job_id="t", stage="checkpoint", options_json=options,
                artifacts=[common_pb2.Artifact(uri=p, sha256=digest)]), timeout=30)

        r = analyze("exec_os_system.pkl")
        rules = [f.rule_id for f in r.findings]
        assert r.status == common_pb2.STAGE_STATUS_ALERT, r
        assert "CKPT-PICKLE-EXEC" in rules, rules
        r = analyze("clean_state_dict.pt")
        assert r.status == common_pb2.STAGE_STATUS_OK and not r.findings, r
        r = analyze("clean_state_dict.pt", '{"threshold": 0.1}')
        assert "CKPT-MAGNITUDE" in [f.rule_id for f in r.findings], r
        r = an.Analyze(common_pb2.StageRequest(job_id="t", stage="checkpoint",
                       artifacts=[common_pb2.Artifact(uri="/etc/passwd")]), timeout=30)
        assert r.status == common_pb2.STAGE_STATUS_ERROR, r
        print("checkpoint service: ok")
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
