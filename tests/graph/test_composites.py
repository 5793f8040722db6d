"""Composite ops (matmul, einsum, activations, statistics, shape helpers, top_k,
take) against NumPy, jax.numpy, jax.nn and jax.lax."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from mlframework import graph as G
from op_records import (ALL, BF16, FLOATS, INTS, NUMERIC, assert_close, distinct, ids,
                        in_float64, random)

WIDE_TOL = {np.dtype(np.float16): (1e-2, 1e-2), BF16: (6e-2, 1e-1)}

MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)),
                 ((2, 3, 4), (4,)), ((0, 3), (3, 2)), ((2, 0), (0, 3))]


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_matmul_follows_numpy(run, rng, dtype):
    args = [(random(rng, a, dtype, -2, 2), random(rng, b, dtype, -2, 2))
            for a, b in MATMUL_SHAPES]
    got = run(lambda pairs: [(G.matmul(a, b), a @ b) for a, b in pairs], args)
    for (a, b), (y, y_op) in zip(args, got):
        wide = (lambda v: v.astype(np.float64)) if dtype in FLOATS else (lambda v: v)
        want = np.matmul(wide(a), wide(b)).astype(dtype)
        assert_close(y, want, dtype, f"matmul {a.shape} @ {b.shape}", WIDE_TOL.get(dtype))
        assert_close(y_op, want, dtype, f"{a.shape} @ {b.shape}", WIDE_TOL.get(dtype))


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("ba", [(3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,jk->...ik", [(2, 2, 3, 4), (4, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij->i", [(3, 4)]), ("ij->", [(3, 4)]), ("i,j->ij", [(3,), (4,)]), ("i,i->", [(4,), (4,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("i...->...i", [(2, 3, 4)]), ("a...,...->...a", [(2, 3), (3,)]),
    ("ij,jk,kl", [(2, 3), (3, 4), (4, 2)]), ("ab,cd->abcd", [(2, 1), (1, 3)]),
    ("ij,kj->ki", [(2, 0), (3, 0)]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32], ids=["float32", "float64",
                                                                          "int32"])
def test_einsum_follows_numpy(run, rng, dtype):
    args = [[random(rng, s, dtype) for s in shapes] for _, shapes in EINSUM_CASES]
    got = run(lambda ops: [G.einsum(spec, *o) for (spec, _), o in zip(EINSUM_CASES, ops)], args)
    for (spec, _), ops, out in zip(EINSUM_CASES, args, got):
        assert_close(out, np.einsum(spec, *ops).astype(dtype), dtype, f"einsum {spec!r}")


def _gelu(x, approximate):
    return np.asarray(jax.nn.gelu(jnp.asarray(x, jnp.float64), approximate=approximate))


# name: (our function, reference); inputs are x [2, 3, 5] unless noted.
FLOAT_CASES = {
    "square": (G.square, in_float64(np.square)),
    "mean": (lambda x: G.mean(x), in_float64(np.mean)),
    "mean axes": (lambda x: G.mean(x, (0, -1), keepdims=True),
                  in_float64(lambda x: np.mean(x, (0, -1), keepdims=True))),
    "variance": (lambda x: G.variance(x, 1), in_float64(lambda x: np.var(x, 1))),
    "variance all": (lambda x: G.variance(x, keepdims=True),
                     in_float64(lambda x: np.var(x, keepdims=True))),
    "softmax": (lambda x: G.softmax(x), in_float64(lambda x: scipy.special.softmax(x, -1))),
    "softmax axis 0": (lambda x: G.softmax(x, 0),
                       in_float64(lambda x: scipy.special.softmax(x, 0))),
    "log_softmax": (lambda x: G.log_softmax(x, -2),
                    in_float64(lambda x: scipy.special.log_softmax(x, -2))),
    "logsumexp": (lambda x: G.logsumexp(x), in_float64(lambda x: scipy.special.logsumexp(x, -1))),
    "logsumexp keepdims": (lambda x: G.logsumexp(x, 1, keepdims=True),
                           in_float64(lambda x: scipy.special.logsumexp(x, 1, keepdims=True))),
    "logsumexp all": (lambda x: G.logsumexp(x, None),
                      in_float64(lambda x: scipy.special.logsumexp(x))),
    "logsumexp axes": (lambda x: G.logsumexp(x, (0, -1)),
                       in_float64(lambda x: scipy.special.logsumexp(x, (0, 2)))),
    "relu": (G.relu, in_float64(lambda x: np.maximum(x, 0))),
    "gelu": (G.gelu, in_float64(lambda x: _gelu(x, False))),
    "gelu tanh": (lambda x: G.gelu(x, approximate=True), in_float64(lambda x: _gelu(x, True))),
    "silu": (G.silu, in_float64(lambda x: np.asarray(jax.nn.silu(x)))),
    "sigmoid": (G.sigmoid, in_float64(scipy.special.expit)),
    "softplus": (G.softplus, in_float64(lambda x: np.asarray(jax.nn.softplus(x)))),
    "clip": (lambda x: G.clip(x, -1.0, 0.5), in_float64(lambda x: np.clip(x, -1, 0.5))),
    "leaky_relu": (lambda x: G.leaky_relu(x, 0.1),
                   in_float64(lambda x: np.asarray(jax.nn.leaky_relu(x, 0.1)))),
    "reciprocal": (lambda x: G.reciprocal(x + 4), in_float64(lambda x: 1 / (x + 4))),
    "power": (lambda x: G.power(x + 4, 1.5), in_float64(lambda x: (x + 4) ** 1.5)),
}


@pytest.mark.parametrize("dtype", FLOATS, ids=ids(FLOATS))
def test_float_composites(run, rng, dtype):
    x = random(rng, (2, 3, 5), dtype)
    big = np.array([[1000.0, 999.0, -np.inf], [-np.inf, -np.inf, -np.inf]], np.float64)
    big = big.astype(dtype) if dtype != np.float16 else (big / 100).astype(dtype)
    got = run(lambda x, b: ({n: fn(x) for n, (fn, _) in FLOAT_CASES.items()}, G.softmax(b[:1]),
                            G.logsumexp(b), G.softplus(b[0, :2])), x, big)
    for name, (_, ref) in FLOAT_CASES.items():
        assert_close(got[0][name], ref(x), dtype, name, WIDE_TOL.get(np.dtype(dtype)))
    tol = WIDE_TOL.get(np.dtype(dtype))
    wide = big.astype(np.float64)
    assert_close(got[1], scipy.special.softmax(wide[:1], -1).astype(dtype), dtype,
                 "softmax of large values", tol)
    assert_close(got[2], scipy.special.logsumexp(wide, -1).astype(dtype), dtype,
                 "logsumexp of large values and all -inf", tol)
    assert_close(got[3], np.logaddexp(0, wide[0, :2]).astype(dtype), dtype,
                 "softplus of large values", tol)


# Composites over every numeric dtype; x [3, 4], i int32 [2, 3].
NUMERIC_CASES = {
    "square": (lambda x, i: G.square(x), lambda x, i: x * x),
    "relu": (lambda x, i: G.relu(x), lambda x, i: np.maximum(x, 0)),
    "clip": (lambda x, i: G.clip(x, 0, 2), lambda x, i: np.clip(x, 0, 2)),
    "clip low": (lambda x, i: G.clip(x, lo=1), lambda x, i: np.maximum(x, 1)),
    "one_hot": (lambda x, i: G.one_hot(i, 4, x.dtype),
                lambda x, i: np.asarray(jax.nn.one_hot(i, 4, dtype=np.float64)).astype(x.dtype)),
    "where": (lambda x, i: G.where(x > 1, x, 0), lambda x, i: np.where(x > 1, x, 0)),
    "power 3": (lambda x, i: G.power(x, 3), lambda x, i: x * x * x),
    "power 0": (lambda x, i: G.power(x, 0), lambda x, i: np.ones_like(x)),
    "zeros_like": (lambda x, i: G.zeros_like(x), lambda x, i: np.zeros_like(x)),
    "ones_like": (lambda x, i: G.ones_like(x), lambda x, i: np.ones_like(x)),
    "full": (lambda x, i: G.full((2, 0, 3), 2, x.dtype), lambda x, i: np.full((2, 0, 3), 2)),
    "full scalar": (lambda x, i: G.full((), 3, x.dtype), lambda x, i: np.full((), 3)),
}


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_numeric_composites(run, rng, dtype):
    x, i = random(rng, (3, 4), dtype, 0, 4), np.array([[0, 3, 1], [4, -1, 2]], np.int32)
    got = run(lambda x, i: {n: fn(x, i) for n, (fn, _) in NUMERIC_CASES.items()}, x, i)
    for name, (_, ref) in NUMERIC_CASES.items():
        assert_close(got[name], np.asarray(ref(x, i)).astype(dtype), dtype, name)


# Shape composites over every dtype; x [2, 3, 4], y [2, 3, 4].
SHAPE_CASES = {
    "stack": (lambda x, y: G.stack([x, y]), lambda x, y: np.stack([x, y])),
    "stack -1": (lambda x, y: G.stack([x, y, x], -1), lambda x, y: np.stack([x, y, x], -1)),
    "split": (lambda x, y: G.split(x, 2, -1), lambda x, y: np.split(x, 2, -1)),
    "split at": (lambda x, y: G.split(x, [1, 3], 2), lambda x, y: np.split(x, [1, 3], 2)),
    "split empty part": (lambda x, y: G.split(x, [0, 2], 1), lambda x, y: np.split(x, [0, 2], 1)),
    "expand_dims": (lambda x, y: G.expand_dims(x, 1), lambda x, y: np.expand_dims(x, 1)),
    "expand_dims -1": (lambda x, y: G.expand_dims(x, -1), lambda x, y: np.expand_dims(x, -1)),
    "squeeze": (lambda x, y: G.squeeze(x[:, :1, None]), lambda x, y: np.squeeze(x[:, :1, None])),
    "squeeze axis": (lambda x, y: G.squeeze(x[:1, :, :1], -1),
                     lambda x, y: np.squeeze(x[:1, :, :1], -1)),
    "take": (lambda x, y: G.take(x, np.array([[2, 0], [1, 1]]), 1),
             lambda x, y: np.take(x, np.array([[2, 0], [1, 1]]), 1)),
    "take -1": (lambda x, y: G.take(x, np.array([3, 0, 9]), -1),
                lambda x, y: np.take(x, np.array([3, 0, 9]), -1, mode="clip")),
    "take negative": (lambda x, y: G.take(x, np.array([-1, -3], np.int64), 1),
                      lambda x, y: np.take(x, np.array([-1, -3]), 1)),
    "take_along_axis negative": (
        lambda x, y: G.take_along_axis(x, np.array([[[-1, 0, -4, 2]]], np.int8), -1),
        lambda x, y: np.take_along_axis(x, np.array([[[-1, 0, -4, 2]]]), -1)),
    "take scalar": (lambda x, y: G.take(x, 1), lambda x, y: np.take(x, 1, 0)),
    "take_along_axis": (lambda x, y: G.take_along_axis(x, np.array([[[0], [2], [1]]]), 1),
                        lambda x, y: np.take_along_axis(x, np.array([[[0], [2], [1]]]), 1)),
    "where": (lambda x, y: G.where(np.array([True, False, True, False]), x, y[0]),
              lambda x, y: np.where(np.array([True, False, True, False]), x, y[0])),
}


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_shape_composites(run, rng, dtype):
    x, y = random(rng, (2, 3, 4), dtype), random(rng, (2, 3, 4), dtype)
    got = run(lambda x, y: {n: fn(x, y) for n, (fn, _) in SHAPE_CASES.items()}, x, y)
    for name, (_, ref) in SHAPE_CASES.items():
        want = ref(x, y)
        if isinstance(want, list):
            assert len(got[name]) == len(want), name
            for g, w in zip(got[name], want):
                assert_close(g, w, dtype, name)
        else:
            assert_close(got[name], want, dtype, name)


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_top_k_matches_jax(run, rng, dtype):
    x = distinct(rng, (3, 6), dtype)
    ties = np.array([1, 3, 3, 0, 3], dtype)
    got = run(lambda x, t: (G.top_k(x, 3), G.top_k(t, 2), G.top_k(x[0], 6), G.top_k(x, 0)),
              x, ties)
    for (values, indices), (arr, k) in zip(got, [(x, 3), (ties, 2), (x[0], 6), (x, 0)]):
        want_v, want_i = jax.lax.top_k(jnp.asarray(arr), k)
        assert_close(values, np.asarray(want_v), dtype, f"top_k values k={k}")
        assert_close(indices, np.asarray(want_i), np.int32, f"top_k indices k={k}")


@pytest.mark.parametrize("dtype", INTS[2:4], ids=ids(INTS[2:4]))
def test_one_hot_of_every_index_dtype(run, dtype):
    i = np.array([0, 2, 5, -1], dtype)
    got = run(lambda i: (G.one_hot(i, 3), G.one_hot(i, 3, np.int64)), i)
    want = np.asarray(jax.nn.one_hot(i, 3))
    assert_close(got[0], want.astype(np.float32))
    assert_close(got[1], want.astype(np.int64))
