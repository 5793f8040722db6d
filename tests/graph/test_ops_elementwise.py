"""Elementwise primitives (unary, binary, compare, select, convert) against NumPy.

One graph per dtype computes every op of a table over several shapes
(scalar, zero-size, broadcast), so the suite stays small on compiling backends.
"""
import numpy as np
import pytest
import scipy.special

from mlframework import graph as G
from op_records import (ALL, BOOL, FLOATS, INTS, NUMERIC, SIGNED, OpRecord, assert_close,
                        digamma, ids, in_float64, lgamma, random)
from op_records_bits import (BITS, bitcast_targets, bitcast_values, clz, int_special, popcount,
                             shift_left, shift_pairs, shift_right_arithmetic,
                             shift_right_logical)

NAN = float("nan")
INF = float("inf")


def _round_half_even(x):
    return np.round(x)


UNARY = [
    OpRecord("abs", G.abs, np.abs, NUMERIC),
    OpRecord("neg", G.neg, np.negative, NUMERIC),
    OpRecord("sign", G.sign, in_float64(np.sign), NUMERIC),
    OpRecord("exp", G.exp, in_float64(np.exp), FLOATS),
    OpRecord("expm1", G.expm1, in_float64(np.expm1), FLOATS),
    OpRecord("log", G.log, in_float64(np.log), FLOATS, domain=(0.05, 5.0)),
    OpRecord("log1p", G.log1p, in_float64(np.log1p), FLOATS, domain=(-0.9, 3.0)),
    OpRecord("sqrt", G.sqrt, in_float64(np.sqrt), FLOATS, domain=(0.0, 5.0)),
    OpRecord("rsqrt", G.rsqrt, in_float64(lambda x: 1 / np.sqrt(x)), FLOATS, domain=(0.1, 5.0)),
    OpRecord("tanh", G.tanh, in_float64(np.tanh), FLOATS),
    OpRecord("logistic", G.logistic, in_float64(scipy.special.expit), FLOATS, domain=(-8, 8)),
    OpRecord("sin", G.sin, in_float64(np.sin), FLOATS),
    OpRecord("cos", G.cos, in_float64(np.cos), FLOATS),
    OpRecord("floor", G.floor, in_float64(np.floor), FLOATS),
    OpRecord("ceil", G.ceil, in_float64(np.ceil), FLOATS),
    OpRecord("round", G.round, in_float64(_round_half_even), FLOATS),
    OpRecord("erf", G.erf, in_float64(scipy.special.erf), FLOATS),
    OpRecord("erf_inv", G.erf_inv, in_float64(scipy.special.erfinv), FLOATS, domain=(-0.9, 0.9),
             tol={np.dtype(np.float32): (1e-4, 1e-5)}),
    OpRecord("tan", G.tan, in_float64(np.tan), FLOATS, domain=(-1.3, 1.3)),
    OpRecord("asin", G.asin, in_float64(np.arcsin), FLOATS, domain=(-0.95, 0.95)),
    OpRecord("acos", G.acos, in_float64(np.arccos), FLOATS, domain=(-0.95, 0.95)),
    OpRecord("atan", G.atan, in_float64(np.arctan), FLOATS, domain=(-5, 5)),
    OpRecord("sinh", G.sinh, in_float64(np.sinh), FLOATS),
    OpRecord("cosh", G.cosh, in_float64(np.cosh), FLOATS),
    OpRecord("asinh", G.asinh, in_float64(np.arcsinh), FLOATS, domain=(-5, 5)),
    OpRecord("acosh", G.acosh, in_float64(np.arccosh), FLOATS, domain=(1.0, 5.0)),
    OpRecord("atanh", G.atanh, in_float64(np.arctanh), FLOATS, domain=(-0.95, 0.95)),
    OpRecord("erfc", G.erfc, in_float64(scipy.special.erfc), FLOATS),
    OpRecord("lgamma", G.lgamma, in_float64(lgamma), FLOATS, domain=(0.1, 6.0)),
    OpRecord("digamma", G.digamma, in_float64(digamma), FLOATS, domain=(0.1, 6.0),
             tol={np.dtype(np.float64): (1e-11, 1e-11)}),
    OpRecord("cbrt", G.cbrt, in_float64(np.cbrt), FLOATS),
    OpRecord("exp2", G.exp2, in_float64(np.exp2), FLOATS),
    OpRecord("log2", G.log2, in_float64(np.log2), FLOATS, domain=(0.05, 5.0)),
    OpRecord("is_finite", G.is_finite, np.isfinite, FLOATS),
    OpRecord("is_nan", G.is_nan, np.isnan, FLOATS),
    OpRecord("is_inf", G.is_inf, np.isinf, FLOATS),
    OpRecord("bitwise_not", G.bitwise_not, np.invert, INTS + BOOL, domain=BITS),
    OpRecord("population_count", G.population_count, popcount, INTS, domain=BITS),
    OpRecord("count_leading_zeros", G.count_leading_zeros, clz, INTS, domain=BITS),
    OpRecord("logical_not", G.logical_not, np.logical_not, BOOL),
    OpRecord("stop_gradient", G.stop_gradient, lambda x: x, ALL),
]

