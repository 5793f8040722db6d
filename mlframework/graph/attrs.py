"""Normalization of op attributes: negative axes, defaults, -1 in shapes.

Every op function passes its attributes through `normalize`, so nodes always
hold plain tuples of non-negative ints and `DType`s, whatever the user wrote. Attributes
of kind "shape" and "dims" (a reshape's shape, slice limits, slice sizes) may also hold
symbolic `Dim`s; `graph.bind` substitutes them.
"""
from __future__ import annotations

import math

import numpy as np

from mlframework.core import symbolic
from mlframework.core.dtypes import as_dtype
from mlframework.core.symbolic import Dim
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import ATTR_KINDS, Op, OpGroup


def normalize(op: Op, inputs, attrs: dict) -> dict:
    """Returns `attrs` normalized by kind, with op-specific defaults filled in.

    Raises:
        ShapeError: on an axis out of range or a shape that cannot be inferred.
    """
    rank = inputs[0].ndim if inputs else 0
    out = {}
    for name, kind in ATTR_KINDS[op]:
        out[name] = _NORMALIZERS[kind](op, name, attrs[name], rank, inputs)
    if op in _DEFAULTS:
        _DEFAULTS[op](out, rank)
    return out


def normalize_axis(op_name: str, axis, rank: int) -> int:
    """Maps axis in [-rank, rank) to [0, rank). Raises ShapeError otherwise."""
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise ShapeError(f"{op_name} requires an integer axis, got {axis!r}")
    if not -rank <= axis < rank:
        raise ShapeError(f"{op_name} requires axis in [{-rank}, {rank}) for rank {rank}, "
                         f"got {axis}")
    return int(axis) % rank if rank else 0


def _axis(op, name, value, rank, inputs):
    return normalize_axis(op.value, value, rank)


def _axes(op, name, value, rank, inputs):
    if value is None:
        return tuple(range(rank))
    if hasattr(value, "__index__"):
        value = (value,)
    axes = tuple(normalize_axis(op.value, a, rank) for a in value)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{op.value} requires distinct {name}, got {tuple(value)}")
    return tuple(sorted(axes))


def _perm(op, name, value, rank, inputs):
    if value is None:
        return tuple(reversed(range(rank)))
    perm = tuple(normalize_axis(op.value, a, rank) for a in value)
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"{op.value} requires a permutation of {rank} axes, got {tuple(value)}")
    return perm


def _shape(op, name, value, rank, inputs):
    """A target shape: dims (ints or symbolic), at most one -1, inferred from x's size."""
    dims = _dims(op, name, value, rank, inputs)
    size = inputs[0].size
    fixed = [d for d in dims if not isinstance(d, Dim)]
    if fixed.count(-1) > 1 or any(d < -1 for d in fixed):
        raise ShapeError(f"{op.value} requires non-negative dims with at most one -1, got "
                         f"{symbolic.dims_text(dims)}")
    if -1 in fixed:
        known = math.prod(d for d in dims if isinstance(d, Dim) or d != -1)
        rest = symbolic.divide(size, known) if known != 0 else None
        if rest is None:
            raise ShapeError(f"{op.value} cannot infer -1 in {symbolic.dims_text(dims)} for "
                             f"{size} elements of shape {symbolic.dims_text(inputs[0].shape)}")
        dims = tuple(rest if not isinstance(d, Dim) and d == -1 else d for d in dims)
    return dims


def _dims(op, name, value, rank, inputs):
    """A sequence of dims: ints, or symbolic `Dim`s (kept as they are)."""
    if value is None:
        return None
    if isinstance(value, Dim) or hasattr(value, "__index__"):
        value = (value,)
    try:
        return tuple(v if isinstance(v, Dim) else int(v) for v in value)
    except TypeError:
        raise ShapeError(f"{op.value} requires {name} to be a sequence of ints or symbolic "
                         f"dims, got {value!r}") from None


def _ints(op, name, value, rank, inputs):
    if value is None:
        return None
    if isinstance(value, Dim) or hasattr(value, "__index__"):
        value = (value,)
    symbolic_dims = [v for v in value if isinstance(v, Dim)] if isinstance(
        value, tuple | list) else []
    if symbolic_dims:
        symbols = ", ".join(sorted(symbolic_dims[0].symbols))
        raise ShapeError(f"{op.value} requires {name} to be concrete ints, got the symbolic "
                         f"{symbolic_dims[0]} in {symbolic.dims_text(value)}; {name} of "
                         f"{op.value} cannot depend on {symbols}")
    try:
        return tuple(int(v) for v in value)
    except TypeError:
        raise ShapeError(f"{op.value} requires {name} to be a sequence of ints, "
                         f"got {value!r}") from None


def _int(op, name, value) -> int:
    if isinstance(value, Dim):
        raise ShapeError(f"{op.value} requires {name} to be a concrete int, got the symbolic "
                         f"{value}; {name} of {op.value} cannot depend on "
                         f"{', '.join(sorted(value.symbols))}")
    return int(value)


def _pairs(op, name, value, rank, inputs):
    if value is None:
        return None
    try:
        return tuple((int(lo), int(hi)) for lo, hi in value)
    except (TypeError, ValueError):
        raise ShapeError(f"{op.value} requires {name} as (low, high) pairs, "
                         f"got {value!r}") from None


