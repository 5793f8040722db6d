"""Random numbers from a counter-based generator (threefry-2x32).

A key is a uint32[2] array: `random_key(seed)` makes one on the host, as
`jax.random.PRNGKey` does. The same key always gives the same numbers, on
every backend; derive new keys with `split_key` instead of reusing one.
"""
from __future__ import annotations

import math

import numpy as np

from mlframework.graph import gen_ops as ops
from mlframework.graph.broadcasting import as_node
from mlframework.graph.errors import DTypeError
from mlframework.graph.graph import Node


def random_key(seed: int) -> np.ndarray:
    """A uint32[2] key from an integer seed (equal to jax.random.PRNGKey(seed)'s data)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)


def split_key(key, num: int = 2) -> Node:
    """`num` new keys from one: uint32[num, 2]."""
    return ops.rng_bits(as_node(key), (num, 2))


def random_bits(key, shape) -> Node:
    """Uniform uint32 bits of `shape`."""
    return ops.rng_bits(as_node(key), tuple(shape))


def uniform(key, shape, dtype=np.float32, minval=0.0, maxval=1.0) -> Node:
    """Uniform floats in [minval, maxval) of `shape`.

    Uses the top 24 bits of each random word, so values are multiples of
    2**-24 (before scaling) and never reach maxval.
    """
    from mlframework.core.dtypes import as_dtype
    dtype = as_dtype(dtype)
    if not dtype.is_float:
        raise DTypeError(f"uniform requires a float dtype, got {dtype}")
    bits = random_bits(key, shape)
    unit = ops.convert(bits / np.uint32(256), np.float32) * np.float32(2.0 ** -24)
    unit = ops.convert(unit, dtype) if dtype.numpy != np.float32 else unit
    return unit * (maxval - minval) + minval if (minval, maxval) != (0.0, 1.0) else unit


def normal(key, shape, dtype=np.float32, mean=0.0, stddev=1.0) -> Node:
    """Normally distributed floats of `shape` (Box-Muller over two uniforms)."""
    shape = tuple(shape)
    keys = split_key(key, 2)
    u1 = uniform(keys[0], shape, np.float32)
    u2 = uniform(keys[1], shape, np.float32)
    radius = ops.sqrt(-2.0 * ops.log1p(-u1))  # log1p(-u) is finite: u < 1
    z = radius * ops.cos(np.float32(2 * math.pi) * u2)
    z = ops.convert(z, dtype) if np.dtype(dtype) != np.float32 else z
    return z * stddev + mean if (mean, stddev) != (0.0, 1.0) else z