# Values every float unary op also sees: halves (rounding), signed zero, NaN, infinities.
SPECIAL = {"round": [0.5, 1.5, 2.5, -0.5, -2.5, 3.5], "floor": [-0.5, -1.0, 2.0],
           "ceil": [-0.5, -1.0, 2.0], "sign": [NAN, -0.0, 0.0, -2.0],
           "is_finite": [NAN, float("inf"), -float("inf"), 0.0, 6e4],
           "abs": [-0.0, NAN, -float("inf")], "exp": [-float("inf"), 0.0, NAN],
           "is_nan": [NAN, INF, -INF, 0.0], "is_inf": [NAN, INF, -INF, 0.0, 6e4],
           "lgamma": [0.0, -0.0, -1.0, -2.0, 1.0, 2.0, -2.5, -0.5, INF, -INF, NAN],
           "digamma": [0.0, -0.0, -1.0, -2.0, 1.0, 2.0, -2.5, -0.5, INF, -INF, NAN],
           "cbrt": [-8.0, -0.0, 27.0, INF, -INF, NAN], "exp2": [-INF, INF, 0.0, -3.0, NAN],
           "log2": [0.0, -1.0, 0.25, INF, NAN], "tan": [-0.0, NAN, INF],
           "asin": [1.0, -1.0, 2.0, -0.0], "acos": [1.0, -1.0, 2.0], "atan": [INF, -INF, -0.0],
           "sinh": [-0.0, INF, -INF], "cosh": [-0.0, INF, -INF], "asinh": [-0.0, -INF],
           "acosh": [1.0, 0.5, INF], "atanh": [1.0, -1.0, 2.0, -0.0], "erfc": [-INF, INF, 0.0]}
SHAPES = [(), (0, 3), (2, 5)]


def _unary_inputs(rng, record, dtype):
    arrays = [random(rng, s, dtype, *record.domain) for s in SHAPES]
    if record.name in SPECIAL and dtype in FLOATS:
        arrays.append(np.array(SPECIAL[record.name], dtype))
    if record.domain is BITS and dtype in INTS:
        arrays.append(int_special(dtype))
    return arrays


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_unary(run, rng, dtype):
    records = [r for r in UNARY if dtype in r.dtypes]
    inputs = {r.name: _unary_inputs(rng, r, dtype) for r in records}
    got = run(lambda xs: {r.name: [r.fn(x) for x in xs[r.name]] for r in records}, inputs)
    for r in records:
        for x, y in zip(inputs[r.name], got[r.name]):
            want = np.asarray(r.ref(x))
            assert_close(y, want, want.dtype, f"{r.name}({x.dtype}{list(x.shape)})",
                         r.tolerance(dtype))


