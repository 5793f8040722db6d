"""Jacobian-vector product rules, one per differentiable primitive.

A rule is a function `rule(node, tangents) -> Node`: `tangents` holds one entry
per input of `node`, the tangent node of that input (its shape and dtype) or
None where the input has none (an integer input, a value not depending on the
differentiated inputs); at least one entry is a node. It returns the tangent
of node's output, of node's shape and dtype. Rules are written with the public
op functions, so tangents are ordinary graph nodes that every backend runs.

Most primitives need one of four generic rules: `_diagonal` (elementwise ops,
whose derivative is written once, in their VJP rule), `_linear` (the op itself
applied to the tangents), `_bilinear` (contractions) and `_zero_padded` (pad).
To add a primitive: write its VJP rule in `vjp.py`, then add its row to `RULES`
below (a test checks that every differentiable op in the op table has one, and
that only the ops in `FORWARD_ONLY` have one without a VJP). Control flow is in
`jvp_control_flow.py` (`SUBGRAPH_RULES`, which also take the forward pass).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from mlframework.graph import gen_ops as ops
from mlframework.graph import jvp_control_flow, vjp, vjp_contraction, vjp_linalg
from mlframework.graph.composites import where, zeros_like
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import build
from mlframework.graph.layout import take_along_axis
from mlframework.graph.linalg import matmul


def _sum(terms):
    terms = [t for t in terms if t is not None]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _diagonal(node, tangents):
    """Elementwise ops: each input's Jacobian is diagonal, so its contribution is its VJP
    rule applied to its tangent."""
    rule = vjp.RULES[node.op]
    if callable(rule):  # one input
        return rule(node, tangents[0])[0]
    return _sum(r(node, t) for r, t in zip(rule, tangents) if r is not None and t is not None)


def _linear(node, tangents):
    """Ops linear in their float inputs: the same op over the tangents (zeros where an input
    has none), other inputs (indices, predicates) as they are."""
    inputs = [t if t is not None else zeros_like(x) if x.dtype.is_float else x
              for x, t in zip(node.inputs, tangents)]
    return build(node.op, inputs, node.attrs)


def _bilinear(node, tangents):
    """Ops linear in each of two inputs: d(a.b) = da.b + a.db."""
    lhs, rhs = node.inputs
    dl, dr = tangents
    return _sum([build(node.op, [dl, rhs], node.attrs) if dl is not None else None,
                 build(node.op, [lhs, dr], node.attrs) if dr is not None else None])


def _zero_padded(node, tangents):
    """pad is affine in x: the padding value's tangent is zero."""
    return ops.pad(tangents[0], node.attrs["padding_config"], 0)


def _reduce_extremum(node, tangents):
    """The mean of the tangents at the positions holding the extremum (ties split evenly)."""
    x, axes = node.inputs[0], node.attrs["axes"]
    hits = ops.convert(ops.eq(x, vjp.keep_axes(node, node)), x.dtype)
    return ops.reduce_sum(tangents[0] * hits, axes) / ops.reduce_sum(hits, axes)


def _reduce_prod(node, tangents):
    return ops.reduce_sum(tangents[0] * vjp.prod_partials(node), node.attrs["axes"])


def _sort(node, tangents):
    x, axis = node.inputs[0], node.attrs["axis"]
    return take_along_axis(tangents[0], ops.argsort(x, axis, node.attrs["descending"]), axis)


def _reduce_window_extremum(node, tangents):
    """Each window's tangent is that of its extremum, the first one in row-major window
    order on ties (as JAX, and the VJP's select_and_scatter_add). Built from one strided
    slice per window position, so the graph grows with the window's size."""
    x, a = node.inputs[0], node.attrs
    strides, dilation = a["window_strides"], a["window_dilation"]
    pads = [(lo, hi, b - 1) for (lo, hi), b in zip(a["padding"], a["base_dilation"])]
    fill = float("-inf") if node.op is Op.REDUCE_WINDOW_MAX else float("inf")
    padded_x, padded_t = ops.pad(x, pads, fill), ops.pad(tangents[0], pads, 0)
    total, taken = None, None
    for offset in itertools.product(*(range(w) for w in a["window_dimensions"])):
        starts = [o * d for o, d in zip(offset, dilation)]
        limits = [b + (n - 1) * s + 1 if n else b for b, n, s in zip(starts, node.shape, strides)]
        hit = ops.eq(ops.slice(padded_x, starts, limits, strides), node)
        if taken is not None:
            hit = ops.logical_and(hit, ops.logical_not(taken))
        taken = hit if taken is None else ops.logical_or(taken, hit)
        term = where(hit, ops.slice(padded_t, starts, limits, strides), 0)
        total = term if total is None else total + term
    return total


