"""Creation and conversion operators: Constant, ConstantOfShape, Range, EyeLike,
Cast, CastLike, Identity and Dropout (inference).

Creation operators give import-time constants (NumPy arrays), which the
importer bakes into the graph where a run-time value uses them.
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx import dtypes
from mlframework.models.onnx.errors import OnnxImportError, UnsupportedOperatorError
from mlframework.models.onnx.node import dtype_of, is_const


def _constant(node):
    names = node.attribute_names()
    if len(names) != 1:
        raise OnnxImportError(f"requires exactly one value attribute, got {names}")
    name = names[0]
    if name == "value":
        attr = node.proto.attribute[0].t
        dtypes.from_onnx(attr.data_type, "the value attribute")
        return numpy_helper.to_array(attr)
    if name == "value_float":
        return np.array(node.float(name), np.float32)
    if name == "value_floats":
        return np.array(node.floats(name), np.float32)
    if name == "value_int":
        return np.array(node.int(name), np.int64)
    if name == "value_ints":
        return np.array(node.ints(name), np.int64)
    raise UnsupportedOperatorError(f"attribute {name!r} (strings and sparse tensors) is not "
                                   "supported")


def _constant_of_shape(node, shape):
    dims = [int(d) for d in np.ravel(node.const(0, "shape"))]
    value = node.tensor("value", np.zeros(1, np.float32))
    return G.full(dims, np.ravel(value)[0], value.dtype)


def _range(node, start, limit, delta):
    start, limit, delta = (node.const(i, w) for i, w in enumerate(("start", "limit", "delta")))
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + delta * np.arange(n)).astype(start.dtype)


def _eye_like(node, x):
    if len(x.shape) != 2:
        raise OnnxImportError(f"requires a 2-D input, got shape {list(x.shape)}")
    dtype = dtypes.from_onnx(node.int("dtype"), "the output") if node.has("dtype") \
        else dtype_of(x)
    rows, cols = x.shape
    return np.eye(rows, cols, k=node.int("k", 0), dtype=dtype.numpy)


def _cast(x, dtype):
    if is_const(x):  # a constant stays a constant (shape arithmetic stays foldable)
        return x != 0 if dtype.value == "bool" else x.astype(dtype.numpy)
    if dtype.value == "bool" and x.dtype.value != "bool":
        return G.ne(x, G.zeros_like(x))
    return G.convert(x, dtype)


def _cast_node(node, x):
    return _cast(x, dtypes.from_onnx(node.int("to"), "the Cast target"))


def _cast_like(node, x, like):
    if is_const(x):  # only the dtype of `like` matters: a constant stays a constant
        return x.astype(dtype_of(like).numpy) if dtype_of(like).value != "bool" else x != 0
    return _cast(x, dtype_of(like))


def _dropout(node, x, ratio=None, training=None):
    if training is not None and (not is_const(training) or bool(np.ravel(training)[0])):
        raise UnsupportedOperatorError("training mode (training_mode true or computed at run "
                                       "time) is not supported; Dropout imports for inference")
    x = as_node(x)
    if node.output_used(1):
        return x, G.full(x.shape, True, np.bool_)
    return x


def _window(kind):
    """HannWindow, HammingWindow and BlackmanWindow of a constant size."""
    def convert(node, size):
        n = int(np.ravel(node.const(0, "size"))[0])
        dtype = dtypes.from_onnx(node.int("output_datatype", 1), "the output")
        period = n if node.int("periodic", 1) else n - 1
        k = 2 * np.pi * np.arange(n) / period if period else np.zeros(n)
        if kind == "hann":
            w = 0.5 - 0.5 * np.cos(k)
        elif kind == "hamming":
            w = 25 / 46 - (21 / 46) * np.cos(k)
        else:
            w = 0.42 - 0.5 * np.cos(k) + 0.08 * np.cos(2 * k)
        return w.astype(dtype.numpy)
    return convert


OPS = {
    "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Range": _range,
    "EyeLike": _eye_like, "Cast": _cast_node, "CastLike": _cast_like,
    "Identity": lambda node, x: x, "Dropout": _dropout,
    "HannWindow": _window("hann"), "HammingWindow": _window("hamming"),
    "BlackmanWindow": _window("blackman"),
}
