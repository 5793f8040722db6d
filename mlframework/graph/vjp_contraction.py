"""VJP rules of contractions, windows, gathers and scatters.

The convolution and window rules follow the standard transposition of a
convolution (as in JAX): the input gradient is a convolution of the
cotangent with the reversed kernel, the kernel gradient a convolution of the
input with the cotangent, both with strides and dilations swapped.
"""
from __future__ import annotations

import numpy as np

from mlframework.graph import gen_ops as ops
from mlframework.graph.broadcasting import broadcast_to
from mlframework.graph.composites import zeros_like
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import const


def _dot_general_vjp(node, g):
    lhs, rhs = node.inputs
    a = node.attrs
    lc, rc, lb, rb = a["lhs_contracting"], a["rhs_contracting"], a["lhs_batch"], a["rhs_batch"]
    nb = len(lb)
    l_free = [i for i in range(lhs.ndim) if i not in lc + lb]
    r_free = [i for i in range(rhs.ndim) if i not in rc + rb]
    g_l_free = list(range(nb, nb + len(l_free)))
    g_r_free = list(range(nb + len(l_free), g.ndim))
    d_lhs = ops.dot_general(g, rhs, g_r_free, r_free, range(nb), rb)
    l_axes = list(lb) + l_free + [lc[rc.index(i)] for i in sorted(rc)]
    d_rhs = ops.dot_general(g, lhs, g_l_free, l_free, range(nb), lb)
    r_axes = list(rb) + r_free + [rc[lc.index(i)] for i in sorted(lc)]
    return (ops.transpose(d_lhs, [l_axes.index(i) for i in range(lhs.ndim)]),
            ops.transpose(d_rhs, [r_axes.index(i) for i in range(rhs.ndim)]))


def _dilate(sizes, factors):
    return [0 if s == 0 else 1 + f * (s - 1) for s, f in zip(sizes, factors)]


def _lhs_padding(in_sizes, window, strides, out_sizes, padding, lhs_dil, rhs_dil):
    """Padding of the cotangent for the input-gradient convolution."""
    lhs_d, rhs_d, out_d = _dilate(in_sizes, lhs_dil), _dilate(window, rhs_dil), \
        _dilate(out_sizes, strides)
    before = [r - lo - 1 for r, (lo, _) in zip(rhs_d, padding)]
    after = [l + r - 1 - o - b for l, r, o, b in zip(lhs_d, rhs_d, out_d, before)]
    return list(zip(before, after))


def _rhs_padding(in_sizes, window, strides, out_sizes, padding, lhs_dil, rhs_dil):
    """Padding of the input for the kernel-gradient convolution."""
    lhs_d, rhs_d, out_d = _dilate(in_sizes, lhs_dil), _dilate(window, rhs_dil), \
        _dilate(out_sizes, strides)
    return [(lo, o - l + r - lo - 1) for l, r, o, (lo, _) in zip(lhs_d, rhs_d, out_d, padding)]


def _swap01(x):
    return ops.transpose(x, [1, 0, *range(2, x.ndim)])


