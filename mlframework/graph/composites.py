"""Composite math and activation ops, built from primitives.

Each function's docstring gives its shapes; all accept negative axes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlframework.core.dtypes import DTypeSpec
from mlframework.core.symbolic import Dim, DimLike
from mlframework.graph import gen_ops as ops
from mlframework.graph.broadcasting import as_node, broadcast_to, dim_value
from mlframework.graph.errors import DTypeError
from mlframework.graph.graph import Node, Operand, const


def convert(x: Operand, dtype: DTypeSpec) -> Node:
    """x converted to `dtype`; x itself if it already has it."""
    x = as_node(x)
    return x if x.dtype == _dtype(dtype) else ops.convert(x, dtype)


def _dtype(dtype: DTypeSpec):
    from mlframework.core.dtypes import as_dtype
    return as_dtype(dtype)


def power(x: Operand, y: Operand) -> Node:
    """x ** y, as jax.numpy.power.

    A Python int exponent is jax.lax.integer_pow: 1 for y == 0 (whatever x is, NaN and
    infinities included), else multiplications by repeated squaring in x's dtype (any
    numeric x), the reciprocal for negative y. Any other exponent is `pow` (float x).

    Raises:
        DTypeError: for a negative int exponent of an integer x, or a non-int exponent
            of an integer x.
    """
    if isinstance(y, Node) or isinstance(y, bool) or not isinstance(y, int | np.integer):
        return ops.pow(x, y)
    x, y = as_node(x), int(y)
    if y < 0 and not x.dtype.is_float:
        raise DTypeError(f"power requires a non-negative exponent for integer {x.spec}, "
                         f"got {y}")
    if y == 0:
        return ones_like(x)
    acc: Node | None = None
    base, n = x, abs(y)
    while n:
        if n & 1:
            acc = base if acc is None else acc * base
        n >>= 1
        if n:
            base = base * base
    assert acc is not None  # y != 0 has a set bit
    return ops.div(1, acc) if y < 0 else acc


def square(x: Operand) -> Node:
    """x * x, elementwise."""
    x = as_node(x)
    return x * x


def reciprocal(x: Operand) -> Node:
    """1 / x, elementwise."""
    return ops.div(1, as_node(x))


def _count(x: Node, axes: int | Sequence[int] | None) -> Node | int:
    """The number of elements reduced over `axes`: an int, or a node for symbolic axes."""
    listed = range(x.ndim) if axes is None else [axes] if isinstance(axes, int) else axes
    count: DimLike = math.prod(x.shape[a] for a in listed)
    return dim_value(count, _widened(x).dtype, x.graph) if isinstance(count, Dim) else count


def _widened(x: Node) -> Node:
    """float16/bfloat16 x in float32 (where jax.numpy computes their statistics), else x."""
    return ops.convert(x, np.float32) if x.dtype.itemsize == 2 and x.dtype.is_float else x


def mean(x: Operand, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> Node:
    """Mean over `axes` (all if None), in x's dtype; float16 and bfloat16 are summed and
    divided in float32 and rounded once, as jax.numpy.mean.

    Raises:
        DTypeError: for integer inputs (convert them first).
    """
    x = as_node(x)
    if not x.dtype.is_float:
        raise DTypeError(f"mean requires a float dtype, got {x.spec}; convert it first")
    out = ops.reduce_sum(_widened(x), axes, keepdims) / _count(x, axes)
    return convert(out, x.dtype)


def variance(x: Operand, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> Node:
    """Population variance (ddof=0) over `axes`, as jax.numpy.var (float16 and bfloat16
    computed in float32 and rounded once)."""
    x = as_node(x)
    wide = _widened(x)
    centered = wide - mean(wide, axes, keepdims=True)
    return convert(mean(centered * centered, axes, keepdims), x.dtype)


def logsumexp(x: Operand, axis: int | Sequence[int] | None = -1, keepdims: bool = False
              ) -> Node:
    """log(sum(exp(x))) along `axis` (an int, a tuple of axes, or None for all),
    stable for large inputs; a row of -inf gives -inf."""
    x = as_node(x)
    peak = ops.stop_gradient(ops.reduce_max(x, axis, keepdims=True))
    peak = where(ops.is_finite(peak), peak, zeros_like(peak))  # all -inf rows give -inf
    out = ops.log(ops.reduce_sum(ops.exp(x - peak), axis, keepdims=True)) + peak
    if keepdims:
        return out
    return ops.reshape(out, _drop(out.shape, axis))


def _drop(shape: Sequence[DimLike], axis: int | Sequence[int] | None) -> tuple[DimLike, ...]:
    """`shape` without the (size-1, kept) axes that a reduction over `axis` made."""
    rank = len(shape)
    listed = range(rank) if axis is None else [axis] if isinstance(axis, int | np.integer) \
        else axis
    axes = {a % rank for a in listed} if rank else set()
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def softmax(x: Operand, axis: int = -1) -> Node:
    """exp(x) / sum(exp(x)) along `axis`; same shape as x."""
    x = as_node(x)
    shifted = x - ops.stop_gradient(ops.reduce_max(x, axis, keepdims=True))
    e = ops.exp(shifted)
    return e / ops.reduce_sum(e, axis, keepdims=True)


def log_softmax(x: Operand, axis: int = -1) -> Node:
    """x - logsumexp(x) along `axis`, computed as jax.nn.log_softmax does: shifted =
    x - max(x), then shifted - log(sum(exp(shifted))), which keeps its precision at large
    magnitudes. Same shape as x."""
    x = as_node(x)
    shifted = x - ops.stop_gradient(ops.reduce_max(x, axis, keepdims=True))
    return shifted - ops.log(ops.reduce_sum(ops.exp(shifted), axis, keepdims=True))


def relu(x: Operand) -> Node:
    """max(x, 0) (NaN stays NaN, -0.0 gives +0.0); its gradient at 0 is 0, as jax.nn.relu."""
    x = as_node(x)
    return ops.select(x > 0, x, ops.max(ops.stop_gradient(x), 0))


def leaky_relu(x: Operand, negative_slope: float = 0.01) -> Node:
    """x where x >= 0, else negative_slope * x."""
    x = as_node(x)
    return where(x >= 0, x, x * negative_slope)


def sigmoid(x: Operand) -> Node:
    """1 / (1 + exp(-x)), the logistic function."""
    return ops.logistic(as_node(x))


def silu(x: Operand) -> Node:
    """x * sigmoid(x) (also called swish)."""
    x = as_node(x)
    return x * ops.logistic(x)


def softplus(x: Operand) -> Node:
    """log(1 + exp(x)), stable for large |x|: x + log1p(exp(-x)) above 0, else
    log1p(exp(x)) (jax.nn.softplus's values); the gradient is sigmoid(x) everywhere (0.5
    at 0, as JAX), each branch reading a clamped input so the other's gradient is finite."""
    x = as_node(x)
    positive = x > 0
    above = where(positive, x, 0)
    below = where(positive, 0, x)
    return where(positive, above + ops.log1p(ops.exp(-above)), ops.log1p(ops.exp(below)))


