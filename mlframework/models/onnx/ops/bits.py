"""BitShift on unsigned integers, as multiplication and division by powers of two
(exact: unsigned products wrap modulo 2**bits, unsigned division floors)."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _bit_shift(node, x, y):
    x, y = as_node(x), as_node(y)
    if not x.dtype.is_unsigned:
        raise OnnxImportError(f"BitShift requires unsigned integers, got {x.spec}")
    power = G.convert(G.pow(2.0, G.convert(y, "float64")), x.dtype)
    direction = node.str("direction")
    if direction == "LEFT":
        return x * power
    if direction == "RIGHT":
        return G.div(x, power)
    raise OnnxImportError(f"direction must be LEFT or RIGHT, got {direction!r}")


OPS = {"BitShift": _bit_shift}