def _trunc_div(x, y):
    if x.dtype.kind == "f":
        return x / y
    if x.dtype.kind == "u":
        return x // y
    return (np.sign(x) * np.sign(y) * (np.abs(x) // np.abs(y))).astype(x.dtype)


BINARY = [
    OpRecord("add", G.add, in_float64(np.add), NUMERIC, 2),
    OpRecord("sub", G.sub, in_float64(np.subtract), NUMERIC, 2),
    OpRecord("mul", G.mul, in_float64(np.multiply), NUMERIC, 2),
    OpRecord("div", G.div, in_float64(_trunc_div), NUMERIC, 2),
    OpRecord("pow", G.pow, in_float64(np.power), FLOATS, 2, domain=(0.1, 3.0)),
    OpRecord("max", G.max, in_float64(np.maximum), NUMERIC, 2),
    OpRecord("min", G.min, in_float64(np.minimum), NUMERIC, 2),
    OpRecord("rem", G.rem, in_float64(np.fmod), NUMERIC, 2),
    OpRecord("atan2", G.atan2, in_float64(np.arctan2), FLOATS, 2),
    OpRecord("eq", G.eq, np.equal, ALL, 2),
    OpRecord("ne", G.ne, np.not_equal, ALL, 2),
    OpRecord("lt", G.lt, np.less, ALL, 2),
    OpRecord("le", G.le, np.less_equal, ALL, 2),
    OpRecord("gt", G.gt, np.greater, ALL, 2),
    OpRecord("ge", G.ge, np.greater_equal, ALL, 2),
    OpRecord("logical_and", G.logical_and, np.logical_and, BOOL, 2),
    OpRecord("logical_or", G.logical_or, np.logical_or, BOOL, 2),
    OpRecord("logical_xor", G.logical_xor, np.logical_xor, BOOL, 2),
    OpRecord("nextafter", G.nextafter, np.nextafter, FLOATS, 2),
    OpRecord("bitwise_and", G.bitwise_and, np.bitwise_and, INTS + BOOL, 2, domain=BITS),
    OpRecord("bitwise_or", G.bitwise_or, np.bitwise_or, INTS + BOOL, 2, domain=BITS),
    OpRecord("bitwise_xor", G.bitwise_xor, np.bitwise_xor, INTS + BOOL, 2, domain=BITS),
    OpRecord("shift_left", G.shift_left, shift_left, INTS, 2, domain=BITS),
    OpRecord("shift_right_logical", G.shift_right_logical, shift_right_logical, INTS, 2,
             domain=BITS),
    OpRecord("shift_right_arithmetic", G.shift_right_arithmetic, shift_right_arithmetic, INTS,
             2, domain=BITS),
]
PAIRS = [((), ()), ((2, 3), (2, 3)), ((3, 1), (1, 4)), ((0, 3), (3,)), ((2, 3), ()),
         ((), (0,))]


def _binary_inputs(rng, record, dtype):
    pairs = []
    for sx, sy in PAIRS:
        x, y = random(rng, sx, dtype, *record.domain), random(rng, sy, dtype, *record.domain)
        if record.name in ("div", "rem"):  # no division by zero
            y = np.where(y == 0, np.ones_like(y), y)
        pairs.append((x, y))
    if dtype in FLOATS and record.name in ("max", "min", "rem", "add"):
        pairs.append((np.array([NAN, 1.0, NAN, -0.0], dtype),
                      np.array([1.0, NAN, NAN, 0.5], dtype)))
    if dtype in SIGNED and record.name in ("div", "rem"):  # C rounds toward zero
        pairs.append((np.array([-7, 7, -7, 7], dtype), np.array([2, -2, -2, 2], dtype)))
    if dtype in FLOATS and record.name == "nextafter":  # signed zeros, NaN, infinities
        pairs.append((np.array([0.0, -0.0, 0.0, 1.0, NAN, 1.0, INF, -INF, 1.0, -1.0], dtype),
                      np.array([-0.0, 1.0, -1.0, NAN, 1.0, 1.0, 0.0, INF, INF, -2.0], dtype)))
    if dtype in INTS and record.name.startswith("shift"):  # amounts at and past the width
        pairs.append(shift_pairs(dtype))
    return pairs


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_binary(run, rng, dtype):
    records = [r for r in BINARY if dtype in r.dtypes]
    inputs = {r.name: _binary_inputs(rng, r, dtype) for r in records}
    got = run(lambda ps: {r.name: [r.fn(x, y) for x, y in ps[r.name]] for r in records}, inputs)
    for r in records:
        for (x, y), out in zip(inputs[r.name], got[r.name]):
            want = np.asarray(r.ref(x, y))
            assert_close(out, want, want.dtype, f"{r.name}({x.dtype}{list(x.shape)}, "
                         f"{list(y.shape)})", r.tolerance(dtype))


@pytest.mark.parametrize("src", ALL, ids=ids(ALL))
def test_bitcast_convert_type(run, src):
    x = bitcast_values(src)
    targets = bitcast_targets(src)
    got = run(lambda x: [G.bitcast_convert_type(x, t) for t in targets], x)
    for target, y in zip(targets, got):
        if target.itemsize >= x.dtype.itemsize:
            want = x.view(target).reshape(x.shape[:-1] if target.itemsize > x.dtype.itemsize
                                          else x.shape)
        else:
            want = x.reshape(-1).view(target).reshape(*x.shape, -1)
        np.testing.assert_array_equal(y.view(np.uint8), want.view(np.uint8),
                                      f"bitcast {src} -> {target}")
        assert y.dtype == target and y.shape == want.shape, f"bitcast {src} -> {target}"


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_select_broadcasts_all_operands(run, rng, dtype):
    pred = rng.random((3, 1)) < 0.5
    a, b = random(rng, (1, 4), dtype), random(rng, (3, 4), dtype)
    got = run(lambda p, a, b: (G.select(p, a, b), G.where(p, a, b), G.select(p[0, 0], a, b[0])),
              pred, a, b)
    assert_close(got[0], np.where(pred, a, b), dtype, "select")
    assert_close(got[1], np.where(pred, a, b), dtype, "where")
    assert_close(got[2], np.where(pred[0, 0], a, b[0]), dtype, "select, scalar predicate")


@pytest.mark.parametrize("src", ALL, ids=ids(ALL))
def test_convert_to_every_dtype(run, rng, src):
    x = random(rng, (2, 6), src, 0.0, 100.0)  # in range of every target, so defined in C
    if src in FLOATS:
        x[0, :3] = np.array([0.0, 2.75, 99.5], src)
    x0 = np.zeros((0, 2), src)
    got = run(lambda x, x0: [(G.convert(x, t), G.convert(x0, t)) for t in ALL], x, x0)
    for target, (y, y0) in zip(ALL, got):
        want = x.astype(np.float64).astype(target) if target in FLOATS and src in FLOATS else \
            x.astype(target)
        assert_close(y, want, target, f"convert {src} -> {target}")
        assert_close(y0, x0.astype(target), target, f"convert {src}[0, 2] -> {target}")


@pytest.mark.parametrize("dtype", SIGNED + FLOATS, ids=ids(SIGNED + FLOATS))
def test_convert_negative_values_truncate_toward_zero(run, dtype):
    x = np.array([-2.75, -1.5, -0.25, 3.5], np.float32).astype(dtype)
    got = run(lambda x: [G.convert(x, t) for t in SIGNED + [np.bool_]], x)
    for target, y in zip(SIGNED + [np.bool_], got):
        assert_close(y, x.astype(target), target, f"convert {dtype} -> {target}")


def test_integer_overflow_wraps(run):
    x = np.array([127, -128, 100], np.int8)
    u = np.array([0, 255, 3], np.uint8)
    got = run(lambda x, u: (x + np.int8(1), -x, u - np.uint8(1), G.abs(x)), x, u)
    with np.errstate(over="ignore"):
        assert_close(got[0], x + np.int8(1))
        assert_close(got[1], -x)
        assert_close(got[2], u - np.uint8(1))
        assert_close(got[3], np.abs(x))


def test_int64_and_float64_stay_64_bit(run):
    big = np.array([2**40 + 1, -(2**53) - 3], np.int64)
    fine = np.array([1 + 2**-40, np.pi], np.float64)
    got = run(lambda a, b: (a * 3 + 1, b * b), big, fine)
    assert_close(got[0], big * 3 + 1)
    assert_close(got[1], fine * fine)
    assert got[1][0] != 1.0  # a float32 round trip would lose the 2**-40


@pytest.mark.parametrize("dtype", INTS[:1] + FLOATS[2:3], ids=["int8", "float32"])
def test_python_scalars_take_the_node_dtype(run, dtype):
    x = np.array([1, 2, 3], dtype)
    got = run(lambda x: (x + 1, 2 * x, x - 1, 6 / x if dtype in FLOATS else x / 1, x ** 2), x)
    for y in got:
        assert y.dtype == dtype
    assert_close(got[0], x + 1)
    assert_close(got[4], x * x)


OPERATORS = {
    "x + y": (lambda x, y: x + y, np.add), "x - y": (lambda x, y: x - y, np.subtract),
    "x * y": (lambda x, y: x * y, np.multiply), "-x": (lambda x, y: -x, lambda x, y: -x),
    "x < y": (lambda x, y: x < y, np.less), "x <= y": (lambda x, y: x <= y, np.less_equal),
    "x > y": (lambda x, y: x > y, np.greater), "x >= y": (lambda x, y: x >= y, np.greater_equal),
    "abs(x)": (lambda x, y: abs(x), lambda x, y: np.abs(x)),
    "2 - x": (lambda x, y: 2 - x, lambda x, y: 2 - x), "3 * y": (lambda x, y: 3 * y,
                                                              lambda x, y: 3 * y),
    "x ** 0": (lambda x, y: x ** 0, lambda x, y: np.ones_like(x)),
    "x ** 3": (lambda x, y: x ** 3, lambda x, y: x * x * x),
    "x @ y.T": (lambda x, y: x @ y.T, lambda x, y: x @ y.T),
    "array - x": (lambda x, y: np.arange(4).astype(x.dtype) - x,
                  lambda x, y: np.arange(4).astype(x.dtype) - x),
    "array @ x.T": (lambda x, y: np.ones((2, 4), x.dtype) @ x.T,
                    lambda x, y: np.ones((2, 4), x.dtype) @ x.T),
    "x[0] @ y.T": (lambda x, y: x[0] @ y.T, lambda x, y: x[0] @ y.T),
}


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.bool_], ids=["int8", "uint16", "bool"])
def test_python_bit_operators(run, rng, dtype):
    x, y = random(rng, (3, 4), dtype, -100, 100), random(rng, (1, 4), dtype, 0, 5)
    k = True if dtype == np.bool_ else 3  # a Python scalar of the node's kind
    table = {"x & y": (lambda x, y: x & y, np.bitwise_and),
             "x | y": (lambda x, y: x | y, np.bitwise_or),
             "x ^ y": (lambda x, y: x ^ y, np.bitwise_xor),
             "~x": (lambda x, y: ~x, lambda x, y: np.invert(x)),
             "k & x": (lambda x, y: k & x, lambda x, y: np.bitwise_and(x, dtype(k)))}
    if dtype != np.bool_:  # >> shifts in the sign for int8, zeros for uint16 (as NumPy)
        table.update({"x << y": (lambda x, y: x << y, np.left_shift),
                      "x >> y": (lambda x, y: x >> y, np.right_shift),
                      "1 << y": (lambda x, y: 1 << y, lambda x, y: np.left_shift(dtype(1), y))})
    got = run(lambda x, y: {name: fn(x, y) for name, (fn, _) in table.items()}, x, y)
    for name, (_, ref) in table.items():
        assert_close(got[name], np.broadcast_to(ref(x, y), got[name].shape), dtype, name)


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64],
                         ids=["int32", "float32", "float64"])
def test_python_operators(run, rng, dtype):
    x, y = random(rng, (3, 4), dtype, 1, 4), random(rng, (1, 4), dtype, 1, 4)
    extra = {"x / y": (lambda x, y: x / y, lambda x, y: x / y if dtype != np.int32 else x // y),
             "1 / x": (lambda x, y: 1 / x, lambda x, y: (1 / x).astype(dtype) if dtype !=
                       np.int32 else np.ones_like(x) // x)}
    if dtype != np.int32:
        extra.update({"x ** y": (lambda x, y: x ** y, np.power),
                      "2 ** x": (lambda x, y: 2 ** x, lambda x, y: np.power(2, x).astype(dtype)),
                      "x ** 0.5": (lambda x, y: x ** 0.5, lambda x, y: np.sqrt(x))})
    table = {**OPERATORS, **extra}
    got = run(lambda x, y: {name: fn(x, y) for name, (fn, _) in table.items()}, x, y)
    for name, (_, ref) in table.items():
        want = np.asarray(ref(x, y))
        assert_close(got[name], want, want.dtype if want.dtype == np.bool_ else dtype, name)
