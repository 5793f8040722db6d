"""Python operators on nodes: + - * / ** @, unary -, <, <=, >, >=, & | ^ ~ << >>, indexing.

`>>` shifts in the sign bit for signed integers and zeros for unsigned ones (as NumPy).

`==` and `!=` keep Python's identity meaning (nodes are dict keys); use
`G.eq` and `G.ne` for elementwise comparison.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlframework.core.symbolic import Dim, DimLike, at_most, divide
from mlframework.graph import composites, gen_ops, linalg
from mlframework.graph.broadcasting import broadcast_operands
from mlframework.graph.errors import ShapeError
from mlframework.graph.graph import Node


def _swap(fn: Callable[[Any, Any], Node]) -> Callable[[Node, Any], Node]:
    return lambda self, other: fn(other, self)


def _expand_index(x: Node, index: Any) -> tuple:
    """`index` as a tuple with one entry per axis of x (plus the `None`s):
    the Ellipsis, or else the end, filled with full slices."""
    if not isinstance(index, tuple):
        index = (index,)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"indexing requires at most {x.ndim} indices for shape {x.shape}, "
                         f"got {index}")
    n_ellipsis = sum(i is Ellipsis for i in index)
    if n_ellipsis > 1:
        raise ShapeError(f"indexing requires at most one Ellipsis, got {index}")
    fill = (slice(None),) * (x.ndim - n_real)
    if n_ellipsis:
        at = next(k for k, i in enumerate(index) if i is Ellipsis)
        return index[:at] + fill + index[at + 1:]
    return index + fill


def _is_int_index(i: Any) -> bool:
    """Python and NumPy ints (0-d integer arrays too), but not bools."""
    return not isinstance(i, Node) and not isinstance(i, bool) and hasattr(i, "__index__") \
        and np.ndim(i) == 0 and np.asarray(i).dtype.kind in "iu"


def getitem(x: Node, index: Any) -> Node:
    """NumPy basic indexing: ints, slices (any step), None and Ellipsis.

    Raises:
        ShapeError: on too many indices or an int index out of bounds.
        TypeError: on array or bool indices (use G.take or G.gather).
    """
    index = _expand_index(x, index)
    starts: list[DimLike] = []
    limits: list[DimLike] = []
    out_shape: list[DimLike] = []
    strides, flips, axis = [], [], 0
    for i in index:
        if i is None:
            out_shape.append(1)
            continue
        dim = x.shape[axis]
        if isinstance(dim, Dim):
            if not (isinstance(i, slice) or _is_int_index(i)):
                raise TypeError(f"indexing supports ints, slices, None and ..., got {i!r}; "
                                "use G.gather or G.take for array indices")
            start, limit, stride, flip, length = _symbolic_index(i, dim, axis)
            starts.append(start)
            limits.append(limit)
            strides.append(stride)
            if flip:
                flips.append(axis)
            if length is not None:
                out_shape.append(length)
            axis += 1
            continue
        if isinstance(i, slice):
            r = range(*i.indices(dim))
            if r.step < 0:  # read forward with a positive stride, then reverse
                r = r[::-1]
                flips.append(axis)
            start = r.start if r else 0
            starts.append(start)
            limits.append(r[-1] + 1 if r else start)
            strides.append(r.step)
            out_shape.append(len(r))
        elif _is_int_index(i):
            k = int(i)
            if not -dim <= k < dim:
                raise ShapeError(f"indexing requires indices within bounds, got index {k} for "
                                 f"axis {axis} of size {dim}")
            k %= dim
            starts.append(k)
            limits.append(k + 1)
            strides.append(1)
        else:
            raise TypeError(f"indexing supports ints, slices, None and ..., got {i!r}; use "
                            "G.gather or G.take for array indices")
        axis += 1
    out = gen_ops.slice(x, starts, limits, strides)
    if flips:
        out = gen_ops.reverse(out, flips)
    return gen_ops.reshape(out, out_shape) if tuple(out_shape) != out.shape else out


def _symbolic_index(i: Any, dim: Dim, axis: int
                    ) -> tuple[DimLike, DimLike, int, bool, DimLike | None]:
    """(start, limit, stride, reversed, length or None for an int index) of an int or a
    slice over a symbolic axis: bounds are ints from the start or (negative) from the end,
    provably inside the axis for every size; steps 1, k > 1 or -1 (the whole axis).

    Raises:
        ShapeError: a bound is not provably inside the axis, or the step is unsupported.
    """
    def bound(b: Any, default: DimLike) -> DimLike:
        if b is None:
            return default
        if not _is_int_index(b):
            raise ShapeError(f"indexing the symbolic axis {axis} ({dim}) requires int "
                             f"bounds, got {b!r}")
        b = int(b)
        at = b if b >= 0 else dim + b
        if not (at_most(0, at) and at_most(at, dim)):
            raise ShapeError(f"indexing the symbolic axis {axis} ({dim}) with {b} is in bounds "
                             f"only for some values of {', '.join(sorted(dim.symbols))}; "
                             f"slice a static axis or use G.dynamic_slice")
        return at
    if not isinstance(i, slice):
        k = bound(int(i), 0)
        if not at_most(k + 1, dim):
            raise ShapeError(f"indexing requires indices within bounds, got index {int(i)} "
                             f"for axis {axis} of symbolic size {dim}")
        return k, k + 1, 1, False, None
    step = 1 if i.step is None else int(i.step)
    if step == -1 and i.start is None and i.stop is None:
        return 0, dim, 1, True, dim
    if step < 1:
        raise ShapeError(f"indexing the symbolic axis {axis} ({dim}) supports steps >= 1 and "
                         f"[::-1], got {i}")
    start, limit = bound(i.start, 0), bound(i.stop, dim)
    if not at_most(start, limit):
        raise ShapeError(f"indexing the symbolic axis {axis} ({dim}) with {i} needs "
                         f"start <= stop for every size")
    length = limit - start
    return start, limit, step, False, length if step == 1 else divide(length, step)


def _shift_right(x: Any, y: Any) -> Node:
    x, y = broadcast_operands("shift_right", x, y)
    if x.dtype.is_unsigned:
        return gen_ops.shift_right_logical(x, y)
    return gen_ops.shift_right_arithmetic(x, y)


_OPERATORS: dict[str, Callable[..., Node]] = {
    "__add__": gen_ops.add, "__radd__": _swap(gen_ops.add),
    "__sub__": gen_ops.sub, "__rsub__": _swap(gen_ops.sub),
    "__mul__": gen_ops.mul, "__rmul__": _swap(gen_ops.mul),
    "__truediv__": gen_ops.div, "__rtruediv__": _swap(gen_ops.div),
    "__pow__": composites.power, "__rpow__": _swap(composites.power),
    "__matmul__": linalg.matmul, "__rmatmul__": _swap(linalg.matmul),
    "__neg__": gen_ops.neg, "__abs__": gen_ops.abs,
    "__lt__": gen_ops.lt, "__le__": gen_ops.le, "__gt__": gen_ops.gt, "__ge__": gen_ops.ge,
    "__and__": gen_ops.bitwise_and, "__rand__": _swap(gen_ops.bitwise_and),
    "__or__": gen_ops.bitwise_or, "__ror__": _swap(gen_ops.bitwise_or),
    "__xor__": gen_ops.bitwise_xor, "__rxor__": _swap(gen_ops.bitwise_xor),
    "__invert__": gen_ops.bitwise_not,
    "__lshift__": gen_ops.shift_left, "__rlshift__": _swap(gen_ops.shift_left),
    "__rshift__": _shift_right, "__rrshift__": _swap(_shift_right),
    "__getitem__": getitem,
}
# Attached with setattr: the Node class body declares their types (for type checkers).
for _name, _fn in _OPERATORS.items():
    setattr(Node, _name, _fn)


def _transposed(x: Node) -> Node:
    """`x.T`: the axes reversed."""
    return gen_ops.transpose(x)


setattr(Node, "T", property(_transposed))  # noqa: B010
