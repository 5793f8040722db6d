"""ONNX in and out of the graph IR.

    from mlframework.models import onnx as mlf_onnx
    model = mlf_onnx.load_model("model.onnx", input_shapes={"x": (1, 3, 32, 32)})
    y = G.Exec(backend, model)(x)                 # initializers as constants
    ml.ContextExec(backend, ctx, model.model)     # ... or as variables of a Context
    mlf_onnx.export(fn, [x], "out.onnx")          # a graph function written as ONNX

`backend` is mlframework as an `onnx.backend.base.Backend`; `report` lists a
model's operators and their support.
"""
from mlframework.models.onnx.errors import (OnnxExportError, OnnxImportError,
                                            UnsupportedOperatorError)
from mlframework.models.onnx.exporter import export
from mlframework.models.onnx.importer import (MAX_OPSET, MIN_OPSET, ImportedModel, load_model,
                                              read_model)
from mlframework.models.onnx.ops import HANDLERS as _HANDLERS


def supported_operators() -> list[str]:
    """The ONNX operator types (default domain) the importer converts."""
    return sorted(_HANDLERS)


__all__ = ["MAX_OPSET", "MIN_OPSET", "ImportedModel", "OnnxExportError", "OnnxImportError",
           "UnsupportedOperatorError", "export", "load_model", "read_model", "supported_operators"]
