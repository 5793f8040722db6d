"""Shape rules of the data-movement ops: reshape, transpose, slice, pad,
concatenate, reverse, broadcast, dynamic slices, gather and scatter."""
from __future__ import annotations

import math

from mlframework.core.shapes import Shape
from mlframework.core.symbolic import Dim, DimLike, at_most, dims_text, divide, nonnegative
from mlframework.graph.errors import DTypeError, ShapeError, SymbolicSizeError
from mlframework.graph.gen_optypes import Op


def _check_len(op: str, name: str, values, n: int, x: Shape) -> None:
    if len(values) != n:
        raise ShapeError(f"{op} requires {n} {name} for {x}, got {values}")


def _broadcast_in_dim_shape(inputs, attrs):
    x, shape, dims = inputs[0], attrs["shape"], attrs["broadcast_dimensions"]
    _check_len("broadcast_in_dim", "broadcast_dimensions", dims, x.rank, x)
    if list(dims) != sorted(set(dims)) or any(not 0 <= d < len(shape) for d in dims):
        raise ShapeError(f"broadcast_in_dim requires increasing broadcast_dimensions within "
                         f"rank {len(shape)}, got {dims}")
    for i, d in enumerate(dims):
        if x.dims[i] not in (1, shape[d]):
            raise ShapeError(f"broadcast_in_dim requires operand dim {i} ({x.dims[i]}) to be 1 "
                             f"or {shape[d]}, got {x} to {dims_text(shape)} along {dims}")
    return Shape(x.dtype, shape)


def _reshape_shape(inputs, attrs):
    x, shape = inputs[0], attrs["shape"]
    if math.prod(shape) != x.size:
        raise ShapeError(f"reshape requires the same number of elements, got {x} "
                         f"({x.size} elements) to {dims_text(shape)} ({math.prod(shape)} elements)")
    return Shape(x.dtype, shape)


def _transpose_shape(inputs, attrs):
    x, perm = inputs[0], attrs["permutation"]
    _check_len("transpose", "axes in permutation", perm, x.rank, x)
    return Shape(x.dtype, tuple(x.dims[p] for p in perm))


def _slice_shape(inputs, attrs):
    x = inputs[0]
    start, limit, strides = attrs["start_indices"], attrs["limit_indices"], attrs["strides"]
    for name, v in (("start_indices", start), ("limit_indices", limit), ("strides", strides)):
        _check_len("slice", name, v, x.rank, x)
    dims = []
    for d, lo, hi, s in zip(x.dims, start, limit, strides):
        if not (at_most(0, lo) and at_most(lo, hi) and at_most(hi, d)) or s < 1:
            raise ShapeError(f"slice requires 0 <= start <= limit <= dim and strides >= 1, got "
                             f"start {dims_text(start)}, limit {dims_text(limit)}, strides "
                             f"{strides} for {x}")
        dims.append(_ceil_div("slice", hi - lo, s, x))
    return Shape(x.dtype, tuple(dims))


