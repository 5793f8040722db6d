"""`NodeView`: what an operator's converter sees of one ONNX node.

A value flowing between ONNX nodes is either a graph `Node` (computed at run
time) or a NumPy array (known at import time: initializers imported as
constants, `Constant` outputs, shapes, and anything folded from them).
Converters read attributes through the typed accessors, which raise
OnnxImportError naming the attribute when its type is wrong.
"""
from __future__ import annotations

import builtins

import numpy as np
from onnx import AttributeProto, helper, numpy_helper

from mlframework.core.dtypes import DType, as_dtype
from mlframework.graph.graph import Node
from mlframework.models.onnx.errors import OnnxImportError

_REQUIRED = object()


class ImportTimeValueError(OnnxImportError):
    """An input an operator needs at import time is computed at run time.

    `value_name` (set by the importer) is the ONNX name of that input.
    """

    value_name = ""

IMPORT_TIME = "must be known at import time"
_KINDS = {"int": AttributeProto.INT, "float": AttributeProto.FLOAT,
          "string": AttributeProto.STRING, "ints": AttributeProto.INTS,
          "floats": AttributeProto.FLOATS, "tensor": AttributeProto.TENSOR,
          "strings": AttributeProto.STRINGS}


def dtype_of(value) -> DType:
    """The mlframework dtype of a value (graph node or NumPy array)."""
    return value.dtype if isinstance(value, Node) else as_dtype(value.dtype)


def is_const(value) -> bool:
    return isinstance(value, np.ndarray)


class NodeView:
    """One ONNX node: its proto, the opset it is read under and its input values.

    `inputs` has one entry per declared input, None for an omitted optional one.
    """

    def __init__(self, proto, opset: int, inputs: list):
        self.proto, self.opset, self.inputs = proto, opset, inputs
        self.name, self.op_type = proto.name, proto.op_type
        self._attrs = {a.name: a for a in proto.attribute}

    @property
    def num_outputs(self) -> int:
        return len(self.proto.output)

    def output_used(self, i: int) -> bool:
        return i < len(self.proto.output) and self.proto.output[i] != ""

    def _attr(self, name: str, kind: str, default):
        attr = self._attrs.get(name)
        if attr is None:
            if default is _REQUIRED:
                raise OnnxImportError(f"attribute {name!r} is required")
            return default
        if attr.type != _KINDS[kind]:
            got = AttributeProto.AttributeType.Name(attr.type)
            raise OnnxImportError(f"attribute {name!r} must be of type "
                                  f"{AttributeProto.AttributeType.Name(_KINDS[kind])}, got {got}")
        value = helper.get_attribute_value(attr)
        if kind == "string":
            return value.decode()
        if kind == "strings":
            return [v.decode() for v in value]
        if kind == "tensor":
            return numpy_helper.to_array(value)
        if kind in ("ints", "floats"):
            return list(value)
        return value

    def int(self, name: builtins.str, default=_REQUIRED) -> builtins.int:
        return self._attr(name, "int", default)

    def float(self, name: builtins.str, default=_REQUIRED) -> builtins.float:
        return self._attr(name, "float", default)

    def str(self, name: builtins.str, default=_REQUIRED) -> builtins.str:
        return self._attr(name, "string", default)

    def ints(self, name: builtins.str, default=_REQUIRED) -> list[builtins.int]:
        return self._attr(name, "ints", default)

    def floats(self, name: builtins.str, default=_REQUIRED) -> list[builtins.float]:
        return self._attr(name, "floats", default)

    def tensor(self, name: builtins.str, default=_REQUIRED) -> np.ndarray:
        return self._attr(name, "tensor", default)

    def has(self, name: builtins.str) -> bool:
        return name in self._attrs

    def attribute_names(self) -> list[builtins.str]:
        return list(self._attrs)

    def input(self, i: builtins.int):
        """Input i, or None when it is omitted."""
        return self.inputs[i] if i < len(self.inputs) else None

    def const(self, i: builtins.int, what: builtins.str, default=_REQUIRED) -> np.ndarray:
        """Input i as a NumPy array, known at import time.

        Raises:
            OnnxImportError: when the input is computed at run time (naming `what`),
                or is omitted without a default.
        """
        value = self.input(i)
        if value is None:
            if default is _REQUIRED:
                raise OnnxImportError(f"input {i} ({what}) is required")
            return default
        if not is_const(value):
            error = ImportTimeValueError(f"input {i} ({what}) {IMPORT_TIME} (an "
                                         f"initializer or computed from shapes), but it is "
                                         f"computed at run time ({value.spec})")
            error.value_name = self.proto.input[i]
            raise error
        return value
