"""Vector-Jacobian product rules, one per differentiable primitive.

A rule is either a function of the node and the cotangent `g` of its output
returning one cotangent per input (None for inputs without one), or, for ops
with several differentiable inputs, a tuple of such functions, one per input,
each returning that input's cotangent (None: not differentiable), so that
`input_cotangents` builds only the ones autodiff needs. Rules are written with
the public op functions, so gradients are ordinary graph nodes. Contractions,
windows, gathers and scatters live in `vjp_contraction.py`, cholesky and
triangular_solve in `vjp_linalg.py`, control flow in
`vjp_control_flow.py`; `RULES` holds
them all (a test checks every differentiable op has one).
"""
from __future__ import annotations

import math

import numpy as np

from mlframework.core.symbolic import is_symbolic
from mlframework.graph import gen_ops as ops
from mlframework.graph import vjp_contraction, vjp_control_flow, vjp_linalg
from mlframework.graph.composites import where, zeros_like
from mlframework.graph.gen_optypes import Op
from mlframework.graph.layout import take_along_axis


def _x(node):
    return node.inputs[0]


def _y(node):
    return node.inputs[1]


def _pow_x_vjp(node, g):
    x, y = node.inputs
    return g * y * ops.pow(x, y - 1)


def _pow_y_vjp(node, g):
    x = _x(node)
    return g * ops.log(where(ops.eq(x, 0), 1, x)) * node  # 0 where x == 0, as JAX


def _minmax_x_weight(node):
    """1 where x is the max (min), 1/2 on ties, else 0 (ties split the gradient, as JAX)."""
    x, y = node.inputs
    pick = ops.gt if node.op is Op.MAX else ops.lt
    return ops.convert(pick(x, y), x.dtype) + ops.convert(ops.eq(x, y), x.dtype) * 0.5


def _rem_y_vjp(node, g):
    x, y = node.inputs
    q = ops.div(x, y)
    return -g * ops.sign(q) * ops.floor(ops.abs(q))  # -g * trunc(x / y)


def _norm2(node):
    x, y = node.inputs
    return x * x + y * y


def _convert_vjp(node, g):
    x = _x(node)
    return (ops.convert(g, x.dtype),) if x.dtype.is_float else (None,)


def _broadcast_in_dim_vjp(node, g):
    x, dims = _x(node), node.attrs["broadcast_dimensions"]
    summed = [a for a in range(g.ndim) if a not in dims]
    summed += [dims[i] for i, d in enumerate(x.shape) if d == 1 and g.shape[dims[i]] != 1]
    out = ops.reduce_sum(g, sorted(summed)) if summed else g
    return (ops.reshape(out, x.shape),)


def _transpose_vjp(node, g):
    perm = node.attrs["permutation"]
    return (ops.transpose(g, [perm.index(i) for i in range(len(perm))]),)


def _slice_vjp(node, g):
    x, a = _x(node), node.attrs
    config = []
    for dim, lo, n, step in zip(x.shape, a["start_indices"], g.shape, a["strides"]):
        end = lo + (n - 1) * step + 1 if n else lo
        config.append((lo, dim - end, step - 1 if n else 0))
    return (ops.pad(g, config),)


def _pad_vjp(node, g):
    x, config = _x(node), node.attrs["padding_config"]
    uncropped = ops.pad(g, [(max(-lo, 0), max(-hi, 0), 0) for lo, hi, _ in config])
    starts = [max(lo, 0) for lo, _, _ in config]
    steps = [mid + 1 for _, _, mid in config]
    limits = [s + (d - 1) * t + 1 if d else s for s, d, t in zip(starts, x.shape, steps)]
    return (ops.slice(uncropped, starts, limits, steps),)


def _concatenate_vjp(node, g):
    axis, grads, offset = node.attrs["axis"], [], 0
    for x in node.inputs:
        starts = [0] * g.ndim
        limits = list(g.shape)
        starts[axis], limits[axis] = offset, offset + x.shape[axis]
        grads.append(ops.slice(g, starts, limits))
        offset += x.shape[axis]
    return grads


