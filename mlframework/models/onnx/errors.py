"""The errors of ONNX import: each names the ONNX node (name, op type, input shapes)."""
from __future__ import annotations

REPORT_HINT = ("run `aotc onnx-report MODEL.onnx` to list every operator of the model and "
               "its support")


class OnnxImportError(ValueError):
    """An ONNX model could not be imported; the message names the node at fault."""


class UnsupportedOperatorError(OnnxImportError, NotImplementedError):
    """An operator (or an attribute value of one) that the importer does not implement."""


class OnnxExportError(ValueError):
    """A graph could not be written as ONNX; the message names the graph node."""


def describe_node(node, input_specs=()) -> str:
    """"node 'conv1' (Conv) with inputs x: float32[1,3,8,8], w: float32[4,3,3,3]"."""
    name = node.name or "<unnamed>"
    op = node.op_type if not node.domain else f"{node.domain}.{node.op_type}"
    text = f"ONNX node {name!r} ({op})"
    if input_specs:
        text += " with inputs " + ", ".join(f"{n or '<missing>'}: {s}" for n, s in input_specs)
    return text
