"""Variable initializers: functions that compute a variable's first value on the host.

An initializer is called as `init(rng, shape, dtype)` with a NumPy
`Generator` and returns a NumPy array. The context seeds `rng` from its seed
and the variable's full name, so a variable's initial value depends on
neither the order in which variables are created nor the backend.

Fan-in and fan-out follow Keras: for a shape [..., in, out] the receptive
field is the product of the leading dims, fan_in = in * receptive and
fan_out = out * receptive (dense weights are [in, out], conv kernels
[*window, in, out]).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

Initializer = Callable[[np.random.Generator, tuple, np.dtype], np.ndarray]


def _fans(shape: tuple) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def zeros() -> Initializer:
    """All zeros."""
    return lambda rng, shape, dtype: np.zeros(shape, dtype)


def ones() -> Initializer:
    """All ones."""
    return lambda rng, shape, dtype: np.ones(shape, dtype)


def constant(value: ArrayLike) -> Initializer:
    """Every element equal to `value` (or `value` broadcast to the shape)."""
    return lambda rng, shape, dtype: np.broadcast_to(np.asarray(value, dtype), shape).copy()


def random_normal(stddev: float = 0.05, mean: float = 0.0) -> Initializer:
    """Normal(mean, stddev)."""
    return lambda rng, shape, dtype: rng.normal(mean, stddev, shape).astype(dtype)


def random_uniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
    """Uniform in [minval, maxval)."""
    return lambda rng, shape, dtype: rng.uniform(minval, maxval, shape).astype(dtype)


def truncated_normal(stddev: float = 0.05, mean: float = 0.0) -> Initializer:
    """Normal(mean, stddev) with draws beyond two standard deviations redrawn."""
    def init(rng, shape, dtype):
        x = rng.standard_normal(shape)
        bad = np.abs(x) > 2
        while bad.any():
            x[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(x) > 2
        return (x * stddev + mean).astype(dtype)
    return init


def _scaled(scale: float, mode: str, distribution: str) -> Initializer:
    def init(rng, shape, dtype):
        fan_in, fan_out = _fans(tuple(shape))
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, fan)
        if distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return rng.uniform(-limit, limit, shape).astype(dtype)
        return rng.normal(0.0, math.sqrt(variance), shape).astype(dtype)
    return init


def glorot_uniform() -> Initializer:
    """Uniform in ±sqrt(6 / (fan_in + fan_out)) (Xavier uniform)."""
    return _scaled(1.0, "fan_avg", "uniform")


def glorot_normal() -> Initializer:
    """Normal(0, sqrt(2 / (fan_in + fan_out))) (Xavier normal)."""
    return _scaled(1.0, "fan_avg", "normal")


def he_uniform() -> Initializer:
    """Uniform in ±sqrt(6 / fan_in) (Kaiming uniform, for ReLU networks)."""
    return _scaled(2.0, "fan_in", "uniform")


def he_normal() -> Initializer:
    """Normal(0, sqrt(2 / fan_in)) (Kaiming normal, for ReLU networks)."""
    return _scaled(2.0, "fan_in", "normal")


def lecun_normal() -> Initializer:
    """Normal(0, sqrt(1 / fan_in))."""
    return _scaled(1.0, "fan_in", "normal")


__all__ = ["Initializer", "constant", "glorot_normal", "glorot_uniform", "he_normal",
           "he_uniform", "lecun_normal", "ones", "random_normal", "random_uniform",
           "truncated_normal", "zeros"]
