"""Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and
QLinearMatMul, for 8- and 16-bit integer types with per-tensor or per-axis
scales (block quantization and float8 types are not supported).

Rounding is half to even and results saturate to the integer type, as ONNX
defines.
"""
from __future__ import annotations

import numpy as np

from mlframework import graph as G
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx import dtypes
from mlframework.models.onnx.errors import UnsupportedOperatorError


def _per_axis(v, rank: int, axis: int):
    """A scale or zero point laid out along `axis` (in [-rank, rank)) of an operand."""
    v = as_node(v)
    if v.ndim == 0 or rank == 0 or v.size == 1 and v.ndim == 1 and rank == 1:
        return G.reshape(v, ()) if v.ndim else v
    axis = normalize_axis("quantization axis", axis, rank)
    if v.ndim != 1:
        raise UnsupportedOperatorError(f"scales of shape {list(v.shape)} (block "
                                       "quantization) are not supported")
    shape = [1] * rank
    shape[axis] = v.shape[0]
    return G.reshape(v, tuple(shape))


def _saturate(y, dtype):
    info = np.iinfo(dtype.numpy)
    return G.convert(G.clip(G.round(y), float(info.min), float(info.max)), dtype)


def _quantize(node, x, scale, zero_point=None):
    x = as_node(x)
    if node.int("block_size", 0):
        raise UnsupportedOperatorError("block quantization (block_size > 0) is not supported")
    axis = node.int("axis", 1)
    if zero_point is not None:
        dtype = as_node(zero_point).dtype
    elif node.has("output_dtype"):
        dtype = dtypes.from_onnx(node.int("output_dtype"), "the output")
    else:
        dtype = dtypes.from_onnx(2)  # uint8
    if not dtype.is_int:
        raise UnsupportedOperatorError(f"quantizing to {dtype} is not supported")
    scale = _per_axis(scale, x.ndim, axis)
    y = G.convert(x, scale.dtype) / scale
    if zero_point is not None:
        y = G.round(y) + G.convert(_per_axis(zero_point, x.ndim, axis), y.dtype)
    return _saturate(y, dtype)


def _dequantize(node, x, scale, zero_point=None):
    x = as_node(x)
    if node.int("block_size", 0):
        raise UnsupportedOperatorError("block quantization (block_size > 0) is not supported")
    axis = node.int("axis", 1)
    scale = _per_axis(scale, x.ndim, axis)
    wide = G.convert(x, "int32") if x.dtype.itemsize < 4 else x
    if zero_point is not None:
        wide = wide - G.convert(_per_axis(zero_point, x.ndim, axis), wide.dtype)
    return G.convert(wide, scale.dtype) * scale


def _dynamic_quantize(node, x):
    x = as_node(x)
    lo = G.min(G.reduce_min(x), 0.0)
    hi = G.max(G.reduce_max(x), 0.0)
    scale = (hi - lo) / 255.0
    zero = _saturate(G.div(-lo, scale), dtypes.from_onnx(2))
    y = _saturate(G.round(x / scale) + G.convert(zero, x.dtype), dtypes.from_onnx(2))
    return y, scale, zero


def _qlinear_matmul(node, a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp):
    """(a - a_zp) @ (b - b_zp) in int32, rescaled by a_scale * b_scale / y_scale and
    requantized; b's zero point and scale may be per column."""
    a = G.convert(as_node(a), "int32") - G.convert(as_node(a_zp), "int32")
    b = G.convert(as_node(b), "int32") - G.convert(_per_axis(b_zp, 2, 1), "int32")
    acc = G.convert(G.matmul(a, b), "float32")
    y = acc * (G.convert(as_node(a_scale), "float32") *
               G.convert(_per_axis(b_scale, 2, 1), "float32")
               / G.convert(as_node(y_scale), "float32"))
    y_zp = as_node(y_zp)
    return _saturate(G.round(y) + G.convert(y_zp, "float32"), y_zp.dtype)


OPS = {
    "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize,
    "DynamicQuantizeLinear": _dynamic_quantize, "QLinearMatMul": _qlinear_matmul,
}
