"""BitShift on integers, as multiplication and division by powers of two in the
unsigned type of the same width (exact: unsigned products wrap modulo 2**bits,
unsigned division floors). Signed right shifts are arithmetic; shifts by a
negative amount or by the width or more give 0 (-1 for negative x shifted right),
as the ONNX reference does."""
from __future__ import annotations

import numpy as np

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node, broadcast_shapes, broadcast_to
from mlframework.models.onnx.errors import OnnxImportError


def _bit_shift(node, x, y):
    x, y = as_node(x), as_node(y)
    if not x.dtype.is_int:
        raise OnnxImportError(f"BitShift requires integers, got {x.spec}")
    shape = broadcast_shapes("BitShift", x.shape, y.shape)
    x, y = broadcast_to(x, shape), broadcast_to(G.convert(y, x.dtype), shape)
    bits = x.dtype.itemsize * 8
    unsigned = np.dtype(f"u{x.dtype.itemsize}")
    signed = not x.dtype.is_unsigned
    outside = G.logical_or(G.lt(y, 0), G.ge(y, bits)) if signed else G.ge(y, bits)
    amount = G.clip(y, 0, bits - 1)
    power = G.convert(G.pow(2.0, G.convert(amount, "float64")), unsigned)
    zero = G.zeros_like(x)
    direction = node.str("direction")
    if direction == "LEFT":
        out = G.convert(G.convert(x, unsigned) * power, x.dtype)
        return G.where(outside, zero, out)
    if direction != "RIGHT":
        raise OnnxImportError(f"direction must be LEFT or RIGHT, got {direction!r}")
    if not signed:
        return G.where(outside, zero, G.div(x, G.convert(power, x.dtype)))
    negative = G.lt(x, 0)
    magnitude = G.where(negative, -(x + 1), x)  # ~x for negative x, never overflows
    shifted = G.convert(G.div(G.convert(magnitude, unsigned), power), x.dtype)
    out = G.where(negative, -shifted - 1, shifted)
    return G.where(outside, G.where(negative, zero - 1, zero), out)


OPS = {"BitShift": _bit_shift}