def _dynamic_slice_vjp(node, g):
    x, starts = node.inputs[0], node.inputs[1:]
    return (ops.dynamic_update_slice(zeros_like(x), g, starts), *[None] * len(starts))


def _dynamic_update_slice_vjp(node, g):
    update, starts = node.inputs[1], node.inputs[2:]
    dx = ops.dynamic_update_slice(g, zeros_like(update), starts)
    return (dx, ops.dynamic_slice(g, starts, update.shape), *[None] * len(starts))


def keep_axes(node, g):
    """g broadcast back over the axes that `node` (a reduction) removed (also used by the
    JVP rules)."""
    x, axes = _x(node), node.attrs["axes"]
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return ops.broadcast_in_dim(ops.reshape(g, kept), x.shape, tuple(range(x.ndim)))


def _reduce_sum_vjp(node, g):
    return (keep_axes(node, g),)


def _reduce_extremum_vjp(node, g):
    x = _x(node)
    hits = ops.convert(ops.eq(x, keep_axes(node, node)), g.dtype)
    count = keep_axes(node, ops.reduce_sum(hits, node.attrs["axes"]))
    return (keep_axes(node, g) * hits / count,)


def prod_partials(node):
    """d reduce_prod / dx, shaped like x: the product of the other elements of x's
    group, written without dividing by zero (also used by the JVP rule)."""
    x, axes = _x(node), node.attrs["axes"]
    is_zero = ops.eq(x, 0)
    zeros = keep_axes(node, ops.reduce_sum(ops.convert(is_zero, x.dtype), axes))
    others = keep_axes(node, ops.reduce_prod(where(is_zero, 1, x), axes))
    no_zero = others / where(is_zero, 1, x)
    one_zero = where(is_zero, others, 0)
    return where(ops.eq(zeros, 0), no_zero, where(ops.eq(zeros, 1), one_zero, 0))


def _reduce_prod_vjp(node, g):
    return (keep_axes(node, g) * prod_partials(node),)


def _cumsum_vjp(node, g):
    return (ops.cumsum(g, node.attrs["axis"], not node.attrs["reverse"]),)


def _cumprod_vjp(node, g):
    """dy_j/dx_i = prod(x_k, k <= j, k != i) for i <= j, zeros included: with Z_j the zeros
    up to j and P the cumprod of x with zeros as 1, it is P_j / x_i where Z_j = 0 and, at
    the first zero i, P_j where Z_j = 1 (0 everywhere else)."""
    x, axis, rev = _x(node), node.attrs["axis"], node.attrs["reverse"]
    zero = ops.eq(x, 0)
    safe = where(zero, 1, x)
    gp = g * ops.cumprod(safe, axis, rev)
    seen = ops.cumsum(ops.convert(zero, x.dtype), axis, rev)
    none = ops.cumsum(where(ops.eq(seen, 0), gp, 0), axis, not rev)
    first = ops.cumsum(where(ops.eq(seen, 1), gp, 0), axis, not rev)
    return (where(zero, first, none / safe),)


def _shift(x, axis, by, fill):
    """x moved `by` (1 or -1) places along `axis`, `fill` where nothing moved in."""
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (1, -1, 0) if by > 0 else (-1, 1, 0)
    return ops.pad(x, config, fill)


def extremum_starts(x, out, axis):
    """Where a forward cummax/cummin `out` of x takes a new value from x (bool, x's shape):
    the position whose input every output up to the next such position equals."""
    first = ops.eq(ops.iota("int32", x.shape, axis), 0)
    renewed = ops.logical_or(first, ops.ne(out, _shift(out, axis, 1, 0)))
    return ops.logical_and(ops.eq(x, out), renewed)


def _cumextremum_vjp(node, g):
    """Each output is the input where the running extremum was reached (the first of ties):
    such a start gets the sum of g over the outputs up to the next start (by suffix sums)."""
    x, axis, rev = _x(node), node.attrs["axis"], node.attrs["reverse"]
    out = node
    if rev:
        x, out, g = (ops.reverse(t, (axis,)) for t in (x, out, g))
    # "no next start": n, or for a symbolic n any larger index (take_along_axis clamps it
    # to n, the padded empty sum)
    n = x.shape[axis] if not is_symbolic(x.shape[axis]) else np.iinfo(np.int32).max
    pos = ops.iota("int32", x.shape, axis)
    starts = extremum_starts(x, out, axis)
    following = _shift(ops.cummin(where(starts, pos, n), axis, True), axis, -1, n)
    suffix = ops.cumsum(g, axis, True)
    ends = [(0, 1 if a == axis else 0, 0) for a in range(x.ndim)]  # index n: an empty sum
    grad = where(starts, suffix - take_along_axis(ops.pad(suffix, ends), following, axis), 0)
    return (ops.reverse(grad, (axis,)) if rev else grad,)