def _triples(op, name, value, rank, inputs):
    try:
        return tuple((int(lo), int(hi), int(mid)) for lo, hi, mid in value)
    except (TypeError, ValueError):
        raise ShapeError(f"{op.value} requires {name} as (low, high, interior) triples, "
                         f"got {value!r}") from None


def _scalar(op, name, value, rank, inputs):
    """A value of the first input's dtype, held exactly as a NumPy scalar of that dtype
    (a Python float would change int64 values past 2**53 and overflow uint64's top half).

    Raises:
        DTypeError: if the value is not representable (0.5 or NaN for an integer
            operand, 300 for int8, a non-number).
    """
    dtype = inputs[0].dtype
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if not isinstance(value, bool | int | float | np.bool_ | np.number):
        raise DTypeError(f"{op.value} requires {name} to be a scalar, got {value!r}")
    if dtype.is_float:
        with np.errstate(over="ignore"):
            return np.asarray(value).astype(dtype.numpy)[()]
    if dtype.numpy == np.bool_:
        exact = isinstance(value, bool | np.bool_) or value in (0, 1)
    else:
        info = np.iinfo(dtype.numpy)
        exact = not isinstance(value, float | np.floating) or float(value).is_integer()
        exact = exact and info.min <= int(value) <= info.max if exact else False
    if not exact:
        raise DTypeError(f"{op.value} requires {name} representable in the operand's dtype "
                         f"{dtype}, got {value!r}")
    return dtype.numpy.type(int(value))


def _conv_dims(op, name, value, rank, inputs):
    """(lhs, rhs, out) axis orders, as jax.lax.ConvDimensionNumbers: each lists the axes
    holding batch (O for rhs), feature (I) and the spatial axes. Strings name the axes
    ("NHWC", "HWIO", "NHWC"): spatial letters pair up across the three strings and keep
    the rhs string's order. None: the canonical (N, C, *spatial), (O, I, *window).

    Raises:
        ShapeError: on specs of the wrong length, or strings that do not name every axis once.
    """
    if value is None:
        return (tuple(range(rank)),) * 3
    value = tuple(value)
    if len(value) != 3:
        raise ShapeError(f"{op.value} requires {name} for lhs, rhs and out, got {value!r}")
    if all(isinstance(v, str) for v in value):
        value = _conv_orders(op, name, value, rank)
    try:
        orders = tuple(tuple(int(a) for a in v) for v in value)
    except (TypeError, ValueError):
        raise ShapeError(f"{op.value} requires {name} as three strings or three axis "
                         f"orders, got {value!r}") from None
    if any(sorted(o) != list(range(rank)) for o in orders):
        raise ShapeError(f"{op.value} requires {name} orders of all {rank} axes, got {orders}")
    return orders


def _conv_orders(op, name, specs, rank):
    lhs, rhs, out = specs
    spatial = [c for c in rhs if c not in "OI"]
    pairs = (lhs, "NC"), (rhs, "OI"), (out, "NC")
    if any(len(s) != rank or len(set(s)) != rank or sorted(set(s) - set(first)) !=
           sorted(spatial) or not set(first) <= set(s) for s, first in pairs):
        raise ShapeError(f"{op.value} requires {name} strings of {rank} distinct letters with "
                         f"N and C (lhs, out), O and I (rhs) and the same spatial letters, "
                         f"got {specs!r}")
    return tuple(tuple(s.index(c) for c in (*first, *spatial)) for s, first in pairs)


_NORMALIZERS = {
    "axis": _axis, "axes": _axes, "perm": _perm, "shape": _shape, "ints": _ints, "dims": _dims,
    "pairs": _pairs, "triples": _triples, "scalar": _scalar,
    "int": lambda op, name, v, rank, inputs: _int(op, name, v),
    "dim": lambda op, name, v, rank, inputs: v if isinstance(v, Dim) else int(v),
    "float": lambda op, name, v, rank, inputs: float(v),
    "bool": lambda op, name, v, rank, inputs: bool(v),
    "str": lambda op, name, v, rank, inputs: str(v),
    "dtype": lambda op, name, v, rank, inputs: None if v is None else as_dtype(v),
    "graph": lambda op, name, v, rank, inputs: v,
    "graphs": lambda op, name, v, rank, inputs: tuple(v),
    "conv_dims": _conv_dims,
}


def _fill(attrs: dict, name: str, n: int, value) -> None:
    if attrs[name] is None:
        attrs[name] = tuple(value for _ in range(n))


def _window_defaults(attrs: dict, rank: int) -> None:
    _fill(attrs, "window_strides", rank, 1)
    _fill(attrs, "padding", rank, (0, 0))
    for name in ("base_dilation", "window_dilation"):
        if name in attrs:
            _fill(attrs, name, rank, 1)


def _conv_defaults(attrs: dict, rank: int) -> None:
    for name in ("window_strides", "lhs_dilation", "rhs_dilation"):
        _fill(attrs, name, rank - 2, 1)
    _fill(attrs, "padding", rank - 2, (0, 0))


def _slice_defaults(attrs: dict, rank: int) -> None:
    _fill(attrs, "strides", rank, 1)


_DEFAULTS = {op: _window_defaults for op in OpGroup.WINDOW}
_DEFAULTS[Op.CONV_GENERAL] = _conv_defaults
_DEFAULTS[Op.SLICE] = _slice_defaults
