"""iota, sort, argsort, the cumulative scans, argmax / argmin and random numbers, against
NumPy and jax.random."""
import jax
import numpy as np
import pytest

from mlframework import graph as G
from op_records import BF16, FLOATS, NUMERIC, assert_close, distinct, ids, random


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_iota(run, dtype):
    got = run(lambda: [G.iota(dtype, (3, 4), 0), G.iota(dtype, (3, 4), 1), G.iota(dtype, (5,)),
                       G.iota(dtype, (2, 0, 3), 2)])
    assert_close(got[0], np.broadcast_to(np.arange(3)[:, None], (3, 4)).astype(dtype), dtype)
    assert_close(got[1], np.broadcast_to(np.arange(4), (3, 4)).astype(dtype), dtype)
    assert_close(got[2], np.arange(5).astype(dtype), dtype)
    assert_close(got[3], np.zeros((2, 0, 3), dtype), dtype)


def _stable_argsort(x, axis, descending):
    """Stable argsort; descending keeps ties in index order too (as jax.numpy's)."""
    key = x.astype(np.float64)
    return np.argsort(-key if descending else key, axis=axis, kind="stable")


# (axis, descending) cases over x [3, 7] with ties.
SORT_CASES = [(-1, False), (0, False), (1, True), (-2, True)]


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_sort_and_argsort(run, rng, dtype):
    x = random(rng, (3, 7), dtype, -3, 4)  # few distinct values: many ties
    e = np.zeros((0, 4), dtype)
    got = run(lambda x, e: ([(G.sort(x, a, d), G.argsort(x, a, d)) for a, d in SORT_CASES],
                            G.sort(e, 0), G.argsort(e, -1, index_dtype=np.int64)), x, e)
    for (axis, desc), (s, i) in zip(SORT_CASES, got[0]):
        want = np.flip(np.sort(x, axis), axis) if desc else np.sort(x, axis)
        assert_close(s, want, dtype, f"sort axis={axis} descending={desc}")
        assert_close(i, _stable_argsort(x, axis, desc).astype(np.int32), np.int32,
                     f"argsort axis={axis} descending={desc}")
    assert_close(got[1], e, dtype, "sort of an empty array")
    assert_close(got[2], np.zeros((0, 4), np.int64), np.int64, "argsort of an empty array")


def test_sort_puts_nan_last(run):
    x = np.array([3.0, np.nan, -1.0, np.inf, -np.inf, 0.0], np.float32)
    got = run(lambda x: (G.sort(x), G.argsort(x)), x)
    assert_close(got[0], np.sort(x))
    assert_close(got[1], np.argsort(x, kind="stable").astype(np.int32))


# name: (our op, NumPy's accumulating ufunc); cumlogsumexp takes floats only
CUMULATIVE = {"cumsum": (G.cumsum, np.add), "cumprod": (G.cumprod, np.multiply),
              "cummax": (G.cummax, np.maximum), "cummin": (G.cummin, np.minimum),
              "cumlogsumexp": (G.cumlogsumexp, np.logaddexp)}


def _accumulate(ufunc, x, axis, reverse):
    if reverse:
        return np.flip(ufunc.accumulate(np.flip(x, axis), axis), axis)
    return ufunc.accumulate(x, axis)


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_cumulative(run, rng, dtype):
    x = random(rng, (3, 5), dtype, 0, 3)
    if dtype in FLOATS:  # NaN from its place on; -inf and -0.0 in another row
        x[2, 1] = np.nan
        x[1, 2:4] = np.array([-np.inf, -0.0]).astype(dtype)
    names = [n for n in CUMULATIVE if n != "cumlogsumexp" or dtype in FLOATS]
    cases = [(0, False), (-1, False), (1, True), (0, True)]
    got = run(lambda x: {n: [CUMULATIVE[n][0](x, a, r) for a, r in cases] + [
        CUMULATIVE[n][0](x[0], 0)] for n in names}, x)
    wide = x.astype(np.float64) if dtype in FLOATS else x
    tol = {np.dtype(np.float16): (1e-2, 1e-2), BF16: (6e-2, 6e-2)}.get(np.dtype(dtype))
    with np.errstate(all="ignore"):
        for n in names:
            ufunc = CUMULATIVE[n][1]
            for (axis, rev), y in zip(cases, got[n]):
                want = _accumulate(ufunc, wide, axis, rev).astype(dtype)
                assert_close(y, want, dtype, f"{n} axis={axis} reverse={rev}", tol)
            assert_close(got[n][-1], ufunc.accumulate(wide[0]).astype(dtype), dtype,
                         f"{n} 1-D", tol)


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_argmax_and_argmin(run, rng, dtype):
    x = distinct(rng, (3, 4, 5), dtype)
    ties = np.array([[1, 3, 3, 0], [2, 2, 0, 0]], dtype)  # first index wins on ties
    got = run(lambda x, t: (G.argmax(x, 0), G.argmax(x, -1), G.argmin(x, 1),
                            G.argmin(x, -3, index_dtype=np.int64), G.argmax(t, 1),
                            G.argmin(t, 1), G.argmax(t[0], 0)), x, ties)
    i32 = np.int32
    assert_close(got[0], np.argmax(x, 0).astype(i32), i32, "argmax axis 0")
    assert_close(got[1], np.argmax(x, -1).astype(i32), i32, "argmax axis -1")
    assert_close(got[2], np.argmin(x, 1).astype(i32), i32, "argmin axis 1")
    assert_close(got[3], np.argmin(x, 0).astype(np.int64), np.int64, "argmin int64")
    assert_close(got[4], np.argmax(ties, 1).astype(i32), i32, "argmax ties")
    assert_close(got[5], np.argmin(ties, 1).astype(i32), i32, "argmin ties")
    assert_close(got[6], np.array(1, i32), i32, "argmax of a vector")


