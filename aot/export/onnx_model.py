"""ONNX files as models for `aotc`: `aotc export model.onnx -o OUTDIR` (and verify,
inspect) runs the model imported by `mlframework.models.onnx`.

    fn = OnnxFunction("resnet.onnx")         # fn(*input_nodes): imported at trace time,
    specs = default_inputs(fn, ["x:float32[1,3,224,224]"])   # the --input overrides

`--input NAME:DTYPE[DIMS]` fixes the model's dynamic dimensions; NAME is the ONNX
input's name made a C identifier (see `c_name`), and the inputs without one keep the
static shapes the model declares.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aot.export.signature import InputSpec, UsageError, parse_input


def is_onnx(reference) -> bool:
    """Whether an `aotc` model reference names an ONNX file."""
    return isinstance(reference, (str, Path)) and str(reference).lower().endswith(".onnx")


def c_name(name: str) -> str:
    """An ONNX value name as a C identifier: other characters become '_'."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "input"
    return out if not out[0].isdigit() else f"in_{out}"


class OnnxFunction:
    """The graph function of an ONNX file, imported with the shapes of the nodes it is
    called on (so one file serves any --input shapes).

    Raises:
        UsageError: for a file that cannot be read (truncated, not ONNX), or a model
            that does not import (an unsupported operator, a shape error), with the
            importer's message naming the ONNX node.
    """

    def __init__(self, path):
        from mlframework.models import onnx as mlf_onnx
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise UsageError(f"ONNX model {str(path)!r} does not exist")
        try:
            self.proto = mlf_onnx.read_model(self.path)
        except mlf_onnx.OnnxImportError as e:
            raise UsageError(str(e)) from None
        initializers = {t.name for t in self.proto.graph.initializer}
        self.inputs = [i for i in self.proto.graph.input if i.name not in initializers]
        self.__name__ = c_name(self.path.stem)
        self.__module__ = str(self.path)

    def __call__(self, *nodes):
        from mlframework.models import onnx as mlf_onnx
        shapes = {i.name: n.shape for i, n in zip(self.inputs, nodes)}
        try:
            model = mlf_onnx.ImportedModel(self.proto, shapes)
        except mlf_onnx.OnnxImportError as e:
            raise UsageError(f"{self.path.name}: {e}") from None
        return model(*nodes)


def default_inputs(fn: OnnxFunction, given: list) -> list[InputSpec]:
    """The model's inputs, in order: each one given by --input (matched by its C name),
    else its declared static shape.

    Raises:
        UsageError: for an --input naming no ONNX input, or an input with dynamic
            dimensions and no --input.
    """
    from mlframework.core import shapes
    from mlframework.models.onnx import dtypes
    specs = {s.name: s for s in (parse_input(g) if isinstance(g, str) else g for g in given)}
    names = [c_name(i.name) for i in fn.inputs]
    stray = [n for n in specs if n not in names]
    if stray:
        raise UsageError(f"--input {stray[0]!r} names no input of {fn.path.name}; its inputs "
                         f"are {', '.join(names)}")
    out = []
    for i, name in zip(fn.inputs, names):
        if name in specs:
            out.append(specs[name])
            continue
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if len(dims) != len(i.type.tensor_type.shape.dim):
            raise UsageError(f"input {i.name!r} of {fn.path.name} has dynamic dimensions; "
                             f"give them: --input {name}:DTYPE[DIMS]")
        try:
            dtype = dtypes.from_onnx(i.type.tensor_type.elem_type, f"input {i.name!r}")
        except Exception as e:  # noqa: BLE001 - an unsupported ONNX type, named
            raise UsageError(str(e)) from None
        out.append(InputSpec(name, shapes.make(dtype, *dims)))
    return out


def onnxruntime_outputs(path, inputs) -> list:
    """The model's outputs for `inputs` (NumPy arrays, in input order) in ONNX Runtime."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)


def load_model_function(reference: Callable[..., Any] | str, inputs: Sequence[Any]
                        ) -> tuple[Callable[..., Any], list[InputSpec]]:
    """(function, InputSpecs) of an `aotc` model reference: an ONNX file (see
    `default_inputs`), or MODULE:FUNCTION with its --input strings parsed."""
    from aot.export.signature import load_function
    if is_onnx(reference):
        onnx_fn = OnnxFunction(reference)
        return onnx_fn, default_inputs(onnx_fn, list(inputs))
    fn = load_function(reference) if isinstance(reference, str) else reference
    return fn, [parse_input(i) if isinstance(i, str) else i for i in inputs]