def _cumlogsumexp_vjp(node, g):
    """dx_i = sum(g_j exp(x_i - y_j), j >= i), in log space for g's positive and negative
    parts apart, so that nothing overflows."""
    x, axis, rev = _x(node), node.attrs["axis"], node.attrs["reverse"]
    parts = [ops.cumlogsumexp(ops.log(ops.max(part, 0)) - node, axis, not rev) for part in (g, -g)]
    return (ops.exp(x + parts[0]) - ops.exp(x + parts[1]),)


def _trigamma(x):
    """psi'(x), the derivative of digamma, as graph ops: reflection below 1/2 (psi'(x) =
    pi**2 / sin(pi x)**2 - psi'(1 - x)), the recurrence psi'(y) = psi'(y + 1) + 1/y**2 up to
    y + 10 and the asymptotic series 1/z + 1/(2z**2) + sum B_2k / z**(2k + 1) there."""
    reflect = ops.lt(x, 0.5)
    y = where(reflect, 1 - x, x)
    total = zeros_like(y)
    for k in range(10):
        total = total + 1 / ((y + k) * (y + k))
    z = y + 10
    w = 1 / (z * z)
    tail = 1 / 6 - w * (1 / 30 - w * (1 / 42 - w * (1 / 30 - w * (5 / 66))))
    total = total + 1 / z + w / 2 + w / z * tail
    sine = ops.sin(x * math.pi)
    return where(reflect, math.pi ** 2 / (sine * sine) - total, total)


def _sort_vjp(node, g):
    x, axis = _x(node), node.attrs["axis"]
    order = ops.argsort(x, axis, node.attrs["descending"])
    return (take_along_axis(g, ops.argsort(order, axis), axis),)


def input_cotangents(node, g, wants, reverse):
    """Cotangents of node's inputs given its output's cotangent `g`; None for inputs that
    have none. `wants[i]` says whether input i needs one (others may be skipped).
    `reverse` is the reverse pass over several outputs (`autodiff.vjp_outputs`), which
    the rules of control-flow ops run on their sub-graphs."""
    if node.op in vjp_control_flow.SUBGRAPH_RULES:
        return vjp_control_flow.SUBGRAPH_RULES[node.op](node, g, wants, reverse)
    rule = RULES[node.op]
    if callable(rule):
        return rule(node, g)
    return [r(node, g) if r is not None and want else None for r, want in zip(rule, wants)]