def gelu(x: Operand, approximate: bool = False) -> Node:
    """Gaussian error linear unit, as jax.nn.gelu: exact x * Phi(x) = 0.5 * x *
    erfc(-x / sqrt(2)) (erfc keeps the negative tail from underflowing to 0), or the tanh
    approximation x * 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))."""
    x = as_node(x)
    if approximate:
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * power(x, 3))
        return x * (0.5 * (1 + ops.tanh(inner)))
    return 0.5 * x * ops.erfc(-x * math.sqrt(0.5))


def clip(x: Operand, lo: Operand | None = None, hi: Operand | None = None) -> Node:
    """x limited to [lo, hi]; either bound may be None."""
    x = as_node(x)
    if lo is not None:
        x = ops.max(x, lo)
    if hi is not None:
        x = ops.min(x, hi)
    return x


def where(cond: Operand, x: Operand, y: Operand) -> Node:
    """x where cond is true, else y; the three broadcast together, as numpy.where."""
    return ops.select(cond, x, y)


def one_hot(indices: Operand, depth: DimLike, dtype: DTypeSpec = np.float32) -> Node:
    """indices [...] -> [..., depth] with 1 at each index and 0 elsewhere (out of range: all 0)."""
    indices = as_node(indices)
    if not indices.dtype.is_int:
        raise DTypeError(f"one_hot requires integer indices, got {indices.spec}")
    shape = (*indices.shape, depth)
    iota = ops.iota(indices.dtype, shape, indices.ndim)
    hot = ops.eq(iota, ops.reshape(indices, (*indices.shape, 1)))
    return ops.convert(hot, dtype)


def zeros_like(x: Operand) -> Node:
    """Zeros of x's shape and dtype."""
    x = as_node(x)
    return broadcast_to(const(0, x.dtype, x.graph), x.shape)


def ones_like(x: Operand) -> Node:
    """Ones of x's shape and dtype."""
    x = as_node(x)
    return broadcast_to(const(1, x.dtype, x.graph), x.shape)


def full(shape: Sequence[DimLike], value: Operand, dtype: DTypeSpec = np.float32) -> Node:
    """An array of `shape` filled with `value` (a constant broadcast, never materialized)."""
    return broadcast_to(const(value, dtype), tuple(shape))


__all__ = ["clip", "convert", "full", "gelu", "leaky_relu", "log_softmax", "logsumexp", "mean",
           "one_hot", "ones_like", "power", "reciprocal", "relu", "sigmoid", "silu", "softmax",
           "softplus", "square", "variance", "where", "zeros_like"]
