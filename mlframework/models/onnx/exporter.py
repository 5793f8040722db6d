"""`export`: a graph function written as an ONNX model (opset 17).

    export(lambda x, w: G.tanh(x @ w), [x, w], "model.onnx")
    export(model, [x], "mlp.onnx", ctx=ctx)     # a model(ctx, x): its variables
                                                # become initializers

The function is traced for the example inputs' shapes and dtypes; each IR
primitive becomes one or a few ONNX nodes (`_EMIT`), constants become
initializers. The result passes `onnx.checker.check_model(full_check=True)`.

Raises OnnxExportError naming the graph node for a primitive without an ONNX
form here (gather/scatter in general, sort, random bits, dynamic slices, atan2,
erf_inv, interior padding, dilated inputs of convolutions).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mlframework import graph as G
from mlframework.core import symbolic
from mlframework.core.shapes import Shape
from mlframework.core.symbolic import DimLike
from mlframework.core.tensors import Tensor
from mlframework.graph.gen_optypes import Op
from mlframework.models.onnx import dtypes
from mlframework.models.onnx.errors import OnnxExportError

if TYPE_CHECKING:
    from mlframework.ml.context import Context

OPSET = 17
_UNARY = {Op.ABS: "Abs", Op.NEG: "Neg", Op.SIGN: "Sign", Op.EXP: "Exp", Op.LOG: "Log",
          Op.SQRT: "Sqrt", Op.TANH: "Tanh", Op.LOGISTIC: "Sigmoid", Op.SIN: "Sin",
          Op.COS: "Cos", Op.FLOOR: "Floor", Op.CEIL: "Ceil", Op.ROUND: "Round", Op.ERF: "Erf",
          Op.LOGICAL_NOT: "Not", Op.STOP_GRADIENT: "Identity"}
_BINARY = {Op.ADD: "Add", Op.SUB: "Sub", Op.MUL: "Mul", Op.DIV: "Div", Op.POW: "Pow",
           Op.MAX: "Max", Op.MIN: "Min", Op.EQ: "Equal", Op.LT: "Less", Op.LE: "LessOrEqual",
           Op.GT: "Greater", Op.GE: "GreaterOrEqual", Op.LOGICAL_AND: "And",
           Op.LOGICAL_OR: "Or", Op.LOGICAL_XOR: "Xor"}
_REDUCE = {Op.REDUCE_PROD: "ReduceProd", Op.REDUCE_MAX: "ReduceMax",
           Op.REDUCE_MIN: "ReduceMin"}


class _Writer:
    """ONNX nodes and initializers for one graph; `name(node)` is a graph node's value."""

    def __init__(self):
        self.nodes, self.initializers, self.names = [], [], {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def emit(self, op_type: str, inputs, hint: str = "", **attrs) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def const(self, value, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, values, hint: str = "ints") -> str:
        return self.const(np.asarray(list(values), np.int64), hint)


def _scalar_like(w: _Writer, value, node) -> str:
    return w.const(np.asarray(value, node.dtype.numpy), "scalar")


def _emit(w: _Writer, node) -> str:
    ins = [w.names[i.id] for i in node.inputs]
    op, a = node.op, node.attrs
    if op in _UNARY:
        return w.emit(_UNARY[op], ins)
    if op in _BINARY:
        return w.emit(_BINARY[op], ins)
    if op is Op.NE:
        return w.emit("Not", [w.emit("Equal", ins)])
    if op is Op.EXPM1:
        return w.emit("Sub", [w.emit("Exp", ins), _scalar_like(w, 1, node)])
    if op is Op.LOG1P:
        return w.emit("Log", [w.emit("Add", [ins[0], _scalar_like(w, 1, node)])])
    if op is Op.ERFC:
        return w.emit("Sub", [_scalar_like(w, 1, node), w.emit("Erf", ins)])
    if op is Op.RSQRT:
        return w.emit("Reciprocal", [w.emit("Sqrt", ins)])
    if op is Op.IS_FINITE:
        return w.emit("Not", [w.emit("Or", [w.emit("IsNaN", ins), w.emit("IsInf", ins)])])
    if op is Op.REM:
        return w.emit("Mod", ins, fmod=1)
    if op is Op.SELECT:
        return w.emit("Where", ins)
    if op is Op.CONVERT:
        return w.emit("Cast", ins, to=dtypes.to_onnx(a["dtype"]))
    if op is Op.IOTA:
        shape, dim = tuple(a["shape"]), a["dimension"]
        index = np.arange(shape[dim]).reshape([-1 if i == dim else 1 for i in range(len(shape))])
        return w.const(np.broadcast_to(index, shape).astype(node.dtype.numpy), "iota")
    if op is Op.BROADCAST_IN_DIM:
        shape, dims = tuple(a["shape"]), tuple(a["broadcast_dimensions"])
        src = node.inputs[0].shape
        lifted = [1] * len(shape)
        for s, d in zip(src, dims):
            lifted[d] = s
        x = w.emit("Reshape", [ins[0], w.ints(lifted)]) if tuple(lifted) != src else ins[0]
        return w.emit("Expand", [x, w.ints(shape)])
    if op is Op.RESHAPE:
        return w.emit("Reshape", [ins[0], w.ints(node.shape)])
    if op is Op.TRANSPOSE:
        return w.emit("Transpose", ins, perm=list(a["permutation"]))
    if op is Op.SLICE:
        n = len(a["start_indices"])
        steps = a["strides"] or [1] * n
        return w.emit("Slice", [ins[0], w.ints(a["start_indices"]), w.ints(a["limit_indices"]),
                                w.ints(range(n)), w.ints(steps)])
    if op is Op.REVERSE:
        axes = list(a["axes"])
        big = np.iinfo(np.int64)
        return w.emit("Slice", [ins[0], w.ints([-1] * len(axes)), w.ints([big.min] * len(axes)),
                                w.ints(axes), w.ints([-1] * len(axes))])
    if op is Op.PAD:
        config = a["padding_config"]
        if any(c[2] for c in config):
            raise OnnxExportError("interior padding has no ONNX form")
        pads = [c[0] for c in config] + [c[1] for c in config]
        return w.emit("Pad", [ins[0], w.ints(pads), _scalar_like(w, a["value"], node)])
    if op is Op.CONCATENATE:
        return w.emit("Concat", ins, axis=a["axis"])
    if op is Op.REDUCE_SUM:
        return w.emit("ReduceSum", [ins[0], w.ints(a["axes"])], keepdims=0)
    if op in _REDUCE:
        return w.emit(_REDUCE[op], ins, axes=list(a["axes"]), keepdims=0)
    if op in (Op.REDUCE_AND, Op.REDUCE_OR):
        as_int = w.emit("Cast", ins, to=onnx.TensorProto.INT32)
        red = w.emit("ReduceMin" if op is Op.REDUCE_AND else "ReduceMax", [as_int],
                     axes=list(a["axes"]), keepdims=0)
        return w.emit("Cast", [red], to=onnx.TensorProto.BOOL)
    if op in (Op.ARGMAX, Op.ARGMIN):
        out = w.emit("ArgMax" if op is Op.ARGMAX else "ArgMin", ins, axis=a["axis"], keepdims=0)
        return w.emit("Cast", [out], to=dtypes.to_onnx(node.dtype))
    if op is Op.CUMSUM:
        return w.emit("CumSum", [ins[0], w.const(np.int64(a["axis"]), "axis")],
                      reverse=int(bool(a["reverse"])))
    if op is Op.DOT_GENERAL:
        return _dot_general(w, node, ins)
    if op is Op.CONV_GENERAL:
        return _conv(w, node, ins)
    if op in (Op.REDUCE_WINDOW_MAX, Op.REDUCE_WINDOW_SUM):
        return _pool(w, node, ins)
    raise OnnxExportError(f"{op.value} has no ONNX form in this exporter")


def _dot_general(w, node, ins):
    """Batch axes first, then free, then contracted: one batched MatMul, reshaped back."""
    a = node.attrs
    lhs, rhs = node.inputs
    lb, rb = list(a["lhs_batch"]), list(a["rhs_batch"])
    lc, rc = list(a["lhs_contracting"]), list(a["rhs_contracting"])
    lf = [d for d in range(lhs.ndim) if d not in lb + lc]
    rf = [d for d in range(rhs.ndim) if d not in rb + rc]
    batch = [lhs.shape[d] for d in lb]
    m, n = math.prod(lhs.shape[d] for d in lf), math.prod(rhs.shape[d] for d in rf)
    k = math.prod(lhs.shape[d] for d in lc)
    if lhs.dtype is not node.dtype:  # a preferred_element_type: widen the operands first
        ins = [w.emit("Cast", [i], to=dtypes.to_onnx(node.dtype)) for i in ins]
    x = w.emit("Transpose", [ins[0]], perm=lb + lf + lc)
    x = w.emit("Reshape", [x, w.ints(batch + [m, k])])
    y = w.emit("Transpose", [ins[1]], perm=rb + rc + rf)
    y = w.emit("Reshape", [y, w.ints(batch + [k, n])])
    out = w.emit("MatMul", [x, y])
    return w.emit("Reshape", [out, w.ints(node.shape)])


def _conv(w, node, ins):
    a = node.attrs
    n = node.ndim - 2
    if any(d != 1 for d in a["lhs_dilation"] or [1] * n) or a["batch_group_count"] != 1:
        raise OnnxExportError("convolutions with input dilation or batch groups have no ONNX "
                              "Conv form")
    pads = [p[0] for p in a["padding"]] + [p[1] for p in a["padding"]] if a["padding"] \
        else [0] * (2 * n)
    lhs_order, rhs_order, out_order = a["dimension_numbers"]  # ONNX Conv is NCHW / OIHW
    ins = [w.emit("Transpose", [i], perm=list(order)) if list(order) != sorted(order) else i
           for i, order in zip(ins, (lhs_order, rhs_order))]
    out = w.emit("Conv", ins, strides=list(a["window_strides"] or [1] * n), pads=pads,
                 dilations=list(a["rhs_dilation"] or [1] * n), group=a["feature_group_count"])
    if list(out_order) == sorted(out_order):
        return out
    return w.emit("Transpose", [out], perm=[list(out_order).index(i) for i in range(n + 2)])


def _pool(w, node, ins):
    a = node.attrs
    window, strides = list(a["window_dimensions"]), list(a["window_strides"] or [1] * node.ndim)
    padding = a["padding"] or [(0, 0)] * node.ndim
    if node.ndim < 3 or window[:2] != [1, 1] or strides[:2] != [1, 1] or \
            any(tuple(p) != (0, 0) for p in padding[:2]):
        raise OnnxExportError("windows over the batch or channel axes have no ONNX pooling form")
    if set(a["base_dilation"]) != {1} or set(a["window_dilation"]) != {1}:
        raise OnnxExportError(f"{node.op.value} with base_dilation {a['base_dilation']} or "
                              f"window_dilation {a['window_dilation']} is not exported to ONNX")
    pads = [p[0] for p in padding[2:]] + [p[1] for p in padding[2:]]
    if node.op is Op.REDUCE_WINDOW_MAX:
        return w.emit("MaxPool", ins, kernel_shape=window[2:], strides=strides[2:], pads=pads)
    mean = w.emit("AveragePool", ins, kernel_shape=window[2:], strides=strides[2:], pads=pads,
                  count_include_pad=1)
    return w.emit("Mul", [mean, _scalar_like(w, math.prod(window), node)])


def _onnx_dims(dims: Sequence[DimLike]) -> list[int]:
    return [symbolic.static(d, "an ONNX value's dimension") for d in dims]


def to_model(graph: G.Graph, input_names: Sequence[str] | None = None,
             output_names: Sequence[str] | None = None) -> onnx.ModelProto:
    """The ONNX model of a traced graph.

    Raises:
        OnnxExportError: naming the graph node whose primitive has no ONNX form.
        NotImplementedError: the graph has symbolic dims (their ONNX form, dim_param
            inputs with Shape-computed reshapes, is not built); bind it first.
    """
    if graph.symbols:
        raise NotImplementedError(f"ONNX export of symbolic dimensions "
                                  f"({', '.join(graph.symbols)}) is not built; export "
                                  f"graph.bind({{...}}) with concrete sizes")
    w = _Writer()
    inputs = []
    for i, p in enumerate(graph.parameters):
        name = (input_names or [])[i] if input_names and i < len(input_names) else \
            p.attrs.get("name") or f"input_{i}"
        w.names[p.id] = name
        inputs.append(helper.make_tensor_value_info(name, dtypes.to_onnx(p.dtype),
                                                    _onnx_dims(p.shape)))
    for node in graph.nodes:
        if node.op is Op.PARAMETER:
            continue
        if node.op is Op.CONSTANT:
            w.names[node.id] = w.const(node.attrs["value"], "const")
            continue
        try:
            w.names[node.id] = _emit(w, node)
        except OnnxExportError as e:
            raise OnnxExportError(f"graph node #{node.id} {node.op.value} {node.spec} "
                                  f"({node.source}): {e}") from None
    outputs = []
    for i, o in enumerate(graph.outputs):
        name = (output_names or [])[i] if output_names and i < len(output_names) else \
            f"output_{i}"
        w.nodes.append(helper.make_node("Identity", [w.names[o.id]], [name], name=name))
        outputs.append(helper.make_tensor_value_info(name, dtypes.to_onnx(o.dtype),
                                                     _onnx_dims(o.shape)))
    model = helper.make_model(helper.make_graph(w.nodes, graph.name or "mlframework", inputs,
                                                outputs, w.initializers),
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="mlframework")
    onnx.checker.check_model(model, full_check=True)
    return model


def export(fn: Callable[..., Any], example_inputs: Sequence[Any],
           path: str | os.PathLike | None = None, *, ctx: Context | None = None,
           input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None) -> onnx.ModelProto:
    """Writes `fn` traced on `example_inputs` (arrays, Tensors or Shapes) as ONNX to
    `path` (when given) and returns the ModelProto.

    `fn(*inputs)` is a graph function; with `ctx`, `fn(ctx, *inputs)` is a model whose
    variables (read from ctx) become initializers.

    Raises:
        OnnxExportError: a primitive without an ONNX form, naming the graph node.
    """
    specs = [x if isinstance(x, Shape) else (x if isinstance(x, Tensor) else Tensor(x)).spec
             for x in example_inputs]
    traced = fn if ctx is None else (lambda *xs: fn(ctx, *xs))
    graph = G.Exec(None, traced, name=getattr(fn, "__name__", "model")).graph(*specs)
    model = to_model(graph, input_names, output_names)
    if path is not None:
        onnx.save(model, str(path))
    return model
