"""Differential tests of the elementwise primitives against jax.lax, on every backend.

Every unary, binary, compare, select and convert row of the op table runs in every dtype
it accepts, over the edge values (NaN of both signs, +-inf, +-0.0, subnormals, dtype
extremes, values near exp's and log's overflow), every pair of them for binary ops,
random values and shapes with zero-size and size-1 axes. One graph per dtype.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from differential import (ALL, DTYPE_SETS, EXACT, FLOATS, Case, Check, edge_values, pairs,
                          random_values, run_cases, ulp)
from jax import lax
from op_records import digamma, lgamma

from generators.ops_table import BY_NAME
from mlframework import graph as G


def _f64(fn):
    """A NumPy reference computed in float64 and rounded to the input's dtype."""
    def ref(*args):
        dtype = args[0].dtype
        with np.errstate(all="ignore"):
            out = np.asarray(fn(*[np.asarray(a).astype(np.float64) if a.dtype in FLOATS else a
                                  for a in args]))
        return out.astype(dtype) if out.dtype.kind == "f" else out
    return ref


def _np_round(x):
    return np.round(x)


def _log2(x):
    return jnp.log2(x)


# name: (XLA reference, IEEE reference in NumPy, check for float dtypes)
UNARY = {
    "abs": (jnp.abs, np.abs, EXACT),
    "neg": (lax.neg, np.negative, EXACT),
    "sign": (lax.sign, np.sign, EXACT),
    "exp": (lax.exp, _f64(np.exp), ulp(2)),
    "expm1": (lax.expm1, _f64(np.expm1), ulp(2)),
    "log": (lax.log, _f64(np.log), ulp(2)),
    "log1p": (lax.log1p, _f64(np.log1p), ulp(2)),
    "sqrt": (lax.sqrt, _f64(np.sqrt), EXACT),
    "rsqrt": (lax.rsqrt, _f64(lambda x: 1 / np.sqrt(x)), ulp(2)),
    "tanh": (lax.tanh, _f64(np.tanh), ulp(2)),
    "logistic": (lax.logistic, _f64(scipy.special.expit), ulp(2)),
    "sin": (lax.sin, _f64(np.sin), ulp(2)),
    "cos": (lax.cos, _f64(np.cos), ulp(2)),
    "floor": (lax.floor, np.floor, EXACT),
    "ceil": (lax.ceil, np.ceil, EXACT),
    "round": (lambda x: lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN), _np_round, EXACT),
    "erf": (lax.erf, _f64(scipy.special.erf), ulp(3)),
    "erfc": (lax.erfc, _f64(scipy.special.erfc), ulp(8)),  # XLA's float64 is 5 ulps off
    "erf_inv": (lax.erf_inv, _f64(scipy.special.erfinv), ulp(4)),
    "tan": (lax.tan, _f64(np.tan), ulp(2)),
    "asin": (lax.asin, _f64(np.arcsin), ulp(2)),
    "acos": (lax.acos, _f64(np.arccos), ulp(2)),
    "atan": (lax.atan, _f64(np.arctan), ulp(2)),
    "sinh": (lax.sinh, _f64(np.sinh), ulp(2)),
    "cosh": (lax.cosh, _f64(np.cosh), ulp(2)),
    "asinh": (lax.asinh, _f64(np.arcsinh), ulp(2)),
    "acosh": (lax.acosh, _f64(np.arccosh), ulp(2)),
    "atanh": (lax.atanh, _f64(np.arctanh), ulp(2)),
    # near their roots float64 lgamma and digamma lose relative digits (XLA's too, by up to
    # 150 ulps); an absolute 1e-13 there is still 1e-13 below their values elsewhere
    "lgamma": (lax.lgamma, _f64(lgamma), Check("ulp", 4, atol=1e-13)),
    "digamma": (lax.digamma, _f64(digamma), Check("ulp", 4, atol=1e-13)),
    "cbrt": (lax.cbrt, _f64(np.cbrt), ulp(2)),
    "exp2": (lax.exp2, _f64(np.exp2), ulp(2)),
    "log2": (_log2, _f64(np.log2), ulp(2)),
    "is_finite": (lax.is_finite, np.isfinite, EXACT),
    "is_nan": (jnp.isnan, np.isnan, EXACT),
    "is_inf": (jnp.isinf, np.isinf, EXACT),
    "bitwise_not": (lax.bitwise_not, np.invert, EXACT),
    "population_count": (lax.population_count, None, EXACT),
    "count_leading_zeros": (lax.clz, None, EXACT),
    "logical_not": (lax.bitwise_not, np.logical_not, EXACT),
    "stop_gradient": (lax.stop_gradient, lambda x: x, EXACT),
}