def _select_and_scatter_add(node, tangents):
    """Linear in the source; the positions x selects are piecewise constant in x, so x's
    tangent contributes nothing."""
    source, x = node.inputs
    ds = tangents[0] if tangents[0] is not None else zeros_like(source)
    return build(node.op, [ds, x], node.attrs)


def _scatter_dims(node):
    a = node.attrs
    return a["update_window_dims"], a["inserted_window_dims"], a["scatter_dims_to_operand_dims"]


def _scatter_mul(node, tangents):
    """d(x * prod u) = scatter_mul(dx, u) + x * scatter_add(du): the second term holds
    only for unique indices (as JAX)."""
    x, indices, updates = node.inputs
    dx, _, du = tangents
    if du is not None and not node.attrs["unique_indices"]:
        raise NotImplementedError(
            f"the jvp of scatter_mul with respect to its updates {updates.spec} is implemented "
            "only for unique indices (as in JAX): pass unique_indices=True when no index repeats")
    return _sum([build(node.op, [dx, indices, updates], node.attrs) if dx is not None else None,
                 x * ops.scatter_add(zeros_like(x), indices, du, *_scatter_dims(node))
                 if du is not None else None])


def _scatter_extremum(node, tangents):
    """The mean of the tangents of the elements equal to the result at each position."""
    x, indices, _ = node.inputs
    dx, _, du = tangents
    x_hits, u_hits, count = vjp_contraction.scatter_extremum_counts(node)
    return _sum([dx * x_hits if dx is not None else None,
                 ops.scatter_add(zeros_like(x), indices, du * u_hits, *_scatter_dims(node))
                 if du is not None else None]) / count


def _cumprod(node, tangents):
    """d y_j = sum(dx_i prod(x_k, k <= j, k != i), i <= j): P_j cumsum(dx / x)_j before the
    first zero, P_j dx(first zero) up to the second (P: the cumprod with zeros as 1)."""
    x, axis, rev = node.inputs[0], node.attrs["axis"], node.attrs["reverse"]
    dx = tangents[0]
    zero = ops.eq(x, 0)
    safe = where(zero, 1, x)
    seen = ops.cumsum(ops.convert(zero, x.dtype), axis, rev)
    none = ops.cumsum(dx / safe, axis, rev)
    first = ops.cumsum(where(zero, dx, 0), axis, rev)
    return ops.cumprod(safe, axis, rev) * where(ops.eq(seen, 0), none,
                                                where(ops.eq(seen, 1), first, 0))


def _cumextremum(node, tangents):
    """Each output's tangent is that of the input it equals (the first of ties)."""
    x, axis, rev = node.inputs[0], node.attrs["axis"], node.attrs["reverse"]
    dx, out = tangents[0], node
    if rev:
        x, out, dx = (ops.reverse(t, (axis,)) for t in (x, out, dx))
    pos = ops.iota("int32", x.shape, axis)
    source = ops.cummax(where(vjp.extremum_starts(x, out, axis), pos, 0), axis)
    tangent = take_along_axis(dx, source, axis)
    return ops.reverse(tangent, (axis,)) if rev else tangent


def _cumlogsumexp(node, tangents):
    """d y_j = sum(dx_i exp(x_i - y_j), i <= j), in log space for dx's positive and negative
    parts apart, so that nothing overflows."""
    x, axis, rev = node.inputs[0], node.attrs["axis"], node.attrs["reverse"]
    dx = tangents[0]
    parts = [ops.cumlogsumexp(ops.log(ops.max(part, 0)) + x, axis, rev) for part in (dx, -dx)]
    return ops.exp(parts[0] - node) - ops.exp(parts[1] - node)


def _cholesky(node, tangents):
    """dL = L Phi(L^-1 dS L^-T), with dS = tril(dx) + tril(dx, -1)^T (the matrix read)."""
    low, dx = node, tangents[0]
    strict = vjp_linalg.triangle(dx, True, -1)
    ds = vjp_linalg.triangle(dx, True) + vjp_linalg.transposed(strict)
    w = ops.triangular_solve(low, ds, left_side=True, lower=True)
    w = ops.triangular_solve(low, w, left_side=False, lower=True, transpose_a=True)
    return matmul(low, vjp_linalg.halved_lower(w))


