"""VJP rules of contractions, windows, gathers and scatters.

The convolution and window rules follow the standard transposition of a
convolution (as in JAX): the input gradient is a convolution of the
cotangent with the reversed kernel, the kernel gradient a convolution of the
input with the cotangent, both with strides and dilations swapped.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np

from mlframework.graph import gen_ops as ops
from mlframework.core.symbolic import is_symbolic
from mlframework.graph.broadcasting import broadcast_to, dim_value
from mlframework.graph.composites import where, zeros_like
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Node, const


def _permute(x, perm):
    """x transposed by `perm`, or x itself when perm is the identity."""
    return x if list(perm) == list(range(x.ndim)) else ops.transpose(x, perm)


def _dot_general_vjp(node, g, side):
    """Cotangent of operand `side` (0: lhs, 1: rhs): g contracted with the other operand over
    that operand's free axes, then permuted back into the operand's axis order."""
    a = node.attrs
    contracting = a["lhs_contracting"], a["rhs_contracting"]
    batch = a["lhs_batch"], a["rhs_batch"]
    free = [[i for i in range(x.ndim) if i not in contracting[k] + batch[k]]
            for k, x in enumerate(node.inputs)]
    other, nb = 1 - side, len(batch[0])
    first = nb if other == 0 else nb + len(free[0])  # g's axes: batch, lhs free, rhs free
    operand = node.inputs[other]  # widened to g's dtype under a preferred_element_type
    operand = operand if operand.dtype is g.dtype else ops.convert(operand, g.dtype)
    d = ops.dot_general(g, operand, range(first, first + len(free[other])),
                        free[other], range(nb), batch[other])
    if d.dtype is not node.inputs[side].dtype:
        d = ops.convert(d, node.inputs[side].dtype)
    # d's axes: batch, this operand's free axes, then the other's contracting axes in
    # increasing order, each standing for the contracting axis of this operand it pairs with.
    pairs = dict(zip(contracting[other], contracting[side]))
    axes = list(batch[side]) + free[side] + [pairs[i] for i in sorted(pairs)]
    return _permute(d, [axes.index(i) for i in range(node.inputs[side].ndim)])


def _dilate(sizes, factors):
    return [0 if s == 0 else 1 + f * (s - 1) for s, f in zip(sizes, factors)]


def _lhs_padding(in_sizes, window, strides, out_sizes, padding, lhs_dil, rhs_dil):
    """Padding of the cotangent for the input-gradient convolution."""
    ins, win = _dilate(in_sizes, lhs_dil), _dilate(window, rhs_dil)
    outs = _dilate(out_sizes, strides)
    before = [w - lo - 1 for w, (lo, _) in zip(win, padding)]
    after = [i + w - 1 - o - b for i, w, o, b in zip(ins, win, outs, before)]
    return list(zip(before, after))


def _rhs_padding(in_sizes, window, strides, out_sizes, padding, lhs_dil, rhs_dil):
    """Padding of the input for the kernel-gradient convolution."""
    ins, win = _dilate(in_sizes, lhs_dil), _dilate(window, rhs_dil)
    outs = _dilate(out_sizes, strides)
    return [(lo, o - i + w - lo - 1) for i, w, o, (lo, _) in zip(ins, win, outs, padding)]


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


def _canonical_conv(node, g):
    """The operands and g of a convolution in the canonical layouts [N, C, *spatial],
    [O, I, *window], [N, O, *spatial'] (transposed when dimension_numbers says otherwise)."""
    orders = node.attrs["dimension_numbers"]
    return [_permute(x, order) for x, order in zip((*node.inputs, g), orders)]


def _from_canonical(x, order):
    """x, in a canonical convolution layout, transposed back to the axis `order`."""
    return _permute(x, [list(order).index(i) for i in range(len(order))])


def _conv_general_lhs_vjp(node, g):
    """The input cotangent: g convolved with the kernel, spatially reversed and with its
    feature axes swapped, with strides and lhs dilation exchanged."""
    lhs, rhs, g = _canonical_conv(node, g)
    a = node.attrs
    groups, batch_groups = a["feature_group_count"], a["batch_group_count"]
    kernel, lhs_groups = rhs, groups
    if groups > 1 or batch_groups > 1:
        lhs_groups = max(groups, batch_groups)
        kernel = _merge_axis(_split_axis(kernel, 0, lhs_groups), 0, 1)
    pads = _lhs_padding(lhs.shape[2:], rhs.shape[2:], a["window_strides"], g.shape[2:],
                        a["padding"], a["lhs_dilation"], a["rhs_dilation"])
    d_lhs = ops.conv_general(g, _swap01(ops.reverse(kernel, range(2, lhs.ndim))),
                             a["lhs_dilation"], pads, a["window_strides"], a["rhs_dilation"],
                             lhs_groups, 1)
    if batch_groups > 1:
        d_lhs = _merge_axis(_split_axis(d_lhs, 1, batch_groups), 1, 0)
    return _from_canonical(d_lhs, a["dimension_numbers"][0])


def _conv_general_rhs_vjp(node, g):
    """The kernel cotangent: the input convolved with g (batch as the feature axis), with
    strides and rhs dilation exchanged."""
    lhs, rhs, g = _canonical_conv(node, g)
    a = node.attrs
    if g.size == 0:
        return zeros_like(node.inputs[1])
    groups, batch_groups = a["feature_group_count"], a["batch_group_count"]
    pads = _rhs_padding(lhs.shape[2:], rhs.shape[2:], a["window_strides"], g.shape[2:],
                        a["padding"], a["lhs_dilation"], a["rhs_dilation"])
    fg, bg = (batch_groups, 1) if batch_groups > 1 else (1, groups)
    d_rhs = ops.conv_general(_swap01(lhs), _swap01(g), a["rhs_dilation"], pads,
                             a["lhs_dilation"], a["window_strides"], fg, bg)
    return _from_canonical(_swap01(d_rhs), a["dimension_numbers"][1])


def _reduce_window_sum_vjp(node, g):
    x, a = node.inputs[0], node.attrs
    window, strides = a["window_dimensions"], a["window_strides"]
    ones = (1,) * x.ndim
    pads = _lhs_padding(x.shape, window, strides, g.shape, a["padding"], a["base_dilation"],
                        a["window_dilation"])
    padded = ops.pad(g, [(lo, hi, s - 1) for (lo, hi), s in zip(pads, strides)])
    return (ops.reduce_window_sum(padded, window, a["base_dilation"], [(0, 0)] * x.ndim, ones,
                                  a["window_dilation"]),)


def _reduce_window_extremum_vjp(node, g):
    """Each cotangent goes to the first extremum of its window (XLA's select_and_scatter).
    A minimum is the maximum of -x; a base dilation spreads x with the identity first."""
    x, a = node.inputs[0], node.attrs
    if any(d != 1 for d in a["window_dilation"]):
        raise NotImplementedError(f"the gradient of {node.op.value} with window_dilation "
                                  f"{a['window_dilation']} is not implemented (nor in JAX); "
                                  "use a base_dilation or an undilated window")
    key = x if node.op is Op.REDUCE_WINDOW_MAX else -x
    base = a["base_dilation"]
    if any(b != 1 for b in base):
        key = ops.pad(key, [(0, 0, b - 1) for b in base], -np.inf)
    d = ops.select_and_scatter_add(g, key, a["window_dimensions"], a["window_strides"],
                                   a["padding"])
    return (ops.slice(d, [0] * x.ndim, d.shape, base) if any(b != 1 for b in base) else d,)


def _highest_starts(indices, operand_shape, dims, window_sizes):
    """The largest in-bounds start index per index-vector entry, broadcast like `indices`
    (computed at run time where the operand's axis is symbolic)."""
    his = [operand_shape[d] - window_sizes[d] for d in dims]
    if any(is_symbolic(h) for h in his):
        hi = ops.concatenate([ops.reshape(dim_value(h, indices.dtype, indices.graph), (1,))
                              for h in his], 0)
    else:
        hi = const(np.array(his, indices.dtype.numpy), graph=indices.graph)
    return broadcast_to(hi, indices.shape)


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
    clamped = ops.min(ops.max(indices, 0), hi)  # gather clamps; scatter would drop
    dx = ops.scatter_add(zeros_like(x), clamped, g, a["offset_dims"], a["collapsed_slice_dims"],
                         index_map)
    return dx, None


def _scatter_window(node: Node) -> tuple[tuple[Any, Any, Any], list[int]]:
    """The scatter's attributes and the operand-shaped size of one update window."""
    x, _, updates = node.inputs
    a = node.attrs
    dims = a["update_window_dims"], a["inserted_window_dims"], a["scatter_dims_to_operand_dims"]
    window_sizes = iter(updates.shape[d] for d in dims[0])
    return dims, [1 if d in dims[1] else next(window_sizes) for d in range(x.ndim)]


def _at_updates(node, values):
    """`values`, shaped like the scatter's output, read at each update element's position."""
    dims, sizes = _scatter_window(node)
    return ops.gather(values, node.inputs[1], *dims, sizes)


def _scatter_add_updates_vjp(node, g):
    x, indices, updates = node.inputs
    (window_dims, _, to_operand), sizes = _scatter_window(node)
    ok = _in_bounds(indices, x.shape, to_operand, sizes)
    batch_axes = [d for d in range(updates.ndim) if d not in window_dims]
    kept = ops.broadcast_in_dim(ok, updates.shape, batch_axes)  # dropped updates get 0
    return where(kept, _at_updates(node, g), 0)


def _scatter_set_operand_vjp(node, g):
    _, indices, updates = node.inputs
    return ops.scatter_set(g, indices, zeros_like(updates), *_scatter_window(node)[0])


def _scatter_set_updates_vjp(node, g):
    # An update element gets its cotangent only where it was written: not dropped out of
    # bounds, nor overwritten by another update at the same index. Scattering element ids
    # and reading them back tells which (as JAX does).
    x, indices, updates = node.inputs
    ids = ops.reshape(ops.iota(np.int32, (updates.size,), 0), updates.shape)
    unset = broadcast_to(const(-1, np.int32, x.graph), x.shape)
    written = ops.scatter_set(unset, indices, ids, *_scatter_window(node)[0])
    return where(ops.eq(_at_updates(node, written), ids), _at_updates(node, g), 0)


def _scatter_mul_updates_vjp(node, g):
    x, indices, updates = node.inputs
    if not node.attrs["unique_indices"]:
        raise NotImplementedError(
            f"the gradient of scatter_mul with respect to its updates {updates.spec} is "
            "implemented only for unique indices (as in JAX): pass unique_indices=True when "
            "no index repeats")
    return _scatter_add_updates_vjp(node, g * x)


def scatter_extremum_counts(node):
    """(operand weights, update weights, count): 1 where an element equals the result at
    its position, and how many do there; ties share the cotangent equally (as JAX). Also
    used by the JVP rules."""
    x, indices, updates = node.inputs
    x_hits = ops.convert(ops.eq(x, node), x.dtype)
    dims, sizes = _scatter_window(node)
    window_dims, _, to_operand = dims
    ok = _in_bounds(indices, x.shape, to_operand, sizes)
    batch_axes = [d for d in range(updates.ndim) if d not in window_dims]
    hit = ops.logical_and(ops.eq(updates, _at_updates(node, node)),
                          ops.broadcast_in_dim(ok, updates.shape, batch_axes))
    u_hits = ops.convert(hit, x.dtype)
    count = x_hits + ops.scatter_add(zeros_like(x), indices, u_hits, *dims)
    return x_hits, u_hits, where(ops.eq(count, 0), 1, count)


def _scatter_extremum_operand_vjp(node, g):
    x_hits, _, count = scatter_extremum_counts(node)
    return g * x_hits / count


def _scatter_extremum_updates_vjp(node, g):
    _, u_hits, count = scatter_extremum_counts(node)
    return _at_updates(node, g / count) * u_hits


# A rule maps (node, g) to all its input cotangents, or is a tuple of one such map per input
# (None for an input without one).
Rule: TypeAlias = Callable[[Node, Node], Any] | tuple[Callable[[Node, Node], Any] | None, ...]

RULES: dict[Op, Rule] = {
    Op.DOT_GENERAL: (lambda n, g: _dot_general_vjp(n, g, side=0),
                     lambda n, g: _dot_general_vjp(n, g, side=1)),
    Op.CONV_GENERAL: (_conv_general_lhs_vjp, _conv_general_rhs_vjp),
    Op.REDUCE_WINDOW_SUM: _reduce_window_sum_vjp,
    Op.REDUCE_WINDOW_MAX: _reduce_window_extremum_vjp,
    Op.REDUCE_WINDOW_MIN: _reduce_window_extremum_vjp,
    Op.GATHER: _gather_vjp,
    Op.SCATTER_ADD: (lambda n, g: g, None, _scatter_add_updates_vjp),
    Op.SCATTER_SET: (_scatter_set_operand_vjp, None, _scatter_set_updates_vjp),
    Op.SCATTER_MUL: (lambda n, g: ops.scatter_mul(g, n.inputs[1], n.inputs[2],
                                                  *_scatter_window(n)[0]),
                     None, _scatter_mul_updates_vjp),
    Op.SCATTER_MIN: (_scatter_extremum_operand_vjp, None, _scatter_extremum_updates_vjp),
    Op.SCATTER_MAX: (_scatter_extremum_operand_vjp, None, _scatter_extremum_updates_vjp),
}