def _split_axis(x, axis, groups):
    """Reshapes axis `axis` of size n into (groups, n // groups)."""
    shape = list(x.shape)
    shape[axis:axis + 1] = [groups, shape[axis] // groups]
    return ops.reshape(x, shape)


def _merge_axis(x, src, dst):
    """Moves axis `src` next to (before) axis `dst` of the rest and merges them."""
    rest = [i for i in range(x.ndim) if i != src]
    perm = rest[:dst] + [src] + rest[dst:]
    moved = ops.transpose(x, perm)
    shape = [x.shape[i] for i in rest]
    shape[dst] *= x.shape[src]
    return ops.reshape(moved, shape)


def _conv_general_vjp(node, g):
    lhs, rhs = node.inputs
    a = node.attrs
    strides, padding = a["window_strides"], a["padding"]
    lhs_dil, rhs_dil = a["lhs_dilation"], a["rhs_dilation"]
    groups, batch_groups = a["feature_group_count"], a["batch_group_count"]
    spatial = range(2, lhs.ndim)

    kernel = rhs
    lhs_groups = groups
    if groups > 1 or batch_groups > 1:
        lhs_groups = max(groups, batch_groups)
        kernel = _merge_axis(_split_axis(kernel, 0, lhs_groups), 0, 1)
    pads = _lhs_padding(lhs.shape[2:], rhs.shape[2:], strides, g.shape[2:], padding, lhs_dil,
                        rhs_dil)
    d_lhs = ops.conv_general(g, _swap01(ops.reverse(kernel, spatial)), lhs_dil, pads, strides,
                             rhs_dil, lhs_groups, 1)
    if batch_groups > 1:
        d_lhs = _merge_axis(_split_axis(d_lhs, 1, batch_groups), 1, 0)

    if g.size == 0:
        return d_lhs, zeros_like(rhs)
    pads = _rhs_padding(lhs.shape[2:], rhs.shape[2:], strides, g.shape[2:], padding, lhs_dil,
                        rhs_dil)
    fg, bg = (batch_groups, 1) if batch_groups > 1 else (1, groups)
    d_rhs = ops.conv_general(_swap01(lhs), _swap01(g), rhs_dil, pads, lhs_dil, strides, fg, bg)
    return d_lhs, _swap01(d_rhs)


def _reduce_window_sum_vjp(node, g):
    x, a = node.inputs[0], node.attrs
    window, strides = a["window_dimensions"], a["window_strides"]
    ones = (1,) * x.ndim
    pads = _lhs_padding(x.shape, window, strides, g.shape, a["padding"], ones, ones)
    padded = ops.pad(g, [(lo, hi, s - 1) for (lo, hi), s in zip(pads, strides)])
    return (ops.reduce_window_sum(padded, window, ones, [(0, 0)] * x.ndim),)


def _reduce_window_max_vjp(node, g):
    x, a = node.inputs[0], node.attrs
    return (ops.select_and_scatter_add(g, x, a["window_dimensions"], a["window_strides"],
                                       a["padding"]),)


def _highest_starts(indices, operand_shape, dims, window_sizes):
    """The largest in-bounds start index per index-vector entry, broadcast like `indices`."""
    hi = np.array([operand_shape[d] - window_sizes[d] for d in dims], indices.dtype.numpy)
    return broadcast_to(const(hi, graph=indices.graph), indices.shape)


def _in_bounds(indices, operand_shape, dims, window_sizes):
    """bool[batch...]: whether each index vector keeps its window inside the operand."""
    vec = _highest_starts(indices, operand_shape, dims, window_sizes)
    ok = ops.logical_and(ops.ge(indices, 0), ops.le(indices, vec))
    return ops.reduce_and(ok, [indices.ndim - 1])


def _gather_vjp(node, g):
    x, indices = node.inputs
    a = node.attrs
    sizes, index_map = a["slice_sizes"], a["start_index_map"]
    hi = _highest_starts(indices, x.shape, index_map, sizes)
    clamped = ops.min(ops.max(indices, 0), hi)
    dx = ops.scatter_add(zeros_like(x), clamped, g, a["offset_dims"], a["collapsed_slice_dims"],
                         index_map)
    return dx, None


def _scatter_updates_vjp(node, g):
    """Cotangent of the updates: g gathered at the scatter positions (0 if dropped)."""
    x, indices, updates = node.inputs
    a = node.attrs
    window_dims, inserted = a["update_window_dims"], a["inserted_window_dims"]
    window_sizes = iter(updates.shape[d] for d in window_dims)
    sizes = [1 if d in inserted else next(window_sizes) for d in range(x.ndim)]
    gathered = ops.gather(g, indices, window_dims, inserted, a["scatter_dims_to_operand_dims"],
                          sizes)
    ok = _in_bounds(indices, x.shape, a["scatter_dims_to_operand_dims"], sizes)
    batch_axes = [d for d in range(updates.ndim) if d not in window_dims]
    mask = ops.broadcast_in_dim(ok, updates.shape, batch_axes)
    return ops.select(mask, gathered, zeros_like(gathered))


def _scatter_add_vjp(node, g):
    return g, None, _scatter_updates_vjp(node, g)


def _scatter_set_vjp(node, g):
    x, indices, updates = node.inputs
    a = node.attrs
    dx = ops.scatter_set(g, indices, zeros_like(updates), a["update_window_dims"],
                         a["inserted_window_dims"], a["scatter_dims_to_operand_dims"])
    return dx, None, _scatter_updates_vjp(node, g)


RULES = {
    Op.DOT_GENERAL: _dot_general_vjp,
    Op.CONV_GENERAL: _conv_general_vjp,
    Op.REDUCE_WINDOW_SUM: _reduce_window_sum_vjp,
    Op.REDUCE_WINDOW_MAX: _reduce_window_max_vjp,
    Op.GATHER: _gather_vjp,
    Op.SCATTER_ADD: _scatter_add_vjp,
    Op.SCATTER_SET: _scatter_set_vjp,
}