RULES: dict[Op, vjp_contraction.Rule] = {
    Op.ABS: lambda n, g: (where(_x(n) >= 0, g, 0 - g),),  # 1 at 0 and -0.0; +0 zeros: JAX
    Op.NEG: lambda n, g: (-g,),
    Op.EXP: lambda n, g: (g * n,),
    Op.EXPM1: lambda n, g: (g * (n + 1),),
    Op.LOG: lambda n, g: (g / _x(n),),
    Op.LOG1P: lambda n, g: (g / (_x(n) + 1),),
    Op.SQRT: lambda n, g: (g * 0.5 / n,),
    Op.RSQRT: lambda n, g: (g * -0.5 * n / _x(n),),
    Op.TANH: lambda n, g: (g * (1 - n * n),),
    Op.LOGISTIC: lambda n, g: (g * n * (1 - n),),
    Op.SIN: lambda n, g: (g * ops.cos(_x(n)),),
    Op.COS: lambda n, g: (-g * ops.sin(_x(n)),),
    Op.ERF: lambda n, g: (g * (2 / math.sqrt(math.pi)) * ops.exp(-_x(n) * _x(n)),),
    Op.ERFC: lambda n, g: (g * (-2 / math.sqrt(math.pi)) * ops.exp(-_x(n) * _x(n)),),
    Op.ERF_INV: lambda n, g: (g * (math.sqrt(math.pi) / 2) * ops.exp(n * n),),
    Op.TAN: lambda n, g: (g * (1 + n * n),),
    Op.ASIN: lambda n, g: (g * ops.rsqrt(1 - _x(n) * _x(n)),),
    Op.ACOS: lambda n, g: (-g * ops.rsqrt(1 - _x(n) * _x(n)),),
    Op.ATAN: lambda n, g: (g / (1 + _x(n) * _x(n)),),
    Op.SINH: lambda n, g: (g * ops.cosh(_x(n)),),
    Op.COSH: lambda n, g: (g * ops.sinh(_x(n)),),
    Op.ASINH: lambda n, g: (g * ops.rsqrt(_x(n) * _x(n) + 1),),
    Op.ACOSH: lambda n, g: (g * ops.rsqrt((_x(n) - 1) * (_x(n) + 1)),),
    Op.ATANH: lambda n, g: (g / ((1 - _x(n)) * (1 + _x(n))),),
    Op.LGAMMA: lambda n, g: (g * ops.digamma(_x(n)),),
    Op.DIGAMMA: lambda n, g: (g * _trigamma(_x(n)),),
    Op.CBRT: lambda n, g: (g / (3 * n * n),),
    Op.EXP2: lambda n, g: (g * n * math.log(2),),
    Op.LOG2: lambda n, g: (g / (_x(n) * math.log(2)),),
    Op.ADD: (lambda n, g: g, lambda n, g: g),
    Op.SUB: (lambda n, g: g, lambda n, g: -g),
    Op.MUL: (lambda n, g: g * _y(n), lambda n, g: g * _x(n)),
    Op.DIV: (lambda n, g: g / _y(n), lambda n, g: -g * n / _y(n)),
    Op.POW: (_pow_x_vjp, _pow_y_vjp),
    Op.MAX: (lambda n, g: g * _minmax_x_weight(n), lambda n, g: g * (1 - _minmax_x_weight(n))),
    Op.MIN: (lambda n, g: g * _minmax_x_weight(n), lambda n, g: g * (1 - _minmax_x_weight(n))),
    Op.REM: (lambda n, g: g, _rem_y_vjp),
    Op.ATAN2: (lambda n, g: g * _y(n) / _norm2(n), lambda n, g: -g * _x(n) / _norm2(n)),
    Op.SELECT: (None, lambda n, g: where(_x(n), g, 0), lambda n, g: where(_x(n), 0, g)),
    Op.CONVERT: _convert_vjp,
    Op.BROADCAST_IN_DIM: _broadcast_in_dim_vjp,
    Op.RESHAPE: lambda n, g: (ops.reshape(g, _x(n).shape),),
    Op.TRANSPOSE: _transpose_vjp,
    Op.SLICE: _slice_vjp,
    Op.PAD: _pad_vjp,
    Op.CONCATENATE: _concatenate_vjp,
    Op.REVERSE: lambda n, g: (ops.reverse(g, n.attrs["axes"]),),
    Op.DYNAMIC_SLICE: _dynamic_slice_vjp,
    Op.DYNAMIC_UPDATE_SLICE: _dynamic_update_slice_vjp,
    Op.REDUCE_SUM: _reduce_sum_vjp,
    Op.REDUCE_MAX: _reduce_extremum_vjp,
    Op.REDUCE_MIN: _reduce_extremum_vjp,
    Op.REDUCE_PROD: _reduce_prod_vjp,
    Op.CUMSUM: _cumsum_vjp,
    Op.CUMPROD: _cumprod_vjp,
    Op.CUMMAX: _cumextremum_vjp,
    Op.CUMMIN: _cumextremum_vjp,
    Op.CUMLOGSUMEXP: _cumlogsumexp_vjp,
    Op.SORT: _sort_vjp,
    **vjp_contraction.RULES,
    **vjp_linalg.RULES,
    **vjp_control_flow.RULES,  # type: ignore[dict-item]  # sub-graph rules take `reverse`
}
