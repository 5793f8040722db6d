"""Composite shape ops: stack, split, expand_dims, squeeze, flatten, take,
take_along_axis and top_k."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlframework.core import symbolic
from mlframework.core.symbolic import Dim, DimLike
from mlframework.graph import gen_ops as ops
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node, broadcast_shapes, broadcast_to, dim_value
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.graph import Node, Operand


def expand_dims(x: Operand, axis: int) -> Node:
    """x with a new size-1 axis at `axis` (negative counts from the new rank)."""
    x = as_node(x)
    axis = normalize_axis("expand_dims", axis, x.ndim + 1)
    return ops.reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x: Operand, axes: int | Sequence[int] | None = None) -> Node:
    """x without the given size-1 axes (all size-1 axes if None)."""
    x = as_node(x)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    dropped = {normalize_axis("squeeze", a, x.ndim) for a in ([axes] if isinstance(axes, int)
                                                               else axes)}
    if any(x.shape[a] != 1 for a in dropped):
        raise ShapeError(f"squeeze requires size-1 axes, got axes {sorted(dropped)} of {x.spec}")
    return ops.reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in dropped))


def flatten(x: Operand, start_axis: int = 0) -> Node:
    """Merges the axes from `start_axis` on into one."""
    x = as_node(x)
    start_axis = normalize_axis("flatten", start_axis, x.ndim)
    return ops.reshape(x, x.shape[:start_axis] + (-1,))


def stack(xs: Sequence[Operand], axis: int = 0) -> Node:
    """Joins equally shaped arrays along a new `axis`."""
    nodes = [as_node(x) for x in xs]
    if not nodes:
        raise ShapeError("stack requires at least one array, got none")
    axis = normalize_axis("stack", axis, nodes[0].ndim + 1)
    return ops.concatenate([expand_dims(x, axis) for x in nodes], axis)


def split(x: Operand, sections: int | Sequence[int], axis: int = 0) -> list[Node]:
    """Splits x along `axis` into `sections` equal parts, or at the given indices
    (as numpy.split). Raises ShapeError when equal parts are impossible."""
    x = as_node(x)
    axis = normalize_axis("split", axis, x.ndim)
    dim = x.shape[axis]
    if isinstance(dim, Dim):
        return _split_symbolic(x, sections, axis, dim)
    if isinstance(sections, int):
        if sections <= 0 or dim % sections:
            raise ShapeError(f"split requires sections dividing axis {axis} of {x.spec}, "
                             f"got {sections}")
        cuts = [dim // sections * i for i in range(1, sections)]
    else:  # indices as Python slice bounds: negative from the end, clipped to the axis
        cuts = [min(max(int(c) + dim if c < 0 else int(c), 0), dim) for c in sections]
    bounds = [0, *cuts, dim]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        starts = [0] * x.ndim
        limits = list(x.shape)
        starts[axis], limits[axis] = lo, max(lo, hi)
        parts.append(ops.slice(x, starts, limits))
    return parts


def _split_symbolic(x: Node, sections: int | Sequence[int], axis: int, dim: Dim) -> list[Node]:
    """split into equal parts along a symbolic axis (indices would be in bounds only for
    some sizes, so they are refused)."""
    part = symbolic.divide(dim, sections) if isinstance(sections, int) and sections > 0 \
        else None
    if part is None or not isinstance(sections, int):
        raise ShapeError(f"split along the symbolic axis {axis} of {x.spec} requires a number "
                         f"of sections dividing {dim} for every size of "
                         f"{', '.join(sorted(dim.symbols))}, got {sections}")
    parts = []
    for i in range(sections):
        starts: list[DimLike] = [0] * x.ndim
        limits: list[DimLike] = list(x.shape)
        starts[axis], limits[axis] = part * i, part * (i + 1)
        parts.append(ops.slice(x, starts, limits))
    return parts


def _indices(op_name: str, indices, dim: DimLike) -> Node:
    """Integer indices as a node, negative ones counted from the end of `dim` (as NumPy).

    Raises:
        DTypeError: if the indices are not integers.
    """
    if not isinstance(indices, Node):
        if np.asarray(indices).dtype.kind not in "iu":
            raise DTypeError(f"{op_name} requires integer indices, got {indices!r}")
        indices = as_node(indices, index=True)
    if not indices.dtype.is_int:
        raise DTypeError(f"{op_name} requires integer indices, got {indices.spec}")
    if indices.dtype.is_unsigned:
        return indices
    return ops.select(indices < 0, indices + dim_value(dim, indices.dtype, indices.graph),
                      indices)


def take(x: Operand, indices: Operand, axis: int = 0) -> Node:
    """Elements of x at integer `indices` along `axis`, as numpy.take: negative
    indices count from the end, out-of-range ones are clamped.
    Shape: x.shape[:axis] + indices.shape + x.shape[axis+1:].

    Raises:
        DTypeError: if the indices are not integers.
    """
    x = as_node(x)
    axis = normalize_axis("take", axis, x.ndim)
    indices = _indices("take", indices, x.shape[axis])
    indices = ops.reshape(indices, (*indices.shape, 1))
    batch_rank = indices.ndim - 1
    offset = [i if i < axis else i + batch_rank for i in range(x.ndim - 1)]
    sizes = [1 if d == axis else x.shape[d] for d in range(x.ndim)]
    return ops.gather(x, indices, offset, (axis,), (axis,), sizes)


def take_along_axis(x: Operand, indices: Operand, axis: int) -> Node:
    """out[..., i, ...] = x[..., indices[..., i, ...], ...] along `axis`, as
    numpy.take_along_axis: indices has x's rank, and both broadcast on the other
    axes. Negative indices count from the end; out-of-range ones are clamped.

    Raises:
        ShapeError: if the ranks differ or the other axes do not broadcast.
        DTypeError: if the indices are not integers.
    """
    x = as_node(x)
    axis = normalize_axis("take_along_axis", axis, x.ndim)
    indices = _indices("take_along_axis", indices, x.shape[axis])
    if indices.ndim != x.ndim:
        raise ShapeError(f"take_along_axis requires indices of rank {x.ndim}, got {indices.spec}")
    x_dims = x.shape[:axis] + (indices.shape[axis],) + x.shape[axis + 1:]
    shape = broadcast_shapes("take_along_axis", x_dims, indices.shape)
    indices = broadcast_to(indices, shape)
    x = broadcast_to(x, shape[:axis] + (x.shape[axis],) + shape[axis + 1:])
    coords = [ops.iota(indices.dtype, shape, d) if d != axis else indices
              for d in range(x.ndim)]
    full = ops.concatenate([ops.reshape(c, (*shape, 1)) for c in coords], -1)
    return ops.gather(x, full, (), tuple(range(x.ndim)), tuple(range(x.ndim)), (1,) * x.ndim)


def top_k(x: Operand, k: int) -> tuple[Node, Node]:
    """The k largest values along the last axis and their int32 indices, in
    descending order (ties: lower index first), as jax.lax.top_k: floats follow XLA's
    total order (NaN first, -NaN last, +0.0 before -0.0).

    Raises:
        ShapeError: unless 0 <= k <= x.shape[-1].
    """
    x = as_node(x)
    if not (0 <= k and symbolic.at_most(k, x.shape[-1])):
        raise ShapeError(f"top_k requires 0 <= k <= {x.shape[-1]} for {x.spec}, got {k}")
    order = ops.argsort(x, -1, descending=True, total_order=True)
    starts = [0] * x.ndim
    indices = ops.slice(order, starts, (*x.shape[:-1], k))
    return take_along_axis(x, indices, -1), indices
