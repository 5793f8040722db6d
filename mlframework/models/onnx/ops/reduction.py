"""Reductions: every Reduce* operator, ArgMax/ArgMin, TopK and CumSum.

Reduce* read their axes from the `axes` attribute (opset < 18, except
ReduceSum from 13) or from a constant second input; `keepdims` (default 1)
and `noop_with_empty_axes` (default 0) as ONNX defines them.
"""
from __future__ import annotations

import math

import numpy as np

from mlframework import graph as G
from mlframework.core.dtypes import finfo_max, finfo_min
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _axes(node, x) -> list[int] | None:
    """The reduced axes in [0, rank), or None when the node is a no-op."""
    if node.op_type == "ReduceSum" or node.opset >= 18:
        axes = node.const(1, "axes", None)
        axes = None if axes is None else [int(a) for a in np.ravel(axes)]
    else:
        axes = node.ints("axes", None)
    if not axes:
        return None if node.int("noop_with_empty_axes", 0) else list(range(x.ndim))
    return sorted({normalize_axis(node.op_type, a, x.ndim) for a in axes})


def _reduction(body):
    def convert(node, x, *_):
        x = as_node(x)
        axes = _axes(node, x)
        if axes is None:
            return body(x, [], True) if body is _sum_square else x
        return body(x, axes, bool(node.int("keepdims", 1)))
    return convert


def _empty(x, axes) -> bool:
    return any(x.shape[a] == 0 for a in axes)


def _sum(x, axes, keep):
    return G.reduce_sum(x, axes, keep)


def _mean(x, axes, keep):
    count = math.prod(x.shape[a] for a in axes)
    return G.div(G.reduce_sum(x, axes, keep), count)


def _max(x, axes, keep):
    if x.dtype.value == "bool":
        return G.reduce_or(x, axes, keep)
    if _empty(x, axes):
        return G.full(_kept(x, axes, keep), finfo_min(x.dtype), x.dtype)
    return G.reduce_max(x, axes, keep)


def _min(x, axes, keep):
    if x.dtype.value == "bool":
        return G.reduce_and(x, axes, keep)
    if _empty(x, axes):
        return G.full(_kept(x, axes, keep), finfo_max(x.dtype), x.dtype)
    return G.reduce_min(x, axes, keep)


def _kept(x, axes, keep):
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)


def _prod(x, axes, keep):
    return G.reduce_prod(x, axes, keep)


def _l1(x, axes, keep):
    return G.reduce_sum(G.abs(x), axes, keep)


def _l2(x, axes, keep):
    if x.dtype.is_int:
        return G.convert(G.sqrt(G.convert(G.reduce_sum(x * x, axes, keep), "float64")), x.dtype)
    return G.sqrt(G.reduce_sum(x * x, axes, keep))


def _log_sum(x, axes, keep):
    return G.log(G.reduce_sum(x, axes, keep))


def _log_sum_exp(x, axes, keep):
    if _empty(x, axes):
        return G.full(_kept(x, axes, keep), -np.inf, x.dtype)
    return G.logsumexp(x, tuple(axes), keep)


def _sum_square(x, axes, keep):
    return G.reduce_sum(x * x, axes, keep) if axes else x * x


def _arg(fn):
    def convert(node, x):
        x = as_node(x)
        axis = normalize_axis(node.op_type, node.int("axis", 0), x.ndim)
        last = node.int("select_last_index", 0)
        source = G.reverse(x, [axis]) if last else x
        if x.dtype.value == "bool":
            source = G.convert(source, "int8")
        index = fn(source, axis, "int64")
        if last:
            index = (x.shape[axis] - 1) - index
        return G.expand_dims(index, axis) if node.int("keepdims", 1) else index
    return convert


def _top_k(node, x, k):
    x = as_node(x)
    k = int(np.ravel(node.const(1, "K"))[0])
    axis = normalize_axis("TopK", node.int("axis", -1), x.ndim)
    largest = node.int("largest", 1)
    if not 0 <= k <= x.shape[axis]:
        raise OnnxImportError(f"K={k} must be in [0, {x.shape[axis]}] (the size of axis {axis})")
    perm = [d for d in range(x.ndim) if d != axis] + [axis]
    moved = G.transpose(x, perm) if axis != x.ndim - 1 else x
    order = G.argsort(moved, -1, descending=bool(largest), index_dtype="int64")
    indices = G.slice(order, [0] * x.ndim, moved.shape[:-1] + (k,))
    values = G.take_along_axis(moved, indices, -1)
    if axis != x.ndim - 1:
        back = np.argsort(perm).tolist()
        values, indices = G.transpose(values, back), G.transpose(indices, back)
    return values, indices


def _cum_sum(node, x, axis):
    x = as_node(x)
    axis = normalize_axis("CumSum", int(np.ravel(node.const(1, "axis"))[0]), x.ndim)
    reverse, exclusive = bool(node.int("reverse", 0)), node.int("exclusive", 0)
    out = G.cumsum(x, axis, reverse)
    if not exclusive:
        return out
    n = x.shape[axis]
    starts, limits = [0] * x.ndim, list(x.shape)
    pad = [(0, 0, 0)] * x.ndim
    if reverse:
        starts[axis] = min(1, n)
        pad[axis] = (0, min(1, n), 0)
    else:
        limits[axis] = max(n - 1, 0)
        pad[axis] = (min(1, n), 0, 0)
    return G.pad(G.slice(out, starts, limits), pad, 0)


def _cum_prod(node, x, axis):
    """Products of the prefixes along `axis`: the product over j of where(j <= i, x_j, 1),
    an n x n mask per row (n = the axis length)."""
    x = as_node(x)
    axis = normalize_axis("CumProd", int(np.ravel(node.const(1, "axis"))[0]), x.ndim)
    reverse, exclusive = bool(node.int("reverse", 0)), bool(node.int("exclusive", 0))
    n = x.shape[axis]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    keep = (j >= i if reverse else j <= i) & ((j != i) if exclusive else True)
    moved = G.expand_dims(G.transpose(x, [d for d in range(x.ndim) if d != axis] + [axis]), -2)
    full = G.broadcast_to(moved, moved.shape[:-2] + (n, n))
    out = G.reduce_prod(G.where(keep, full, G.ones_like(full)), [-1])
    back = list(range(x.ndim - 1))
    back.insert(axis, x.ndim - 1)
    return G.transpose(out, back)


OPS = {
    "ReduceSum": _reduction(_sum), "ReduceMean": _reduction(_mean),
    "ReduceMax": _reduction(_max), "ReduceMin": _reduction(_min),
    "ReduceProd": _reduction(_prod), "ReduceL1": _reduction(_l1), "ReduceL2": _reduction(_l2),
    "ReduceLogSum": _reduction(_log_sum), "ReduceLogSumExp": _reduction(_log_sum_exp),
    "ReduceSumSquare": _reduction(_sum_square),
    "ArgMax": _arg(G.argmax), "ArgMin": _arg(G.argmin), "TopK": _top_k, "CumSum": _cum_sum,
    "CumProd": _cum_prod,
}
