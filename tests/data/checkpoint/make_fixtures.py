#!/usr/bin/python3
"""Generates the checkpoint-triage fixtures (run with Debian's /usr/bin/python3,
which has python3-torch). Deterministic: fixed seeds, fixed archive names.

    /usr/bin/python3 tests/data/checkpoint/make_fixtures.py [OUTDIR]

Malicious pickles are written as raw opcode bytes: nothing here ever
unpickles them. The expected safetensors conversion values are recorded
from torch.load at generation time (convert_expected.json).
"""
import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)


def path(name):
    return os.path.join(OUT, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def tsave(obj, name, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    data = buf.getvalue()
    if not legacy:
        # torch names the archive after the file; make it stable
        data = rename_archive(data, "archive")
    write(name, data)
    return data


def zi(name):
    # fixed timestamps keep the committed fixtures reproducible
    return zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))


def rename_archive(data, prefix):
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zo:
        for info in zin.infolist():
            rest = info.filename.split("/", 1)[1]
            zo.writestr(zi(prefix + "/" + rest), zin.read(info.filename))
    return out.getvalue()


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


# ---- clean checkpoints -------------------------------------------------
model = small_model()
sd = collections.OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
clean = tsave(sd, "clean_state_dict.pt")
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
model(torch.randn(2, 4)).sum().backward()
opt.step()
tsave({"epoch": 3, "state_dict": model.state_dict(), "optimizer": opt.state_dict()},
      "train_checkpoint.pt")
tsave(sd, "legacy_state_dict.pt", legacy=True)
torch.manual_seed(1)
dt = {"f32": torch.randn(8), "f64": torch.randn(8, dtype=torch.float64),
      "f16": torch.randn(8).half(), "bf16": torch.randn(8).bfloat16(),
      "i64": torch.arange(8), "mask": torch.ones(8, dtype=torch.bool)}
tsave(dt, "dtypes.pt")
# statistics as torch computes them (in float64), for the engine to match
with open(path("dtypes_expected.json"), "w") as f:
    json.dump({k: {"min": v.double().min().item(), "max": v.double().max().item(),
                   "mean": v.double().mean().item(), "std": v.double().std(unbiased=False).item()}
               for k, v in dt.items() if v.is_floating_point()}, f, indent=1, sort_keys=True)

# ---- anomalies -------------------------------------------------------------
nan = torch.zeros(16)
nan[3] = float("nan")
mask = torch.ones(16)
mask[0] = float("nan")
mask[5] = 1e6  # NaN must not hide this (max() of a tensor with NaN is NaN)
inf = torch.zeros(16)
inf[2] = float("inf")
inf[4] = float("-inf")
tsave({"w_nan": nan, "w_mask": mask, "w_inf": inf}, "nan_inf.pt")
torch.manual_seed(2)
w = torch.randn(4096) * 0.02
w[100] = 5.0
tsave({"layer.weight": w}, "outlier.pt")

# NumPy arrays inside a checkpoint (protocol 2: data via _codecs.encode) and
# inside a raw pickle (protocol 4: data as bytes)
tsave({"w": torch.zeros(3), "np_nan": np.array([1, np.nan, 3], dtype=np.float32),
       "np64": np.arange(4.0)}, "numpy_in_ckpt.pt")
write("numpy_raw.pkl", pickle.dumps({"big": np.array([1e6, 2], dtype=np.float32),
                                     "f": np.asfortranarray(np.ones((2, 3)))}, protocol=4))

# ---- conversion fixture with a non-contiguous view and shared storage ---------
torch.manual_seed(3)
base = torch.randn(3, 5)
conv = {"w": torch.randn(2, 3), "wt": base.t(), "half": torch.randn(4).half(),
        "bf": torch.randn(4).bfloat16(), "idx": torch.arange(5), "slice": base[1]}