def _int_div(x, y):
    return lax.div(x, y)


BINARY = {
    "add": (lax.add, np.add, EXACT),
    "sub": (lax.sub, np.subtract, EXACT),
    "mul": (lax.mul, np.multiply, EXACT),
    "div": (_int_div, np.divide, EXACT),
    "pow": (lax.pow, _f64(np.power), ulp(2)),
    "max": (lax.max, np.maximum, EXACT),
    "min": (lax.min, np.minimum, EXACT),
    "rem": (lax.rem, np.fmod, EXACT),
    "atan2": (lax.atan2, _f64(np.arctan2), ulp(2)),
    "eq": (lax.eq, np.equal, EXACT),
    "ne": (lax.ne, np.not_equal, EXACT),
    "lt": (lax.lt, np.less, EXACT),
    "le": (lax.le, np.less_equal, EXACT),
    "gt": (lax.gt, np.greater, EXACT),
    "ge": (lax.ge, np.greater_equal, EXACT),
    "logical_and": (lax.bitwise_and, np.logical_and, EXACT),
    "logical_or": (lax.bitwise_or, np.logical_or, EXACT),
    "logical_xor": (lax.bitwise_xor, np.logical_xor, EXACT),
    "nextafter": (lax.nextafter, np.nextafter, EXACT),
    "bitwise_and": (lax.bitwise_and, np.bitwise_and, EXACT),
    "bitwise_or": (lax.bitwise_or, np.bitwise_or, EXACT),
    "bitwise_xor": (lax.bitwise_xor, np.bitwise_xor, EXACT),
    "shift_left": (lax.shift_left, None, EXACT),
    "shift_right_logical": (lax.shift_right_logical, None, EXACT),
    "shift_right_arithmetic": (lax.shift_right_arithmetic, None, EXACT),
}

DOMAINS = {"log": (0.01, 5.0), "log1p": (-0.9, 4.0), "sqrt": (0.0, 5.0), "rsqrt": (0.1, 5.0),
           "erf_inv": (-0.999, 0.999), "pow": (0.05, 3.0), "asin": (-1.0, 1.0),
           "acos": (-1.0, 1.0), "atanh": (-1.0, 1.0), "acosh": (1.0, 6.0), "log2": (0.01, 5.0),
           "lgamma": (-4.0, 8.0), "digamma": (-4.0, 8.0)}
SHAPES = [(), (0,), (1,), (2, 1, 3), (3, 0, 2)]


def _check(name, dtype, table):
    check = table[name][2]
    if np.dtype(dtype) not in FLOATS or check.kind == "exact":
        return EXACT
    if np.dtype(dtype).itemsize == 2:  # computed in float32, rounded once: 1 ulp
        return Check("ulp", 1)
    return check


def _accepts(name, dtype) -> bool:
    return np.dtype(dtype) in DTYPE_SETS[BY_NAME[name].dtypes]


def _unary_cases(rng, dtype):
    cases = []
    for k, (name, (ref, ieee, _)) in enumerate(UNARY.items()):
        if not _accepts(name, dtype):
            continue
        fn, check = getattr(G, name), _check(name, dtype, UNARY)
        lo, hi = DOMAINS.get(name, (-4.0, 4.0))
        values = np.concatenate([edge_values(dtype), random_values(rng, (24,), dtype, lo, hi)])
        shaped = random_values(rng, SHAPES[k % len(SHAPES)], dtype, lo, hi)
        cases += [Case(f"{name}({dtype}{list(x.shape)})", fn, ref, (x,), check, ieee)
                  for x in (values, shaped)]
    return cases


def _binary_cases(rng, dtype):
    cases = []
    ex, ey = pairs(edge_values(dtype))
    for k, (name, (ref, ieee, _)) in enumerate(BINARY.items()):
        if not _accepts(name, dtype):
            continue
        fn, check = getattr(G, name), _check(name, dtype, BINARY)
        lo, hi = DOMAINS.get(name, (-4.0, 4.0))
        x = np.concatenate([ex, random_values(rng, (24,), dtype, lo, hi)])
        y = np.concatenate([ey, random_values(rng, (24,), dtype, -3, 3)])
        shape = SHAPES[k % len(SHAPES)]
        inputs = [(x, y), (random_values(rng, shape, dtype, lo, hi),
                           random_values(rng, shape, dtype, -3, 3))]
        if name == "div" and np.dtype(dtype).kind in "iu":
            ieee = None  # XLA's integer division (x / 0 = -1, MIN / -1 = MIN) is not NumPy's
        cases += [Case(f"{name}({dtype}{list(x.shape)})", fn, ref, (x, y), check, ieee)
                  for x, y in inputs]
    return cases


