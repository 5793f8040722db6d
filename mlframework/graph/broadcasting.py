"""Turning Python values into nodes, and NumPy-style broadcasting of operands.

Primitives require operands of equal shapes and dtypes; the public op
functions broadcast them first, as NumPy does. A Python scalar takes the dtype
of the node it meets (a "weak" type, as in JAX).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mlframework.core.dtypes import DType, DTypeSpec, as_dtype
from mlframework.core import symbolic
from mlframework.core.symbolic import Dim, DimLike
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Graph, Node, Operand, build, const


def as_node(value: Operand, dtype: DTypeSpec | None = None, index: bool = False) -> Node:
    """`value` itself if it is a Node, else a constant (of `dtype` if given).

    `index=True` makes Python ints int32 (for start indices).
    """
    if isinstance(value, Node):
        return value
    if index and dtype is None:
        dtype = np.int32
    return const(value, dtype)


def as_indices(op_name: str, values: Iterable[Operand]) -> list[Node]:
    """Scalar start indices as nodes of one integer dtype: int64 if any needs
    64 bits (int64, uint32, uint64), else int32. Python ints become int32 (int64
    beyond int32); uint64 indices of 2**63 or more become 2**63 - 1, which clamps
    to the same start as XLA's unsigned clamp.

    Raises:
        DTypeError: if an index is not an integer.
    """
    nodes = []
    for value in values:
        if isinstance(value, Node):
            v = value
        else:
            if np.asarray(value).dtype.kind not in "iu":
                raise DTypeError(f"{op_name} requires integer start indices, got {value!r}")
            v = const(value)
        if not v.dtype.is_int:
            raise DTypeError(f"{op_name} requires integer start indices, got {v.spec}")
        nodes.append(v)
    wide = any(n.dtype.itemsize == 8 or n.dtype.numpy == np.uint32 for n in nodes)
    dtype = np.int64 if wide else np.int32
    out = []
    for n in nodes:
        if n.dtype.numpy == np.uint64:  # saturate: 2**63 and above clamp as XLA clamps them
            top = const(np.uint64(2 ** 63 - 1), graph=n.graph)
            n = build(Op.MIN, [n, build(Op.BROADCAST_IN_DIM, [top],
                                        {"shape": n.shape, "broadcast_dimensions": ()})
                               if n.shape else top])
        out.append(n if n.dtype.numpy == dtype else
                   build(Op.CONVERT, [n], {"dtype": as_dtype(dtype)}))
    return out


def broadcast_shapes(op_name: str, *shapes: Sequence[DimLike]) -> tuple[DimLike, ...]:
    """The NumPy broadcast of `shapes`. A symbolic dim broadcasts only with itself or 1
    (a symbol is never assumed to be 1).

    Raises:
        ShapeError: if they do not broadcast, naming the axis and its dims.
    """
    rank = max(len(s) for s in shapes)
    out: list[DimLike] = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            got = ", ".join(map(symbolic.dims_text, shapes))
            raise ShapeError(f"{op_name} requires shapes that broadcast, got {got}: axis "
                             f"{axis - rank} has sizes {' and '.join(sorted(map(str, dims)))}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def broadcast_to(x: Node, shape: Sequence[DimLike]) -> Node:
    """Broadcasts x NumPy-style (aligning trailing axes) to `shape` (ints or Dims)."""
    target = tuple(d if isinstance(d, Dim) else int(d) for d in shape)
    if x.shape == target:
        return x
    broadcast_shapes("broadcast_to", x.shape, target)
    if len(target) < x.ndim:
        raise ShapeError(f"broadcast_to requires a target rank >= {x.ndim}, got {target}")
    offset = len(target) - x.ndim
    kept = [i for i, d in enumerate(x.shape) if d == target[i + offset]]
    if len(kept) != x.ndim:
        x = build(Op.RESHAPE, [x], {"shape": tuple(x.shape[i] for i in kept)})
    dims = tuple(i + offset for i in kept)
    return build(Op.BROADCAST_IN_DIM, [x], {"shape": target, "broadcast_dimensions": dims})


def broadcast_operands(op_name: str, *values: Operand) -> tuple[Node, ...]:
    """Makes the operands nodes of one dtype and one broadcast shape.

    Python scalars adopt the dtype of the first node operand (bool for
    the predicate of `select`).

    Raises:
        DTypeError: if node operands have different dtypes, or a Python value
            does not fit the dtype it adopts (0.5 met by an int node).
        ShapeError: if their shapes do not broadcast.
    """
    nodes = [v for v in values if isinstance(v, Node)]
    if not nodes:
        raise TypeError(f"{op_name} requires at least one graph node operand, got {values!r}")
    data = [v for v in values if isinstance(v, Node)][-1 if op_name == "select" else 0]
    out: list[Node] = []
    for i, v in enumerate(values):
        if isinstance(v, Node):
            out.append(v)
        else:
            dtype = as_dtype(np.bool_) if op_name == "select" and i == 0 else data.dtype
            out.append(_weak_const(op_name, v, dtype, data.graph))
    checked = out[1:] if op_name == "select" else out
    for v in checked:
        if v.dtype is not checked[0].dtype:
            dts = ", ".join(str(n.dtype) for n in checked)
            raise DTypeError(f"{op_name} requires operands of one dtype, got {dts}; "
                             "convert one with G.convert(x, dtype)")
    shape = broadcast_shapes(op_name, *(v.shape for v in out))
    return tuple(broadcast_to(v, shape) for v in out)


def _weak_const(op_name: str, value: Operand, dtype: DType, graph: Graph) -> Node:
    """A constant of `dtype` from a Python value met by a node of that dtype.

    Raises:
        DTypeError: if the value would change (0.5 into an int, 300 into int8).
    """
    array = np.asarray(value)
    if dtype.is_int or dtype.numpy == np.bool_:
        with np.errstate(all="ignore"):
            cast = array.astype(dtype.numpy)
            lossless = array.dtype.kind in "biuf" and np.array_equal(cast.astype(array.dtype),
                                                                      array)
        if not lossless:
            raise DTypeError(f"{op_name} requires Python values representable in the node's "
                             f"dtype {dtype}, got {value!r}; convert the node with G.convert")
    return const(array, dtype, graph)


def dim_value(d: DimLike, dtype: DTypeSpec, graph: Graph | None = None) -> Node:
    """A scalar node of `dtype` holding the size `d`: a constant for an int; for a
    symbolic dim, computed at run time from the symbols' sizes (each symbol counted as
    the sum of a ones vector of that length), so `mean` over a batch axis divides by N."""
    dtype = as_dtype(dtype)
    if not isinstance(d, Dim):
        return const(np.asarray(d, dtype.numpy), graph=graph)
    total: Node | None = None
    for monomial, coefficient in d.terms:
        term = const(np.asarray(coefficient, dtype.numpy), graph=graph)
        for symbol in monomial:
            ones = build(Op.BROADCAST_IN_DIM, [const(np.asarray(1, dtype.numpy), graph=graph)],
                         {"shape": (symbolic.dim(symbol),), "broadcast_dimensions": ()})
            term = build(Op.MUL, [term, build(Op.REDUCE_SUM, [ones], {"axes": (0,)})])
        total = term if total is None else build(Op.ADD, [total, term])
    assert total is not None  # a Dim has at least one term
    return total


def keep_reduced_dims(out: Node) -> Node:
    """Reinserts the axes reduced by `out` as size-1 dims (NumPy's keepdims)."""
    x, axes = out.inputs[0], out.attrs["axes"]
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return build(Op.RESHAPE, [out], {"shape": shape})
