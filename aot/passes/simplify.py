"""Pass `simplify`: algebraic identities, constant folding, CSE, dead-node removal.

    program = simplify(program)

Folding evaluates ops whose inputs are all small constants with NumPy and only
for ops whose NumPy meaning equals the graph's (exact arithmetic and data
movement); transcendental and integer-division ops are left to the kernels so
the result does not depend on which library computed it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from aot.passes.conv_layout import canonical_convs
from aot.passes.dot_widening import widen_half_dots
from aot.program.program import SUBGRAPH_OPS, Program, Value
from mlframework.core.dtypes import DType
from mlframework.core.symbolic import is_symbolic, nonnegative
from mlframework.graph.gen_optypes import Op

FOLD_MAX_ELEMENTS = 4096  # larger constants are not created by folding

# max(+0.0, -0.0) is +0.0 and min -0.0, as XLA (NumPy returns the first)
_FOLDERS: dict[Op, Callable[..., Any]] = {
    Op.ADD: lambda x, y, **_: x + y,  # exact in the operands' dtype (NumPy wraps ints too)
    Op.SUB: lambda x, y, **_: x - y,
    Op.MUL: lambda x, y, **_: x * y,
    Op.NEG: lambda x, **_: -x,
    Op.MAX: lambda x, y, **_: np.where(x == y, np.where(np.signbit(x), y, x), np.maximum(x, y)),
    Op.MIN: lambda x, y, **_: np.where(x == y, np.where(np.signbit(x), x, y), np.minimum(x, y)),
    Op.EQ: lambda x, y, **_: x == y,
    Op.NE: lambda x, y, **_: x != y,
    Op.LT: lambda x, y, **_: x < y,
    Op.LE: lambda x, y, **_: x <= y,
    Op.GT: lambda x, y, **_: x > y,
    Op.GE: lambda x, y, **_: x >= y,
    Op.SELECT: lambda p, t, f, **_: np.where(p, t, f),
    Op.BROADCAST_IN_DIM: lambda x, shape, broadcast_dimensions: np.broadcast_to(
        x.reshape([x.shape[broadcast_dimensions.index(d)] if d in broadcast_dimensions else 1
                   for d in range(len(shape))]), shape),
    Op.RESHAPE: lambda x, shape: x.reshape(shape),
    Op.TRANSPOSE: lambda x, permutation: np.transpose(x, permutation),
    Op.REVERSE: lambda x, axes: np.flip(x, axes) if axes else x,
    Op.STOP_GRADIENT: lambda x: x,
}


def simplify(program: Program) -> Program:
    """A program computing the same outputs with fewer nodes.

    Parameters are always kept (callers pass them positionally). Convolutions are first put
    in the canonical layouts (`aot.passes.conv_layout`) and half-precision dots widened to
    float32 ones (`aot.passes.dot_widening`), so that transposed or converted constant
    weights fold here.
    """
    program = widen_half_dots(canonical_convs(program))
    values: dict[int, Value] = {}
    users = program.consumers()
    alias: dict[int, int] = {}   # old id -> id of the value that replaces it
    seen: dict[tuple, int] = {}  # CSE key -> id
    for v in program.values.values():
        v = Value(v.id, v.op, tuple(alias.get(i, i) for i in v.inputs), v.attrs, v.dtype,
                  v.shape, v.source, v.scope)
        same = _identity(v, values)  # an id, possibly 0: compared with None, not truth
        if same is None:
            same = _fold(v, values) or _transposed_dot(v, values, users)
        if isinstance(same, int):
            alias[v.id] = same
            continue
        if isinstance(same, Value):
            v = same
        key = _cse_key(v)
        if key is not None and key in seen:
            alias[v.id] = seen[key]
            continue
        if key is not None:
            seen[key] = v.id
        values[v.id] = v
    outputs = [alias.get(o, o) for o in program.outputs]
    live = _live(values, outputs, program.params)
    out = Program(program.name, {i: v for i, v in values.items() if i in live},
                  list(program.params), outputs, dict(program.symbols))
    return out


def _identity(v: Value, values: dict[int, Value]):
    """An input id that `v` equals, or None."""
    ins = [values[i] for i in v.inputs]
    if v.op is Op.STOP_GRADIENT:
        return v.inputs[0]  # x -> x (gradients are already taken)
    if v.op in (Op.RESHAPE, Op.BROADCAST_IN_DIM) and ins[0].shape == v.shape:
        return v.inputs[0]  # reshape/broadcast to the same dims -> x
    if v.op is Op.TRANSPOSE and tuple(v.attrs["permutation"]) == tuple(range(len(v.shape))):
        return v.inputs[0]  # identity permutation -> x
    if v.op is Op.CONVERT and ins[0].dtype is v.dtype:
        return v.inputs[0]  # convert to own dtype -> x
    if v.op is Op.REVERSE and not v.attrs["axes"]:
        return v.inputs[0]
    if v.op is Op.RESHAPE and ins[0].op is Op.RESHAPE:  # reshape(reshape(x)) -> reshape(x)
        return Value(v.id, v.op, ins[0].inputs, v.attrs, v.dtype, v.shape, v.source, v.scope)
    if v.op in (Op.MUL, Op.ADD) and v.dtype.is_float:
        unit = 1.0 if v.op is Op.MUL else None
        for a, b in ((0, 1), (1, 0)):
            c = _scalar_const(ins[b])
            if c is not None and unit is not None and c == unit and ins[a].shape == v.shape:
                return v.inputs[a]  # x*1 -> x
    return None


def _transposed_dot(v: Value, values: dict[int, Value], users) -> Value | None:
    """transpose(dot_general(a, b)) that swaps the free axes -> dot_general(b, a).

    Autodiff writes weight gradients this way (dW = transpose(g^T x)); the swapped
    contraction writes the gradient in the weight's layout, so the optimizer
    update that reads it is elementwise (and becomes the GEMM's epilogue) instead
    of a strided transposed read. Only when the dot has no other reader and the
    new GEMM keeps at least 16 columns (narrower ones use slower tiles).
    """
    if v.op is not Op.TRANSPOSE:
        return None
    d = values[v.inputs[0]]
    if d.op is not Op.DOT_GENERAL or users.get(d.id) != [v.id]:
        return None
    a = d.attrs
    lhs, rhs = values[d.inputs[0]], values[d.inputs[1]]
    nb = len(a["lhs_batch"])
    n_lf = len(lhs.shape) - nb - len(a["lhs_contracting"])
    n_rf = len(rhs.shape) - nb - len(a["rhs_contracting"])
    want = list(range(nb)) + list(range(nb + n_lf, nb + n_lf + n_rf)) + list(range(nb, nb + n_lf))
    if list(v.attrs["permutation"]) != want or n_lf == 0 or n_rf == 0:
        return None
    if not nonnegative(math.prod(d.shape[nb:nb + n_lf]) - 16):  # (or not provably >= 16)
        return None
    attrs = dict(a, lhs_batch=a["rhs_batch"], rhs_batch=a["lhs_batch"],
                 lhs_contracting=a["rhs_contracting"], rhs_contracting=a["lhs_contracting"])
    return Value(v.id, Op.DOT_GENERAL, (d.inputs[1], d.inputs[0]), attrs, v.dtype, v.shape,
                 v.source, v.scope)


def _scalar_const(v: Value):
    if v.op is not Op.CONSTANT:
        return None
    a = v.attrs["value"]
    if a.size == 0:
        return None
    flat = a.reshape(-1)
    return flat[0] if (flat == flat[0]).all() else None


def _fold(v: Value, values: dict[int, Value]):
    """A constant Value replacing `v` when all its inputs are small constants."""
    fold = _FOLDERS.get(v.op)
    if v.op is Op.CONVERT and v.dtype is not DType.BOOL and v.dtype.is_float:
        fold = lambda x, dtype: x  # noqa: E731  int/float -> float is exact rounding in NumPy
    if fold is None or is_symbolic(v.size) or v.size > FOLD_MAX_ELEMENTS \
            or v.dtype in (DType.FLOAT16, DType.BFLOAT16):
        return None
    ins = [values[i] for i in v.inputs]
    if not all(i.op is Op.CONSTANT for i in ins):
        return None
    try:
        out = np.asarray(fold(*[i.attrs["value"] for i in ins], **v.attrs))
    except (ValueError, TypeError):
        return None
    out = np.array(out.astype(v.dtype.numpy).reshape(v.shape), order="C")
    out.flags.writeable = False
    return Value(v.id, Op.CONSTANT, (), {"value": out}, v.dtype, v.shape, v.source, v.scope)


def _cse_key(v: Value):
    if v.op is Op.PARAMETER or v.op in SUBGRAPH_OPS:
        return None
    parts = []
    for k, a in sorted(v.attrs.items()):
        if isinstance(a, np.ndarray):
            if a.size > FOLD_MAX_ELEMENTS:
                return None  # big constants are distinct values; hashing them is not worth it
            a = (a.dtype.str, a.shape, a.tobytes())
        parts.append((k, repr(a)))
    return (v.op, v.inputs, v.dtype, v.shape, tuple(parts))


def _live(values: dict[int, Value], outputs: list[int], params: list[int]) -> set[int]:
    live = set(outputs) | set(params)
    for v in reversed(list(values.values())):
        if v.id in live:
            live.update(v.inputs)
    return live