def _select_cases(rng, dtype):
    values = edge_values(dtype)
    pred = rng.random(values.shape) < 0.5
    p, t, f = (rng.random((3, 0, 1)) < 0.5, random_values(rng, (3, 0, 1), dtype),
               random_values(rng, (3, 0, 1), dtype))
    return [Case(f"select({dtype}[{values.size}])", G.select, lax.select,
                 (pred, values, np.roll(values, 3)), EXACT, np.where),
            Case(f"select({dtype}[3, 0, 1])", G.select, lax.select, (p, t, f)),
            Case(f"select({dtype}[])", G.select, lax.select, (np.bool_(True), values[3],
                                                              values[1]))]


@pytest.mark.parametrize("dtype", ALL, ids=[d.name for d in ALL])
def test_elementwise_matches_xla(backend_name, dtype):
    rng = np.random.default_rng(10)
    cases = _unary_cases(rng, dtype) + _binary_cases(rng, dtype) + _select_cases(rng, dtype)
    run_cases(backend_name, cases, f"elementwise_{dtype.name}")


def bitcast_cases(dtype) -> list[Case]:
    """dtype's edge values (as [n, 2], so a wider target fits) bit cast to every dtype of
    its width and, where there are, one narrower and one wider (bool only to bool)."""
    values = edge_values(dtype)
    x = values[: values.size // 2 * 2].reshape(-1, 2)
    targets = [t for t in ALL if t.itemsize == dtype.itemsize and (t == np.bool_) ==
               (dtype == np.bool_)]
    if dtype != np.bool_:
        targets += [np.dtype(f"u{w}") for w in (dtype.itemsize // 2, dtype.itemsize * 2)
                    if w in (1, 2, 4, 8)]
    return [Case(f"bitcast_convert_type({dtype} -> {t})",
                 lambda a, t=t: G.bitcast_convert_type(a, t),
                 lambda a, t=t: lax.bitcast_convert_type(a, t), (x,)) for t in targets]


@pytest.mark.parametrize("dtype", ALL, ids=[d.name for d in ALL])
def test_bitcast_matches_xla(backend_name, dtype):
    run_cases(backend_name, bitcast_cases(dtype), f"bitcast_{dtype.name}")


# Values whose conversion rounds differently through float32 than directly (double rounding).
def _convert_inputs(src):
    values = edge_values(src)
    if src == np.float64:
        extra = [1 + 2.0 ** -11 + 2.0 ** -40, 1 + 2.0 ** -8 + 2.0 ** -40, 2.0 ** 70, -3e9,
                 4.5e9, 1.5e19, -1.5e19, 255.5, -128.5, 65535.9, 2.0 ** 63, 2.0 ** 64]
        values = np.concatenate([values, np.array(extra, np.float64)])
    elif src == np.float32:
        values = np.concatenate([values, np.array([3e9, -3e9, 4.5e9, 1.5e19, 2.0 ** 31,
                                                   255.5, -0.99], np.float32)])
    return values


def _convert_case(src, dst):
    def ours(x):
        return G.convert(x, dst)

    def ref(x):
        return lax.ne(x, lax.full_like(x, 0)) if dst == np.bool_ and src != np.bool_ \
            else lax.convert_element_type(x, dst)

    def ieee(x):
        with np.errstate(all="ignore"):
            return x != 0 if dst == np.bool_ else x.astype(np.float64).astype(dst) \
                if dst in FLOATS else np.where(np.isnan(x.astype(np.float64)), 0,
                                               x.astype(np.float64)).astype(dst)

    return Case(f"convert({src} -> {dst})", ours, ref, (_convert_inputs(src),), EXACT, ieee)


@pytest.mark.parametrize("src", ALL, ids=[d.name for d in ALL])
def test_convert_matches_xla(backend_name, src):
    run_cases(backend_name, [_convert_case(src, dst) for dst in ALL], f"convert_{src.name}")
