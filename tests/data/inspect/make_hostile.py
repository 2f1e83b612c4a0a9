#!/usr/bin/python3
"""Hostile inspect fixtures built with onnx.helper (no training needed).

Run with Debian's interpreter (python3-onnx):
    /usr/bin/python3 tests/data/inspect/make_hostile.py

no_weights.onnx  a graph without float initializers (Relu + Slice): the
                 weights check has nothing to inspect and must say so.
nan_rank17.onnx  a 17-D float initializer (one more dimension than the
                 tensor descriptors hold) with NaN in it, next to a normal
                 MatMul: the weights check must still see the NaN.
"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def nan_rank17():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    w = np.random.RandomState(0).randn(4, 2).astype(np.float32)
    h = np.zeros(2, np.float32)
    h[0] = np.nan
    ht = numpy_helper.from_array(h, "hidden")
    del ht.dims[:]
    ht.dims.extend([1] * 16 + [2])
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"),
             helper.make_node("Identity", ["hidden"], ["h_out"], name="hid")]
    g = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(w, "W"), ht])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    with open(os.path.join(HERE, "nan_rank17.onnx"), "wb") as f:
        f.write(m.SerializeToString())


def no_weights():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Slice", ["r", "s", "e", "a"], ["y"], name="slice")]
    inits = [numpy_helper.from_array(np.array([0], np.int64), n) for n in ("s", "a")]
    inits.insert(1, numpy_helper.from_array(np.array([2], np.int64), "e"))
    g = helper.make_graph(nodes, "g", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    with open(os.path.join(HERE, "no_weights.onnx"), "wb") as f:
        f.write(m.SerializeToString())


if __name__ == "__main__":
    nan_rank17()
    no_weights()
