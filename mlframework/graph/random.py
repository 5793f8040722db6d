"""Random numbers from a counter-based generator (threefry-2x32).

A key is a uint32[2] array: `random_key(seed)` makes one on the host, as
`jax.random.PRNGKey` does. The same key always gives the same numbers, on
every backend; derive new keys with `split_key` instead of reusing one.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlframework.core.dtypes import DTypeSpec, as_dtype
from mlframework.core.symbolic import DimLike
from mlframework.graph import gen_ops as ops
from mlframework.graph.broadcasting import as_node
from mlframework.graph.errors import DTypeError
from mlframework.graph.graph import Node, Operand


def random_key(seed: int) -> np.ndarray:
    """A uint32[2] key from an integer seed (equal to jax.random.PRNGKey(seed)'s data)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)


def split_key(key: Operand, num: int = 2) -> Node:
    """`num` new keys from one: uint32[num, 2]."""
    return ops.rng_bits(as_node(key), (num, 2))


def random_bits(key: Operand, shape: Sequence[DimLike]) -> Node:
    """Uniform uint32 bits of `shape`."""
    return ops.rng_bits(as_node(key), tuple(shape))


# Significant bits of each float dtype (capped at the 32 random bits of a word).
_PRECISION = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 32}


def uniform(key: Operand, shape: Sequence[DimLike], dtype: DTypeSpec = np.float32,
            minval: float = 0.0, maxval: float = 1.0) -> Node:
    """Uniform floats of `shape` in [minval, maxval).

    The unit interval is sampled as k * 2**-p for the top p random bits of
    each word, p being the dtype's precision (24 for float32, 11 for float16,
    8 for bfloat16, 32 for float64), so it never reaches 1. Scaled values are
    rounded in `dtype` and may round up to maxval in low precision.

    Raises:
        DTypeError: if `dtype` is not a float dtype.
    """
    dtype = as_dtype(dtype)
    if not dtype.is_float:
        raise DTypeError(f"uniform requires a float dtype, got {dtype}")
    p = _PRECISION[dtype.value]
    bits = random_bits(key, shape)
    if p < 32:
        bits = bits / np.uint32(2 ** (32 - p))  # the top p bits
    unit = ops.convert(bits, dtype) * float(2.0 ** -p)
    return unit * (maxval - minval) + minval if (minval, maxval) != (0.0, 1.0) else unit


def normal(key: Operand, shape: Sequence[DimLike], dtype: DTypeSpec = np.float32, mean: float = 0.0,
           stddev: float = 1.0) -> Node:
    """Normally distributed floats of `shape` (Box-Muller over two uniforms),
    computed in float64 for float64 and in float32 for the other float dtypes.

    Raises:
        DTypeError: if `dtype` is not a float dtype.
    """
    dtype = as_dtype(dtype)
    if not dtype.is_float:
        raise DTypeError(f"normal requires a float dtype, got {dtype}")
    shape = tuple(shape)
    work = dtype if dtype is as_dtype(np.float64) else as_dtype(np.float32)
    keys = split_key(key, 2)
    u1 = uniform(keys[0], shape, work)
    u2 = uniform(keys[1], shape, work)
    radius = ops.sqrt(ops.mul(ops.log1p(ops.neg(u1)), -2.0))  # log1p(-u) is finite: u < 1
    z = radius * ops.cos(u2 * (2 * math.pi))
    z = ops.convert(z, dtype) if dtype is not work else z
    return z * stddev + mean if (mean, stddev) != (0.0, 1.0) else z
