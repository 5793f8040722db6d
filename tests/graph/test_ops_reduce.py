"""Reductions (sum, prod, max, min, and, or) against NumPy, one graph per dtype.

Cases cover all axes, single and negative axes, several axes, no axes,
keepdims, scalars and zero-size inputs (which give the reduction's identity).
"""
import numpy as np
import pytest

from mlframework import graph as G
from op_records import ALL, BF16, FLOATS, assert_close, ids, random

# (axes, keepdims) cases for a [2, 3, 4] input.
CASES = [(None, False), (0, False), (-1, False), ((0, 2), False), ((), False), ((1,), True),
         ((-1, -3), True), (None, True)]
REDUCE_TOL = {np.dtype(np.float16): (1e-2, 1e-2), BF16: (6e-2, 6e-2)}


def _lowest(dtype):
    dtype = np.dtype(dtype)
    return -np.inf if dtype in FLOATS else np.iinfo(dtype).min


def _highest(dtype):
    dtype = np.dtype(dtype)
    return np.inf if dtype in FLOATS else np.iinfo(dtype).max


def _wide(x):
    return x.astype(np.float64) if x.dtype in FLOATS else x


REDUCTIONS = {
    "reduce_sum": (G.reduce_sum, lambda x, a, k: np.sum(_wide(x), a, keepdims=k, dtype=None if
                                                        x.dtype in FLOATS else x.dtype)),
    "reduce_prod": (G.reduce_prod, lambda x, a, k: np.prod(_wide(x), a, keepdims=k, dtype=None if
                                                           x.dtype in FLOATS else x.dtype)),
    "reduce_max": (G.reduce_max, lambda x, a, k: np.max(x, a, keepdims=k,
                                                        initial=_lowest(x.dtype))),
    "reduce_min": (G.reduce_min, lambda x, a, k: np.min(x, a, keepdims=k,
                                                        initial=_highest(x.dtype))),
}
BOOL_REDUCTIONS = {"reduce_and": (G.reduce_and, lambda x, a, k: np.all(x, a, keepdims=k)),
                   "reduce_or": (G.reduce_or, lambda x, a, k: np.any(x, a, keepdims=k))}


def _inputs(rng, dtype, name):
    lo, hi = (0.5, 1.5) if name == "reduce_prod" and dtype in FLOATS else (-3, 3)
    return {"x": random(rng, (2, 3, 4), dtype, lo, hi), "scalar": random(rng, (), dtype),
            "empty": np.zeros((0, 3), dtype)}


def _cases(fn, xs):
    out = [fn(xs["x"], a, keepdims=k) for a, k in CASES]
    out += [fn(xs["scalar"]), fn(xs["empty"], 0), fn(xs["empty"], 1), fn(xs["empty"])]
    return out


def _check(name, ref, xs, got, dtype):
    want = [ref(xs["x"], a, k) for a, k in CASES]
    want += [ref(xs["scalar"], None, False), ref(xs["empty"], 0, False),
             ref(xs["empty"], 1, False), ref(xs["empty"], None, False)]
    labels = [f"axes={a} keepdims={k}" for a, k in CASES] + ["scalar", "empty axis 0",
                                                            "empty axis 1", "empty all"]
    for label, g, w in zip(labels, got, want):
        assert_close(g, np.asarray(w).astype(dtype), dtype, f"{name} {label}",
                     REDUCE_TOL.get(np.dtype(dtype)))


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_reductions(run, rng, dtype):
    table = BOOL_REDUCTIONS if dtype == np.bool_ else REDUCTIONS
    inputs = {name: _inputs(rng, dtype, name) for name in table}
    got = run(lambda ins: {name: _cases(fn, ins[name]) for name, (fn, _) in table.items()},
              inputs)
    for name, (_, ref) in table.items():
        _check(name, ref, inputs[name], got[name], dtype)


def test_max_and_min_propagate_nan(run):
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], np.float32)
    got = run(lambda x: (G.reduce_max(x, 1), G.reduce_min(x, 1)), x)
    assert_close(got[0], np.max(x, 1))
    assert_close(got[1], np.min(x, 1))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8], ids=["int8", "uint8"])
def test_integer_sums_wrap_in_their_dtype(run, dtype):
    x = np.full((300,), 100, dtype)
    got = run(lambda x: G.reduce_sum(x), x)
    assert_close(got, np.sum(x, dtype=dtype))


@pytest.mark.parametrize("shape", [(2, 60), (4, 5, 6)])
def test_mean_of_a_reshape_subtracted_back(run, rng, shape):
    """A row-wise kernel whose row is read through an index that does not simplify
    (reshape of a multi-axis input): its reduction's vector lanes must not apply (they
    all read the same element; found by ONNX's LayerNormalization tests)."""
    x = rng.normal(size=shape).astype(np.float32)

    def centred(x):
        r = G.reshape(x, (1, 120))
        return r - G.reduce_sum(r, axes=[1], keepdims=True) / 120.0
    r = x.reshape(1, 120)
    np.testing.assert_allclose(run(centred, x), r - r.sum(1, keepdims=True) / 120,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_middle_axis_under_two_kept_axes(run, rng, name):
    """Axis 2 of [2, 3, 4, 5]: rows accumulated along the kept inner axis are stored under
    two kept leading axes (the c backend once stored them at 3*a0 + a1*5, overlapping)."""
    x = random(rng, (2, 3, 4, 5), np.float32, 0.5, 1.5)
    fn, ref = REDUCTIONS[name]
    got = run(lambda x: fn(x, 2), x)
    assert_close(got, np.asarray(ref(x, 2, False)).astype(np.float32), np.float32,
                 f"{name} axis 2 of [2, 3, 4, 5]", None)
