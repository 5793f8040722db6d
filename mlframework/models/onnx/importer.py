"""ONNX import: a `ModelProto` becomes a graph function.

    model = load_model("resnet.onnx", input_shapes={"x": (1, 3, 224, 224)})
    exe = G.Exec(backend, model)               # model(*inputs) -> output node(s)
    y = exe(x)
    ml.ContextExec(backend, ctx, model.model)  # model.model(ctx, *inputs): the float
                                               # initializers are variables of ctx, so the
                                               # Trainer can fine-tune them

Opsets 13 up to the newest the installed `onnx` knows are read. Dynamic
dimensions (`dim_param`) are fixed by `input_shapes`. The whole graph is
traced once at import (`ImportedModel.graph`), so shape and type errors are
found then and raised as OnnxImportError naming the ONNX node, its op type and
its inputs' shapes.

A node all of whose inputs are known at import time (shapes, initializers
imported as constants, `Constant` outputs) is folded: evaluated once by ONNX's
reference implementation (`onnx.reference`), so shape computations such as
Shape -> Gather -> Concat -> Reshape give the static shapes the IR needs. QuantizeLinear
and DequantizeLinear (`KEPT`) are not folded: a QDQ model's int8 weights stay int8
constants dequantized in the graph, where a compiler can map the products onto int8 kernels.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from numpy.typing import ArrayLike
from onnx import numpy_helper

from mlframework.core import shapes
from mlframework.core.shapes import Shape
from mlframework.graph.graph import (Graph, Node, Operand, const, current_graph, parameter,
                                     tracing)
from mlframework.models.onnx import dtypes
from mlframework.models.onnx.errors import (REPORT_HINT, OnnxImportError,
                                            UnsupportedOperatorError, describe_node)
from mlframework.models.onnx.node import ImportTimeValueError, NodeView, is_const
from mlframework.models.onnx.ops import HANDLERS

if TYPE_CHECKING:
    from mlframework.ml.context import Context

ModelSource: TypeAlias = "str | os.PathLike | bytes | onnx.ModelProto"
"""An ONNX model as `load_model` takes it: a file path, its bytes, or the ModelProto."""

# operators kept in the graph even when all their inputs are known at import time: a QDQ
# model's int8 weights stay int8 for the compiler (aotc maps QDQ products onto int8 kernels)
KEPT = frozenset({"QuantizeLinear", "DequantizeLinear"})
MIN_OPSET = 13
MAX_OPSET = onnx.defs.onnx_opset_version()
DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(model: ModelSource) -> onnx.ModelProto:
    """A ModelProto from a path, bytes or a ModelProto.

    Raises:
        OnnxImportError: for a missing, truncated or otherwise unreadable file.
    """
    if isinstance(model, onnx.ModelProto):
        return model
    what = "the given bytes"
    if isinstance(model, (str, os.PathLike)):
        what = str(model)
        try:
            with open(model, "rb") as f:
                model = f.read()
        except OSError as e:
            raise OnnxImportError(f"cannot read ONNX model {what}: {e}") from None
    try:
        proto = onnx.ModelProto()
        proto.ParseFromString(model)
    except (DecodeError, RuntimeError) as e:
        raise OnnxImportError(f"{what} is not a valid ONNX model (truncated or corrupt "
                              f"protobuf: {e})") from None
    if not proto.graph.node and not proto.graph.output:
        raise OnnxImportError(f"{what} holds no ONNX graph (empty or truncated file)")
    return proto


def opset_of(proto: onnx.ModelProto) -> int:
    """The default-domain opset the model imports.

    A model of an opset below MIN_OPSET is read when each of its operators is defined
    as at MIN_OPSET (checked per node by `check_definition`).

    Raises:
        UnsupportedOperatorError: for opsets above MAX_OPSET.
    """
    versions = [o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS]
    version = versions[0] if versions else MAX_OPSET
    if version > MAX_OPSET:
        raise UnsupportedOperatorError(f"the model imports ONNX opset {version}; mlframework "
                                       f"reads opsets {MIN_OPSET} to {MAX_OPSET} (the newest "
                                       "the installed onnx package knows)")
    return version


def check_definition(proto: onnx.NodeProto, opset: int) -> None:
    """Raises UnsupportedOperatorError when the node's operator, read at `opset`
    (below MIN_OPSET), is defined differently than at MIN_OPSET."""
    if opset >= MIN_OPSET:
        return
    try:
        old = onnx.defs.get_schema(proto.op_type, opset).since_version
        new = onnx.defs.get_schema(proto.op_type, MIN_OPSET).since_version
    except onnx.defs.SchemaError:
        old, new = None, -1
    if old != new:
        raise UnsupportedOperatorError(
            f"{describe_node(proto)}: the model imports opset {opset}, where {proto.op_type} "
            f"is defined as before opset {MIN_OPSET}; mlframework reads opsets {MIN_OPSET} to "
            f"{MAX_OPSET} (convert the model with onnx.version_converter)")


def _shape_of(value_info, given, name: str) -> Shape:
    ttype = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        raise UnsupportedOperatorError(f"graph input {name!r} is not a tensor "
                                       f"({value_info.type.WhichOneof('value')})")
    dtype = dtypes.from_onnx(ttype.elem_type, f"graph input {name!r}")
    declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in ttype.shape.dim] if ttype.HasField("shape") else None
    if given is None:
        if declared is None or any(isinstance(d, str) for d in declared):
            raise OnnxImportError(
                f"graph input {name!r} has dynamic dimensions {declared}; give its shape: "
                f"input_shapes={{{name!r}: (...)}}")
        return shapes.make(dtype, *(int(d) for d in declared))
    given = tuple(int(d) for d in given)
    if declared is not None and (len(declared) != len(given) or any(
            isinstance(d, int) and d != g for d, g in zip(declared, given))):
        raise OnnxImportError(f"graph input {name!r} is declared {declared}; the given shape "
                              f"{list(given)} does not match it")
    return shapes.make(dtype, *given)


class ImportedModel:
    """An imported ONNX model, callable on graph nodes: `model(*inputs)`.

    Attributes:
        proto: the ModelProto.  opset: its default-domain opset.
        input_names, input_specs: the graph inputs (initializers excluded), with
            the shapes fixed at import.
        output_names: the graph outputs; a call returns one node, or a tuple
            when there are several.
        initializers: name -> NumPy array.
        constant_inputs: graph inputs fixed to values at import (name -> array).
        graph: the graph traced at import (shape and type inference).
        node_primitives: per ONNX node (by position), the IR primitives its conversion
            built in that trace.
    """

    def __init__(self, proto: onnx.ModelProto,
                 input_shapes: dict[str, Sequence[int]] | None = None,
                 constant_inputs: dict[str, ArrayLike] | None = None):
        self.proto = proto
        self.opset = opset_of(proto)
        self.constant_inputs = {k: np.asarray(v) for k, v in (constant_inputs or {}).items()}
        graph = proto.graph
        self.initializers = {}
        for t in graph.initializer:
            try:
                self.initializers[t.name] = numpy_helper.to_array(t)
            except Exception as e:  # noqa: BLE001 - protobuf and NumPy raise many kinds
                raise OnnxImportError(f"initializer {t.name!r} cannot be read: {e}") from None
        for t in graph.sparse_initializer:
            raise UnsupportedOperatorError(f"sparse initializer {t.values.name!r} is not "
                                           "supported")
        inputs = [i for i in graph.input if i.name not in self.initializers
                  and i.name not in self.constant_inputs]
        named = {i.name for i in graph.input}
        stray = set(self.constant_inputs) - named
        if stray:
            raise OnnxImportError(f"constant_inputs names {sorted(stray)}, which are not graph "
                                  f"inputs; the inputs are {sorted(named)}")
        self.input_names = [i.name for i in inputs]
        if isinstance(input_shapes, (list, tuple)):
            input_shapes = dict(zip(self.input_names, input_shapes))
        input_shapes = dict(input_shapes or {})
        unknown = set(input_shapes) - set(self.input_names)
        if unknown:
            raise OnnxImportError(f"input_shapes names {sorted(unknown)}, which are not graph "
                                  f"inputs; the inputs are {self.input_names}")
        self.input_specs = [_shape_of(i, input_shapes.get(i.name), i.name) for i in inputs]
        self.output_names = [o.name for o in graph.output]
        self._check_operators()
        self.graph = Graph(graph.name or "onnx")
        self.node_primitives: list[set[str]] = []
        with tracing(self.graph):
            params = [parameter(s, _c_name(n)) for s, n in zip(self.input_specs,
                                                               self.input_names)]
            outs = self._run(params, self._constants(), self.node_primitives)
            self.graph.outputs = [o if isinstance(o, Node) else const(o) for o in outs]
        self.output_specs = [o.spec for o in self.graph.outputs]

    def _check_operators(self) -> None:
        for proto in self.proto.graph.node:
            if proto.domain not in DEFAULT_DOMAINS:
                raise UnsupportedOperatorError(
                    f"{describe_node(proto)}: domain {proto.domain!r} is not supported "
                    f"(mlframework reads the default ONNX domain only); {REPORT_HINT}")
            if proto.op_type not in HANDLERS:
                raise UnsupportedOperatorError(
                    f"{describe_node(proto)}: operator {proto.op_type!r} is not supported; "
                    f"{REPORT_HINT}")
            check_definition(proto, self.opset)

    def _constants(self) -> dict:
        return {**self.initializers, **self.constant_inputs}

    def __call__(self, *inputs: Operand) -> Node | tuple[Node, ...]:
        """The outputs (one node, or a tuple) over input nodes; initializers are constants."""
        outs = self._run(list(inputs), self._constants())
        return outs[0] if len(outs) == 1 else tuple(outs)

    def model(self, ctx: Context, *inputs: Operand) -> Node | tuple[Node, ...]:
        """The model as `model(ctx, *inputs)`: the float initializers are (trainable)
        variables of `ctx`, created from the ONNX values on first use; the others
        (integer shapes, indices) stay constants."""
        env = self._constants()
        for name, value in self.initializers.items():
            if value.dtype.kind == "f":
                def onnx_value(rng: object, shape: object, dtype: object,
                               v: np.ndarray = value) -> np.ndarray:
                    return v
                env[name] = ctx.node(name, value.shape, value.dtype, initializer=onnx_value)
        outs = self._run(list(inputs), env)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _run(self, inputs: list, env: dict, record: list | None = None) -> list:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"the ONNX model takes {len(self.input_names)} inputs "
                            f"{self.input_names}, got {len(inputs)}")
        env.update(zip(self.input_names, inputs))
        bound = set(self.constant_inputs)
        for proto in self.proto.graph.node:
            values = []
            for name in proto.input:
                if name and name not in env:
                    raise OnnxImportError(f"{describe_node(proto)}: input {name!r} is neither "
                                          "a graph input, an initializer nor an earlier output")
                values.append(env[name] if name else None)
            foldable = not bound.intersection(proto.input)
            start = len(self.graph.nodes) if record is not None else 0
            outs = convert_node(proto, self.opset, values, foldable)
            if record is not None:
                record.append({n.op.value for n in self.graph.nodes[start:]})
            for name, out in zip(proto.output, outs):
                if name:
                    env[name] = out
        missing = [n for n in self.output_names if n not in env]
        if missing:
            raise OnnxImportError(f"graph outputs {missing} are produced by no node")
        return [env[n] for n in self.output_names]


def _c_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "input"


def _spec_text(value) -> str:
    if value is None:
        return "<omitted>"
    if is_const(value):
        return f"{value.dtype}{list(value.shape)} (constant)"
    return str(value.spec)


def convert_node(proto: onnx.NodeProto, opset: int, values: list, foldable: bool = True) -> list:
    """The output values of one ONNX node over `values` (nodes or arrays; None = omitted).

    With all inputs known and `foldable`, the node is evaluated at import time.

    Raises:
        OnnxImportError, UnsupportedOperatorError: naming the node, its op type and
            its inputs' shapes.
    """
    handler = HANDLERS.get(proto.op_type) if proto.domain in DEFAULT_DOMAINS else None
    if handler is None:
        raise UnsupportedOperatorError(f"{describe_node(proto)}: operator {proto.op_type!r} "
                                       f"is not supported; {REPORT_HINT}")
    view = NodeView(proto, opset, values)
    present = [v for v in values if v is not None]
    try:
        if foldable and present and all(is_const(v) for v in present) \
                and proto.op_type not in KEPT:
            outs = _fold(proto, opset, values)
        else:
            graph = next((v.graph for v in present if isinstance(v, Node)), None)
            if graph is None and proto.op_type in KEPT:
                graph = current_graph()
            scope = _scope_name(proto)
            if graph is not None:
                with graph.name_scope(scope):
                    outs = handler(view, *values)
            else:
                outs = handler(view, *values)
    except Exception as e:  # noqa: BLE001 - every failure is reported against the node
        specs = [(n, _spec_text(v)) for n, v in zip(proto.input, values)]
        kind = type(e) if isinstance(e, OnnxImportError) else UnsupportedOperatorError \
            if isinstance(e, NotImplementedError) else OnnxImportError
        error = kind(f"{describe_node(proto, specs)}: {e}")
        if isinstance(e, ImportTimeValueError) and isinstance(error, ImportTimeValueError):
            error.value_name = e.value_name
        raise error from e
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    return outs


def _scope_name(proto) -> str:
    return (proto.name or proto.op_type).strip("/").replace("/", ".") or proto.op_type


def _fold(proto, opset: int, values: list) -> list:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if v is not None else "" for i, v in enumerate(values)]
    node = onnx.NodeProto()
    node.CopyFrom(proto)
    del node.input[:]
    node.input.extend(names)
    outputs = [f"out{i}" if o else "" for i, o in enumerate(proto.output)]
    del node.output[:]
    node.output.extend(outputs)
    inputs = [helper.make_tensor_value_info(n, dtypes.to_onnx(v.dtype), v.shape)
              for n, v in zip(names, values) if v is not None]
    graph = helper.make_graph([node], "fold", inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: v for n, v in zip(names, values) if v is not None}
    results = ReferenceEvaluator(model).run(None, feeds)
    it = iter(results)
    return [np.asarray(next(it)) if o else None for o in outputs]


def load_model(model: ModelSource, input_shapes: dict[str, Sequence[int]] | None = None, *,
               constant_inputs: dict[str, ArrayLike] | None = None) -> ImportedModel:
    """Imports an ONNX model (path, bytes or ModelProto) as an `ImportedModel`.

    Args:
        input_shapes: shapes of the graph inputs, a dict name -> dims or a list in
            input order; required for inputs with dynamic dimensions.
        constant_inputs: graph inputs fixed to values (name -> array) at import, as
            if they were initializers: for inputs that operators need at import time
            (a Reshape's shape, a TopK's K fed as a graph input). Nodes reading them are
            converted by mlframework's converters, never folded.

    Raises:
        OnnxImportError: unreadable file, dynamic dimensions without shapes, shape
            or type errors (naming the ONNX node).
        UnsupportedOperatorError: an operator, domain, opset or dtype that is not
            supported (naming the node).
    """
    return ImportedModel(read_model(model), input_shapes, constant_inputs)
