"""The operator table: ONNX op type -> converter, gathered from one module per family.

A converter is called as `convert(node, *inputs)` with a `NodeView` and one
value per declared input (a graph Node, a NumPy array known at import time, or
None for an omitted optional input); it returns the output value, or a tuple of
them in the node's output order.
"""
from mlframework.models.onnx.ops import (activations, attention, bits, contraction, elementwise,
                                         indexing, losses, normalization, pooling, quantization,
                                         reduction, resize, shape, tensors)

FAMILIES = {
    "elementwise": elementwise.OPS, "activations": activations.OPS,
    "contraction": contraction.OPS, "pooling": pooling.OPS,
    "normalization": normalization.OPS, "reduction": reduction.OPS, "shape": shape.OPS,
    "tensors": tensors.OPS, "indexing": indexing.OPS, "quantization": quantization.OPS,
    "losses": losses.OPS, "bits": bits.OPS, "resize": resize.OPS,
    "attention": attention.OPS,
}


def _table() -> dict:
    table = {}
    for family in FAMILIES.values():
        for name, convert in family.items():
            if name in table:
                raise RuntimeError(f"ONNX operator {name!r} is registered twice")
            table[name] = convert
    return table


HANDLERS = _table()

__all__ = ["FAMILIES", "HANDLERS"]