def test_argmax_treats_nan_as_largest(run):
    x = np.array([[1.0, np.nan, 5.0], [np.nan, 0.0, np.nan]], np.float32)
    got = run(lambda x: (G.argmax(x, 1), G.argmin(x, 1)), x)
    np.testing.assert_array_equal(got[0], np.argmax(x, 1))
    np.testing.assert_array_equal(got[1], np.argmin(x, 1))


def _jax_key(key):
    return jax.random.wrap_key_data(key, impl="threefry2x32")


@pytest.mark.parametrize("seed", [0, 42, 2**40 + 7])
def test_rng_bits_equal_jax_random_bits(run, seed):
    key = G.random_key(seed)
    reference = jax.random.key_data(jax.random.key(seed, impl="threefry2x32"))
    np.testing.assert_array_equal(key, reference)
    got = run(lambda k: (G.rng_bits(k, (3, 5)), G.random_bits(k, (7,)), G.rng_bits(k, ()),
                         G.split_key(k, 3)), key)
    jkey = _jax_key(key)
    assert_close(got[0], np.asarray(jax.random.bits(jkey, (3, 5), np.uint32)), np.uint32)
    assert_close(got[1], np.asarray(jax.random.bits(jkey, (7,), np.uint32)), np.uint32)
    assert_close(got[2], np.asarray(jax.random.bits(jkey, (), np.uint32)), np.uint32)
    assert got[3].shape == (3, 2) and len({tuple(k) for k in got[3]}) == 3


@pytest.mark.parametrize("dtype", FLOATS, ids=ids(FLOATS))
def test_uniform_and_normal_statistics(run, dtype):
    key = G.random_key(7)
    n = 20000
    got = run(lambda k: (G.uniform(k, (n,), dtype), G.uniform(k, (n,), dtype, -2.0, 6.0),
                         G.normal(k, (n,), dtype), G.normal(k, (n,), dtype, 3.0, 0.5)), key)
    unit, scaled, z, shifted = (g.astype(np.float64) for g in got)
    for g in got:
        assert g.dtype == dtype and g.shape == (n,)
    assert unit.min() >= 0 and unit.max() < 1 and len(np.unique(unit)) > 200
    assert scaled.min() >= -2 and scaled.max() <= 6
    tol = 4 / np.sqrt(n)  # about 4 standard errors, in units of the spread
    assert abs(unit.mean() - 0.5) < tol and abs(unit.var() - 1 / 12) < 0.1 / 12 + tol / 4
    assert abs(scaled.mean() - 2.0) < 8 * tol
    assert np.all(np.isfinite(z)) and abs(z.mean()) < tol and abs(z.std() - 1) < 2 * tol
    assert abs(shifted.mean() - 3.0) < tol and abs(shifted.std() - 0.5) < tol
    # Normal tails: about 4.55% of draws lie beyond 2 standard deviations.
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 0.01


def test_same_key_same_numbers_and_split_keys_differ(run):
    key = G.random_key(3)

    def f(k):
        k1, k2 = G.split_key(k)[0], G.split_key(k)[1]
        return G.uniform(k, (100,)), G.uniform(k, (100,)), G.uniform(k1, (100,)), \
            G.uniform(k2, (100,))

    a, b, c, d = run(f, key)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(c, d)