tsave(conv, "convert_me.pt")
loaded = torch.load(path("convert_me.pt"))
expected = {}
for k, v in loaded.items():
    c = v.contiguous()
    raw = c.view(torch.int16).numpy().tobytes() if c.dtype == torch.bfloat16 else c.numpy().tobytes()
    expected[k] = {"shape": list(c.shape), "dtype": str(c.dtype).replace("torch.", ""),
                   "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
with open(path("convert_expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)

# ---- drift against a reference fingerprint -----------------------------------
drift = collections.OrderedDict(sd)
drift["0.weight"] = sd["0.weight"] * 10 + 3
del drift["2.bias"]
drift["extra.weight"] = torch.zeros(3)
drift["0.bias"] = torch.zeros(2, 2)
tsave(drift, "drifted_state_dict.pt")

# ---- malicious pickles ---------------------------------------------------------


def g(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def su(s):  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


pk = {}
pk["exec_os_system.pkl"] = b"\x80\x02" + g("os", "system") + b"X\x04\x00\x00\x00echo\x85R."
body = su("builtins") + b"\x94" + su("eval") + b"\x94\x93\x94" + su("1+1") + b"\x85R."
pk["stack_global_eval.pkl"] = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
# a frame longer than the data: CPython fails to load it, we report MALFORMED
pk["bad_frame.pkl"] = b"\x80\x04\x95" + struct.pack("<Q", len(body) + 100) + body
# MEMOIZE writes at len(memo) == 1: it overwrites index 1 ("torch._utils",
# set by BINPUT) with "os"; a scanner counting MEMOIZEs from 0 sees torch._utils
pk["memo_overwrite.pkl"] = (b"\x80\x04" + su("torch._utils") + b"q\x01"
                            + b"0" + su("os") + b"\x94" + b"0" + b"h\x01" + su("system") + b"\x93"
                            + su("id") + b"\x85R.")
pk["memo_strings.pkl"] = (b"\x80\x04" + su("subprocess") + b"q\x07" + b"0" + su("getoutput")
                          + b"q\x08" + b"0" + b"h\x07h\x08\x93" + su("id") + b"\x85R.")
pk["dynamic_global.pkl"] = (b"\x80\x04" + g("builtins", "str") + su("o") + b"\x85R"
                            + su("system") + b"\x93" + su("id") + b"\x85R.")
pk["getattr_chain.pkl"] = (b"\x80\x02" + g("builtins", "getattr") + g("collections", "OrderedDict")
                           + b"X\x07\x00\x00\x00__doc__\x86R.")
inner = b"\x80\x02" + g("posix", "system") + b"X\x02\x00\x00\x00id\x85R."
pk["nested_loads.pkl"] = (b"\x80\x02" + g("pickle", "loads") + b"C" + bytes([len(inner)]) + inner
                          + b"\x85R.")
pk["nested_bytes.pkl"] = b"\x80\x03}q\x00X\x04\x00\x00\x00blobq\x01C" + bytes([len(inner)]) + inner + b"s."
p0 = b"(S'id'\nios\nsystem\n."
pk["nested_proto0.pkl"] = b"\x80\x03}q\x00X\x01\x00\x00\x00bC" + bytes([len(p0)]) + p0 + b"s."
pk["after_error.pkl"] = b"\x80\x02}q\x00\xff" + g("os", "system") + b"X\x02\x00\x00\x00id\x85R."
pk["after_stop.pkl"] = b"\x80\x02}q\x00." + inner
pk["inst_opcode.pkl"] = b"(X\x02\x00\x00\x00idios\nsystem\n."
pk["py2_builtin.pkl"] = b"c__builtin__\neval\n(S'1+1'\ntR."
pk["unknown_global.pkl"] = b"\x80\x02" + g("mymodule", "MyClass") + b")R."
pk["extension.pkl"] = b"\x80\x02\x82\x01)R."
pk["build_on_global.pkl"] = b"\x80\x02" + g("mymodule", "Config") + b"}X\x01\x00\x00\x00aK\x01sb."
pk["truncated.pkl"] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01"
pk["benign.pkl"] = pickle.dumps({"lr": 0.1, "layers": [1, 2, 3], "name": "x"}, protocol=2)
pk["renamed_payload.bin"] = pk["exec_os_system.pkl"]
pk["stacked.pkl"] = pk["benign.pkl"] + pk["benign.pkl"] + inner + b"junk"  # payload 3rd
for mod, name in [("subprocess", "Popen"), ("runpy", "run_path"), ("socket", "create_connection"),
                  ("webbrowser", "open"), ("importlib", "import_module"), ("marshal", "loads"),
                  ("builtins", "exec"), ("builtins", "__import__"), ("builtins", "open"),
                  ("nt", "system"), ("pty", "spawn"), ("shutil", "rmtree"),
                  ("torch.serialization", "load"), ("operator", "attrgetter"),
                  ("functools", "partial"), ("ctypes", "CDLL")]:
    pk["prim_%s_%s.pkl" % (mod.replace(".", "_"), name)] = (
        b"\x80\x02" + g(mod, name) + b"X\x01\x00\x00\x00x\x85R.")
for name, data in pk.items():
    write(name, data)

# ---- zip tricks on a real checkpoint -------------------------------------------


def rezip(src, name, extra=(), drop=(), replace=None, dup=None):
    zin = zipfile.ZipFile(io.BytesIO(src))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zo:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if replace and info.filename in replace:
                data = replace[info.filename]
            zo.writestr(zi(info.filename), data)
            if dup and info.filename == dup[0]:
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    zo.writestr(zi(dup[0]), dup[1])
        for n, d in extra:
            zo.writestr(zi(n), d)
    write(name, out.getvalue())
    return out.getvalue()


payload = pk["exec_os_system.pkl"]
rezip(clean, "zip_hidden_pickle.pt", extra=[("archive/extra.bin", payload)])
rezip(clean, "zip_hidden_file.pt", extra=[("archive/notes.txt", b"hello")])
rezip(clean, "zip_hidden_proto0.pt", extra=[("archive/extra", b"(S'id'\nios\nsystem\n.junk")])
rezip(clean, "zip_traversal.pt", extra=[("../../evil.txt", b"x"), ("/etc/evil", b"x")])
rezip(clean, "zip_duplicate.pt", dup=("archive/data.pkl", payload))
rezip(clean, "zip_missing_storage.pt", drop=("archive/data/0",))
rezip(clean, "zip_malicious_datapkl.pt", replace={"archive/data.pkl": payload})
# CRC mismatch that a lenient loader still reads: flip one byte of a storage
bad = bytearray(clean)
zin = zipfile.ZipFile(io.BytesIO(clean))
info = zin.getinfo("archive/data/1")
off = info.header_offset + 30 + len(info.filename) + len(info.extra)
# the local header's extra field may differ from the central one: read it
nlen, xlen = struct.unpack("<HH", bad[info.header_offset + 26:info.header_offset + 30])
off = info.header_offset + 30 + nlen + xlen
bad[off] ^= 0x01
write("zip_bad_crc.pt", bytes(bad))
write("zip_truncated.pt", clean[: len(clean) // 2])
# a benign pickle followed by a zip holding a payload: pickle to torch.load,
# zip to zip-based scanners
write("polyglot.pt", pk["benign.pkl"] + open(path("zip_hidden_pickle.pt"), "rb").read())
write("legacy_truncated.pt", open(path("legacy_state_dict.pt"), "rb").read()[:300])

# ---- safetensors -----------------------------------------------------------------


def st(tensors, name, header_override=None, tail=b""):
    hdr = {}
    data = b""
    for k, (dtype, shape, raw) in tensors.items():
        hdr[k] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr if header_override is None else header_override).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    write(name, struct.pack("<Q", len(h)) + h + data + tail)


a = np.arange(6, dtype=np.float32).tobytes()
b_ = np.array([1.5, -2.5], dtype=np.float32).tobytes()
st({"a": ("F32", [2, 3], a), "b": ("F32", [2], b_)}, "clean.safetensors")
st({"a": ("F32", [2, 3], a)}, "st_bad_offsets.safetensors",
   header_override={"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 4000]}})
st({"a": ("F32", [2, 3], a)}, "st_overlap.safetensors",
   header_override={"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}})
write("st_huge_header.safetensors", struct.pack("<Q", 1 << 40) + b'{"a":1}')
nan_st = np.array([0, np.nan, 1, 2], dtype=np.float32).tobytes()
st({"w": ("F32", [4], nan_st)}, "st_nan.safetensors")

# ---- numpy ---------------------------------------------------------------------
np.save(path("clean.npy"), np.linspace(-1, 1, 32, dtype=np.float32))
np.save(path("object.npy"), np.array([{"a": 1}, [1, 2]], dtype=object), allow_pickle=True)
np.savez(path("clean.npz"), x=np.ones(4, dtype=np.float64), y=np.arange(3, dtype=np.int32))
# an npz whose member carries zip64 size fields (as large archives do)
buf = io.BytesIO()
np.save(buf, np.linspace(0, 1, 16, dtype=np.float32))
with zipfile.ZipFile(path("zip64_member.npz"), "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
    info = zi("w.npy")
    info.compress_type = zipfile.ZIP_DEFLATED  # and exercise inflate
    with zf.open(info, "w", force_zip64=True) as f:
        f.write(buf.getvalue())
print("fixtures written to", OUT)
