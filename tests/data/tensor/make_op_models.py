#!/usr/bin/python3
"""Single-operator ONNX models for the finite-difference gradient checks,
plus hostile models for the loader tests. Needs only python3-onnx:
    /usr/bin/python3 tests/data/tensor/make_op_models.py tests/data/tensor

Writes ops/<case>.onnx and ops/cases.txt ("<case> <domain>", domain 'any',
'pos' for inputs that must be positive, or 'distinct' for well separated
values), and hostile/<case>.onnx.
Every graph input is FLOAT; weights are initializers (constants).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
CASES = []


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const(name, arr):
    arr = np.asarray(arr)
    return numpy_helper.from_array(arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32), name)


def model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "g", [vi(n, s) for n, s in inputs], [vi(n, None) for n in outputs],
                          list(inits))
    # Output shapes are left unknown on purpose: the engine infers them.
    for o in g.output:
        o.type.tensor_type.ClearField("shape")
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def case(name, m, domain="any"):
    CASES.append((name, m, domain))


def unary(op, domain="any", opset=13, **attrs):
    case(op.lower() + ("_" + "_".join(f"{k}" for k in attrs) if attrs else ""),
         model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [2, 3, 4])], ["y"], opset=opset),
         domain)


def build():
    for op in ["Relu", "Sigmoid", "Tanh", "Erf", "Neg", "Exp", "Abs", "Softplus", "Identity"]:
        unary(op)
    unary("LeakyRelu", alpha=0.2)
    unary("Elu", alpha=0.7)
    unary("HardSigmoid", alpha=0.3, beta=0.4)
    for op in ["Log", "Sqrt", "Reciprocal"]:
        unary(op, "pos")
    unary("Gelu", opset=20)
    unary("Gelu", opset=20, approximate="tanh")
    unary("Dropout", opset=12)
    case("clip13", model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", [2, 3, 4])], ["y"],
                         [const("lo", np.float32(-0.5)), const("hi", np.float32(0.7))]))
    case("clip10", model([helper.make_node("Clip", ["x"], ["y"], min=-0.4, max=0.3)], [("x", [3, 5])], ["y"],
                         opset=10))
    # broadcasting binaries, both operands runtime
    for op, sa, sb, dom in [("Add", [2, 3, 4], [4], "any"), ("Sub", [2, 3, 4], [3, 1], "any"),
                            ("Mul", [2, 1, 4], [3, 1], "any"), ("Div", [2, 3, 4], [2, 1, 1], "pos"),
                            ("Pow", [2, 3], [2, 3], "pos"), ("Add", [3, 4], [3, 4], "any")]:
        case(f"{op.lower()}_{len(sa)}x{len(sb)}",
             model([helper.make_node(op, ["a", "b"], ["y"])], [("a", sa), ("b", sb)], ["y"]), dom)
    case("pow_const", model([helper.make_node("Pow", ["x", "e"], ["y"])], [("x", [2, 3])], ["y"],
                            [const("e", np.float32(3.0))]))
    case("softmax13", model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", [2, 3, 4])], ["y"]))
    case("softmax11", model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", [2, 3, 4])], ["y"],
                            opset=11))
    case("logsoftmax", model([helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], [("x", [3, 5])], ["y"]))
    c = 3
    case("batchnorm", model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                              epsilon=1e-3)], [("x", [2, c, 4, 4])], ["y"],
                            [const("s", rng.uniform(0.5, 1.5, c)), const("b", rng.normal(size=c)),
                             const("m", rng.normal(size=c)), const("v", rng.uniform(0.5, 2, c))]))
    case("layernorm", model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)],
                            [("x", [2, 3, 6])], ["y"],
                            [const("s", rng.uniform(0.5, 1.5, 6)), const("b", rng.normal(size=6))], opset=17))
    case("layernorm_ax1", model([helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=1)],
                                [("x", [2, 3, 4])], ["y"], [const("s", rng.uniform(0.5, 1.5, (3, 4)))],
                                opset=17))
    # Gemm variants: A and B runtime, C constant or runtime
    for ta in (0, 1):
        for tb in (0, 1):
            sa = [4, 3] if ta else [3, 4]
            sb = [5, 4] if tb else [4, 5]
            case(f"gemm_t{ta}{tb}", model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=ta,
                                                            transB=tb, alpha=0.7, beta=1.3)],
                                          [("a", sa), ("b", sb)], ["y"], [const("c", rng.normal(size=5))]))
    case("gemm_cgrad", model([helper.make_node("Gemm", ["a", "b", "c"], ["y"])],
                             [("a", [3, 4]), ("b", [4, 5]), ("c", [3, 1])], ["y"]))
    for nm, sa, sb in [("shared", [2, 3, 4], [4, 5]), ("batched", [2, 3, 4], [2, 4, 5]),
                       ("bcast", [2, 1, 3, 4], [3, 4, 2]), ("vec_mat", [4], [4, 5]),
                       ("mat_vec", [3, 4], [4])]:
        case(f"matmul_{nm}", model([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", sa), ("b", sb)],
                                   ["y"]))
    # Conv variants
    def conv(name, x, w, b=True, **attrs):
        ins = ["x", "w"] + (["b"] if b else [])
        inits = [const("w", rng.normal(size=w) * 0.5)] + ([const("b", rng.normal(size=w[0]))] if b else [])
        case(name, model([helper.make_node("Conv", ins, ["y"], **attrs)], [("x", x)], ["y"], inits))
    conv("conv_basic", [2, 3, 6, 6], [4, 3, 3, 3])
    conv("conv_stride_pad", [3, 2, 7, 7], [3, 2, 3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    conv("conv_asym", [1, 2, 6, 5], [2, 2, 2, 3], strides=[1, 2], pads=[0, 1, 1, 0], b=False)
    conv("conv_dilated", [2, 2, 8, 8], [2, 2, 3, 3], dilations=[2, 2], pads=[2, 2, 2, 2])
    conv("conv_groups", [2, 4, 5, 5], [6, 2, 3, 3], group=2, pads=[1, 1, 1, 1])
    conv("conv_depthwise", [2, 3, 6, 6], [6, 1, 3, 3], group=3, strides=[2, 2], pads=[1, 1, 1, 1])
    conv("conv_pointwise", [2, 4, 3, 3], [5, 4, 1, 1])
    conv("conv_same_upper", [1, 2, 5, 5], [2, 2, 2, 2], auto_pad="SAME_UPPER", strides=[2, 2])
    conv("conv_same_lower", [1, 2, 5, 5], [2, 2, 2, 2], auto_pad="SAME_LOWER")
    conv("conv_valid", [1, 2, 5, 5], [2, 2, 3, 3], auto_pad="VALID")
    def convt(name, x, w, b=True, **attrs):
        ins = ["x", "w"] + (["b"] if b else [])
        cout = w[1] * attrs.get("group", 1)
        inits = [const("w", rng.normal(size=w) * 0.5)] + ([const("b", rng.normal(size=cout))] if b else [])
        case(name, model([helper.make_node("ConvTranspose", ins, ["y"], **attrs)], [("x", x)], ["y"], inits))
    convt("convt_basic", [2, 3, 4, 4], [3, 2, 3, 3])
    convt("convt_stride", [1, 2, 3, 3], [2, 3, 3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    convt("convt_groups", [2, 4, 3, 3], [4, 1, 2, 2], group=2, strides=[2, 1], b=False)
    convt("convt_dilated", [1, 2, 3, 4], [2, 2, 2, 3], dilations=[2, 1], pads=[0, 1, 1, 0])
    # pools
    def pool(name, op, x, **attrs):
        # max pooling: distinct, well separated inputs so no finite-difference
        # step crosses a tie between window elements
        case(name, model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", x)], ["y"]),
             "distinct" if "Max" in op else "any")
    pool("maxpool", "MaxPool", [2, 2, 6, 6], kernel_shape=[2, 2], strides=[2, 2])
    pool("maxpool_ceil", "MaxPool", [1, 2, 7, 7], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
         ceil_mode=1)
    pool("maxpool_dil", "MaxPool", [1, 2, 7, 7], kernel_shape=[2, 2], dilations=[2, 2])
    pool("avgpool", "AveragePool", [2, 2, 6, 6], kernel_shape=[3, 3], strides=[1, 1])
    pool("avgpool_pad_excl", "AveragePool", [1, 2, 5, 5], kernel_shape=[3, 3], strides=[2, 2],
         pads=[1, 1, 1, 1])
    pool("avgpool_pad_incl", "AveragePool", [1, 2, 5, 5], kernel_shape=[3, 3], strides=[2, 2],
         pads=[1, 1, 1, 1], count_include_pad=1)
    pool("gap", "GlobalAveragePool", [2, 3, 4, 4])
    pool("gmp", "GlobalMaxPool", [2, 3, 4, 4])
    # shape family on runtime data
    case("flatten", model([helper.make_node("Flatten", ["x"], ["y"], axis=2)], [("x", [2, 3, 4])], ["y"]))
    case("reshape", model([helper.make_node("Reshape", ["x", "s"], ["t"]),
                           helper.make_node("Tanh", ["t"], ["y"])], [("x", [2, 3, 4])], ["y"],
                          [const("s", np.array([0, -1, 2]))]))
    case("transpose", model([helper.make_node("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [("x", [2, 3, 4])],
                            ["y"]))
    case("concat", model([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)], [("a", [2, 3, 2]),
                                                                                  ("b", [2, 1, 2])], ["y"]))
    case("slice", model([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], [("x", [3, 6, 5])],
                        ["y"], [const("st", np.array([-1, 1])), const("en", np.array([-100, 6])),
                                const("ax", np.array([1, 2])), const("sp", np.array([-2, 2]))]))
    case("gather", model([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], [("x", [2, 4, 3])], ["y"],
                         [const("i", np.array([[2, 0], [3, 2]]))]))
    case("pad", model([helper.make_node("Pad", ["x", "p", "v"], ["y"])], [("x", [2, 3])], ["y"],
                      [const("p", np.array([1, 0, 0, 2])), const("v", np.float32(0.5))]))
    case("expand", model([helper.make_node("Expand", ["x", "s"], ["y"])], [("x", [3, 1])], ["y"],
                         [const("s", np.array([2, 3, 4]))]))
    case("reducemean", model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)],
                             [("x", [2, 3, 4])], ["y"]))
    case("reducesum", model([helper.make_node("ReduceSum", ["x", "a"], ["y"])], [("x", [2, 3, 4])], ["y"],
                            [const("a", np.array([0, 2]))]))
    case("squeeze_unsqueeze", model([helper.make_node("Unsqueeze", ["x", "a"], ["t"]),
                                     helper.make_node("Sigmoid", ["t"], ["u"]),
                                     helper.make_node("Squeeze", ["u", "a"], ["y"])],
                                    [("x", [2, 3])], ["y"], [const("a", np.array([1]))]))
    case("cast", model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], [("x", [2, 3])], ["y"]))
    # shape plumbing folded at plan time (dynamic batch)
    m = model([helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
               helper.make_node("Unsqueeze", ["b"], ["bu"], axes=[0]),
               helper.make_node("Concat", ["bu", "m1"], ["shp"], axis=0),
               helper.make_node("Reshape", ["x", "shp"], ["y"])],
              [("x", ["N", 2, 3])], ["y"], [const("zero", np.array(0)), const("m1", np.array([-1]))], opset=11)
    case("dyn_flatten", m)


def hostile(out):
    d = os.path.join(out, "hostile")
    os.makedirs(d, exist_ok=True)

    def save(name, m):
        with open(os.path.join(d, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())

    relu = helper.make_node("Relu", ["x"], ["y"])
    # dims whose product overflows 64 bits
    t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40, 1 << 40])
    t.raw_data = b"\0" * 8
    save("dims_overflow", model([relu], [("x", [2])], ["y"], [t]))
    # huge declared size, tiny payload
    t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 30])
    t.raw_data = b"\0" * 16
    save("huge_declared", model([relu], [("x", [2])], ["y"], [t]))
    # external data escaping the directory (three shapes)
    for nm, loc in [("ext_parent", "../../../../etc/passwd"), ("ext_nested", "a/../../etc/passwd"),
                    ("ext_absolute", "/etc/passwd")]:
        t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
        t.data_location = TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", loc
        save(nm, model([relu], [("x", [2])], ["y"], [t]))
    # cycle: a -> b -> a
    save("cycle", model([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                         helper.make_node("Add", ["x", "a"], ["y"])], [("x", [2])], ["y"]))
    save("missing_input", model([helper.make_node("Add", ["x", "nowhere"], ["y"])], [("x", [2])], ["y"]))
    save("unsupported_ops", model([helper.make_node("Relu", ["x"], ["a"]),
                                   helper.make_node("NonZero", ["a"], ["b"]),
                                   helper.make_node("TopK", ["a", "k"], ["c", "d"]),
                                   helper.make_node("MyOp", ["a"], ["y"], domain="com.evil")],
                                  [("x", [2])], ["y"], [const("k", np.array([1]))]))
    save("dup_output", model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])],
                             [("x", [2])], ["y"]))
    save("raw_size_mismatch", model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [4])], ["y"],
                                    [onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4],
                                                      raw_data=b"\0" * 12)]))
    save("shape_mismatch", model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [4])], ["y"],
                                 [const("w", np.zeros(3, np.float32))]))
    save("dyn_inner_dim", model([relu], [("x", [2, "seq"])], ["y"]))
    # a 16 GiB constant made at plan time by folding
    save("fold_huge", model([helper.make_node("ConstantOfShape", ["s"], ["c"]),
                             helper.make_node("Add", ["x", "c"], ["y"])], [("x", [1])], ["y"],
                            [const("s", np.array([1 << 16, 1 << 16]))]))
    save("int_input", onnx.helper.make_model(helper.make_graph(
        [relu], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [2])],
        [vi("y", [2])]), opset_imports=[helper.make_opsetid("", 13)]))


def main(out):
    build()
    d = os.path.join(out, "ops")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cases.txt"), "w") as f:
        for name, m, dom in CASES:
            with open(os.path.join(d, name + ".onnx"), "wb") as mf:
                mf.write(m.SerializeToString())
            f.write(f"{name} {dom}\n")
    hostile(out)
    # a valid model whose weights live in an external file next to it
    d = os.path.join(out, "ext")
    os.makedirs(d, exist_ok=True)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    t = numpy_helper.from_array(w, "w")
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [2, 4])], ["y"], [t])
    if os.path.exists(os.path.join(d, "weights.bin")):
        os.remove(os.path.join(d, "weights.bin"))  # onnx appends to an existing file
    onnx.save_model(m, os.path.join(d, "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    np.ones((2, 4), np.float32).tofile(os.path.join(d, "expected_in.f32"))
    (np.ones((2, 4), np.float32) @ w).astype(np.float32).tofile(os.path.join(d, "expected_out.f32"))
    print(len(CASES), "op cases")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