def _ceil_div(op: str, extent: DimLike, step: int, x: Shape) -> DimLike:
    """ceil(extent / step): exact for a symbolic extent only when step divides it."""
    if not isinstance(extent, Dim):
        return -(-extent // step)
    if step == 1:
        return extent
    quotient = divide(extent, step)
    if quotient is None:
        raise SymbolicSizeError(
            f"{op} with stride {step} over the symbolic extent {extent} of {x} has a size "
            f"that is not a polynomial in {', '.join(sorted(extent.symbols))} (floor "
            "division of symbolic sizes is not built); use stride 1 or a static dim")
    return quotient



def _pad_shape(inputs, attrs):
    x, config = inputs[0], attrs["padding_config"]
    _check_len("pad", "(low, high, interior) triples", config, x.rank, x)
    dims = []
    for d, (lo, hi, mid) in zip(x.dims, config):
        size = lo + hi + d + (d - 1 if isinstance(d, Dim) else max(d - 1, 0)) * mid
        if mid < 0 or not nonnegative(size):
            raise ShapeError(f"pad requires interior >= 0 and a non-negative result, got "
                             f"{config} for {x}")
        dims.append(size)
    return Shape(x.dtype, tuple(dims))


def _concatenate_shape(inputs, attrs):
    if not inputs:
        raise ShapeError("concatenate requires at least one operand, got none")
    first, axis = inputs[0], attrs["axis"]
    for s in inputs[1:]:
        if s.dtype is not first.dtype or s.rank != first.rank or any(
                a != b for i, (a, b) in enumerate(zip(s.dims, first.dims)) if i != axis):
            got = ", ".join(map(str, inputs))
            raise ShapeError(f"concatenate requires operands equal but along axis {axis}, "
                             f"got {got}")
    dims = list(first.dims)
    dims[axis] = sum(s.dims[axis] for s in inputs)
    return Shape(first.dtype, tuple(dims))


def _check_start_indices(op: str, x: Shape, starts: list[Shape]) -> None:
    _check_len(op, "start indices", starts, x.rank, x)
    for s in starts:
        if s.rank or not s.dtype.is_int:
            raise ShapeError(f"{op} requires scalar integer start indices, got {s}")


def _dynamic_slice_shape(inputs, attrs):
    x, starts, sizes = inputs[0], inputs[1:], attrs["slice_sizes"]
    _check_start_indices("dynamic_slice", x, starts)
    _check_len("dynamic_slice", "slice_sizes", sizes, x.rank, x)
    if any(not (at_most(0, s) and at_most(s, d)) for s, d in zip(sizes, x.dims)):
        raise ShapeError(f"dynamic_slice requires 0 <= slice_sizes <= dims, got "
                         f"{dims_text(sizes)} for {x}")
    return Shape(x.dtype, sizes)


def _dynamic_update_slice_shape(inputs, attrs):
    x, update, starts = inputs[0], inputs[1], inputs[2:]
    _check_start_indices("dynamic_update_slice", x, starts)
    if update.dtype is not x.dtype or update.rank != x.rank or any(
            not at_most(u, d) for u, d in zip(update.dims, x.dims)):
        raise ShapeError(f"dynamic_update_slice requires an update of the operand's dtype and "
                         f"rank that fits inside it, got {update} into {x}")
    return x


def _check_indices(op: str, indices: Shape) -> None:
    if not indices.dtype.is_int or indices.rank < 1:
        raise DTypeError(f"{op} requires integer indices with the index vector in the last "
                         f"axis, got {indices}")


def _gather_shape(inputs, attrs):
    x, indices = inputs
    _check_indices("gather", indices)
    offset, collapsed = attrs["offset_dims"], attrs["collapsed_slice_dims"]
    index_map, sizes = attrs["start_index_map"], attrs["slice_sizes"]
    _check_len("gather", "slice_sizes", sizes, x.rank, x)
    _check_len("gather", "start_index_map entries", index_map, indices.dims[-1], indices)
    if any(not at_most(sizes[d], 1) for d in collapsed) or any(
            not (at_most(0, s) and at_most(s, d)) for s, d in zip(sizes, x.dims)):
        raise ShapeError(f"gather requires slice_sizes within {x} and 1 on collapsed dims "
                         f"{collapsed}, got {dims_text(sizes)}")
    window = [s for i, s in enumerate(sizes) if i not in collapsed]
    _check_len("gather", "offset_dims", offset, len(window), x)
    batch = list(indices.dims[:-1])
    rank = len(batch) + len(window)
    dims, b, w = [], iter(batch), iter(window)
    for i in range(rank):
        dims.append(next(w) if i in offset else next(b))
    return Shape(x.dtype, tuple(dims))


def _scatter_shape(op: Op):
    def rule(inputs, attrs):
        x, indices, updates = inputs
        _check_indices(op.value, indices)
        if updates.dtype is not x.dtype:
            raise DTypeError(f"{op.value} requires updates of the operand's dtype, got "
                             f"{updates} into {x}")
        window_dims, inserted = attrs["update_window_dims"], attrs["inserted_window_dims"]
        _check_len(op.value, "scatter_dims_to_operand_dims entries",
                   attrs["scatter_dims_to_operand_dims"], indices.dims[-1], indices)
        if len(window_dims) + len(inserted) != x.rank:
            raise ShapeError(f"{op.value} requires len(update_window_dims) + "
                             f"len(inserted_window_dims) == operand rank, got {window_dims}, "
                             f"{inserted} for {x}")
        expected_rank = indices.rank - 1 + len(window_dims)
        if updates.rank != expected_rank:
            raise ShapeError(f"{op.value} requires updates of rank {expected_rank}, got "
                             f"{updates} with indices {indices}")
        return x
    return rule


def _reverse_shape(inputs, attrs):
    return inputs[0]


RULES = {
    Op.BROADCAST_IN_DIM: _broadcast_in_dim_shape,
    Op.RESHAPE: _reshape_shape,
    Op.TRANSPOSE: _transpose_shape,
    Op.SLICE: _slice_shape,
    Op.PAD: _pad_shape,
    Op.CONCATENATE: _concatenate_shape,
    Op.REVERSE: _reverse_shape,
    Op.DYNAMIC_SLICE: _dynamic_slice_shape,
    Op.DYNAMIC_UPDATE_SLICE: _dynamic_update_slice_shape,
    Op.GATHER: _gather_shape,
    Op.SCATTER_ADD: _scatter_shape(Op.SCATTER_ADD),
    **{op: _scatter_shape(op) for op in (Op.SCATTER_SET, Op.SCATTER_MUL, Op.SCATTER_MIN,
                                         Op.SCATTER_MAX)},
}