def _triangular_solve(node, tangents):
    """op(a) dx = db - op(da) x (left_side) or dx op(a) = db - x op(da), da masked to the
    triangle that is read."""
    a, x = node.attrs, node
    da, db = tangents
    rhs = db
    if da is not None:
        op_da = vjp_linalg.read_triangle(node, da)
        op_da = vjp_linalg.transposed(op_da) if a["transpose_a"] else op_da
        moved = matmul(op_da, x) if a["left_side"] else matmul(x, op_da)
        rhs = -moved if rhs is None else rhs - moved
    return build(node.op, [node.inputs[0], rhs], node.attrs)


# Differentiable in forward mode only: while_loop (reverse mode needs a trip count, as in
# JAX) and select_and_scatter_add (max pooling's gradient, whose own VJP is not written).
FORWARD_ONLY = frozenset({Op.WHILE_LOOP, Op.SELECT_AND_SCATTER_ADD})
SUBGRAPH_RULES = jvp_control_flow.RULES

RULES: dict[Op, Callable[..., Any]] = {
    # elementwise: the derivative lives in the op's VJP rule
    Op.ABS: _diagonal,
    Op.NEG: _diagonal,
    Op.EXP: _diagonal,
    Op.EXPM1: _diagonal,
    Op.LOG: _diagonal,
    Op.LOG1P: _diagonal,
    Op.SQRT: _diagonal,
    Op.RSQRT: _diagonal,
    Op.TANH: _diagonal,
    Op.LOGISTIC: _diagonal,
    Op.SIN: _diagonal,
    Op.COS: _diagonal,
    Op.ERF: _diagonal,
    Op.ERFC: _diagonal,
    Op.ERF_INV: _diagonal,
    Op.ADD: _diagonal,
    Op.SUB: _diagonal,
    Op.MUL: _diagonal,
    Op.DIV: _diagonal,
    Op.POW: _diagonal,
    Op.MAX: _diagonal,
    Op.MIN: _diagonal,
    Op.REM: _diagonal,
    Op.ATAN2: _diagonal,
    Op.TAN: _diagonal,
    Op.ASIN: _diagonal,
    Op.ACOS: _diagonal,
    Op.ATAN: _diagonal,
    Op.SINH: _diagonal,
    Op.COSH: _diagonal,
    Op.ASINH: _diagonal,
    Op.ACOSH: _diagonal,
    Op.ATANH: _diagonal,
    Op.LGAMMA: _diagonal,
    Op.DIGAMMA: _diagonal,
    Op.CBRT: _diagonal,
    Op.EXP2: _diagonal,
    Op.LOG2: _diagonal,
    # linear in their float inputs
    Op.SELECT: _linear,
    Op.CONVERT: _linear,
    Op.BROADCAST_IN_DIM: _linear,
    Op.RESHAPE: _linear,
    Op.TRANSPOSE: _linear,
    Op.SLICE: _linear,
    Op.PAD: _zero_padded,
    Op.CONCATENATE: _linear,
    Op.REVERSE: _linear,
    Op.DYNAMIC_SLICE: _linear,
    Op.DYNAMIC_UPDATE_SLICE: _linear,
    Op.GATHER: _linear,
    Op.SCATTER_ADD: _linear,
    Op.SCATTER_SET: _linear,
    Op.REDUCE_SUM: _linear,
    Op.CUMSUM: _linear,
    Op.REDUCE_WINDOW_SUM: _linear,
    # their own rules
    Op.REDUCE_PROD: _reduce_prod,
    Op.REDUCE_MAX: _reduce_extremum,
    Op.REDUCE_MIN: _reduce_extremum,
    Op.SORT: _sort,
    Op.CUMPROD: _cumprod,
    Op.CUMMAX: _cumextremum,
    Op.CUMMIN: _cumextremum,
    Op.CUMLOGSUMEXP: _cumlogsumexp,
    Op.REDUCE_WINDOW_MAX: _reduce_window_extremum,
    Op.REDUCE_WINDOW_MIN: _reduce_window_extremum,
    Op.SELECT_AND_SCATTER_ADD: _select_and_scatter_add,
    Op.SCATTER_MUL: _scatter_mul,
    Op.SCATTER_MIN: _scatter_extremum,
    Op.SCATTER_MAX: _scatter_extremum,
    # contractions
    Op.DOT_GENERAL: _bilinear,
    Op.CONV_GENERAL: _bilinear,
    Op.CHOLESKY: _cholesky,
    Op.TRIANGULAR_SOLVE: _triangular_solve,
    # control flow
    **SUBGRAPH_RULES,
}
