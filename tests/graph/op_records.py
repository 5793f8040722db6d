"""Shared pieces of the op tests: dtype lists, random inputs, tolerances and
the comparison that every op test uses (after JAX's lax_test_util).

References are NumPy (computed in float64 for floats, then rounded to the
tested dtype) or jax.numpy / jax.lax: never our own output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import ml_dtypes
import numpy as np
import scipy.special

jax.config.update("jax_enable_x64", True)  # references keep 64-bit types too

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = [np.dtype(np.float16), BF16, np.dtype(np.float32), np.dtype(np.float64)]
SIGNED = [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)]
UNSIGNED = [np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64)]
INTS = SIGNED + UNSIGNED
NUMERIC = INTS + FLOATS
BOOL = [np.dtype(np.bool_)]
ALL = BOOL + NUMERIC

# (rtol, atol) per float dtype; integers and bools must match exactly.
TOLERANCES = {np.dtype(np.float16): (4e-3, 4e-3), BF16: (3e-2, 3e-2),
              np.dtype(np.float32): (2e-5, 1e-5), np.dtype(np.float64): (1e-11, 1e-12)}


def ids(dtypes) -> list[str]:
    """Readable pytest ids for a list of dtypes."""
    return [np.dtype(d).name for d in dtypes]


def random(rng, shape, dtype, lo=-3.0, hi=3.0) -> np.ndarray:
    """Random values of `dtype` in [lo, hi) (clipped to the dtype's range); bools are coin flips."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(np.floor(lo)), info.min), min(int(np.ceil(hi)), info.max)
        return rng.integers(lo, hi, size=shape, endpoint=False).astype(dtype)
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def distinct(rng, shape, dtype) -> np.ndarray:
    """A permutation of 0..size-1 (shifted to be signed where possible) of `dtype`:
    no ties, so argmax, sort and max-pooling have one right answer."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    values = rng.permutation(size) - (size // 2 if dtype.kind not in "bu" else 0)
    return values.reshape(shape).astype(dtype)


def assert_close(got, want, dtype=None, what: str = "", tol=None) -> None:
    """Asserts `got` has `dtype` (default: want's) and shape and matches `want`
    within the dtype's tolerance (exactly for ints and bools; NaNs must match)."""
    got, want = np.asarray(got), np.asarray(want)
    dtype = np.dtype(dtype if dtype is not None else want.dtype)
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if dtype.kind in "biu":  # (bfloat16's kind is "V")
        np.testing.assert_array_equal(got, want.astype(dtype), err_msg=what)
        return
    rtol, atol = tol or TOLERANCES[dtype]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=atol, err_msg=what)


@dataclass(frozen=True)
class OpRecord:
    """One op under test: our function, the reference, the dtypes it takes and
    how to draw its inputs (`domain` is the (lo, hi) range of random values)."""

    name: str
    fn: Callable
    ref: Callable
    dtypes: list
    nargs: int = 1
    domain: tuple = (-3.0, 3.0)
    tol: dict = field(default_factory=dict)

    def tolerance(self, dtype):
        return self.tol.get(np.dtype(dtype), TOLERANCES.get(np.dtype(dtype)))


def in_float64(fn):
    """Wraps a NumPy reference so float inputs are computed in float64 and the result
    is rounded back to the first input's dtype (how low-precision dtypes should behave)."""
    def ref(*args):
        dtype = np.asarray(args[0]).dtype
        if dtype.kind != "f" and dtype != BF16:
            return np.asarray(fn(*args))
        wide = [np.asarray(a).astype(np.float64) for a in args]
        with np.errstate(all="ignore"):  # edge values: poles, domain errors
            out = np.asarray(fn(*wide))
        return out.astype(dtype) if out.dtype.kind == "f" else out
    return ref


def _poles(x):
    """Where x is 0, a negative integer or -inf: the poles of lgamma and digamma."""
    return (x <= 0) & (x == np.floor(x)) | (x == -np.inf)


def lgamma(x):
    """log|Gamma(x)| in float64 with XLA's +inf at the poles; scipy overflows below 1e-300,
    where lgamma(x) = -log|x| to all digits."""
    tiny = np.abs(x) < 1e-300
    return np.where(_poles(x), np.inf, np.where(tiny, -np.log(np.where(tiny, np.abs(x), 1)),
                                                 scipy.special.gammaln(x)))


def digamma(x):
    """scipy's digamma with XLA's NaN at the poles."""
    return np.where(_poles(x), np.nan, scipy.special.psi(x))
