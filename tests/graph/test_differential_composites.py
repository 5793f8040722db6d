"""Differential tests of every public composite (activations, statistics, softmax family,
power, shape helpers, take, top_k, matmul, einsum, random numbers) against jax.numpy,
jax.nn and jax.lax, on every backend, in every float dtype (and the integer dtypes
where a composite takes them), over edge values, size-0 and size-1 axes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from differential import (EXACT, FLOATS, INTS, NUMERIC, Case, Check, edge_values,
                          random_values, run_cases)
from jax import lax

from mlframework import graph as G
from mlframework.graph import composites, layout, linalg
from mlframework.graph import random as graph_random

# Composites covered here, by module: a test checks nothing public is left out.
COVERED = {"clip", "convert", "full", "gelu", "leaky_relu", "log_softmax", "logsumexp", "mean",
           "one_hot", "ones_like", "power", "reciprocal", "relu", "sigmoid", "silu", "softmax",
           "softplus", "square", "variance", "where", "zeros_like", "expand_dims", "flatten",
           "split", "squeeze", "stack", "take", "take_along_axis", "top_k", "einsum", "matmul",
           "normal", "random_bits", "random_key", "split_key", "uniform", "solve"}


def _tol(dtype, ulps=4):
    """Composite chains: 2 ulps of the result in float16/bfloat16 (they round after every
    op on both sides, so only float32 ulps of the inner ops can flip one); in float32 and
    float64 relative to the result and absolute (cancellation) in units of 8 * eps, as
    XLA's transcendental approximations differ (`DIFFERENCES["approximations"]`)."""
    if np.dtype(dtype).itemsize == 2:
        return Check("ulp", 2)
    eps = float(jnp.finfo(dtype).eps)
    return Check("close", rtol=ulps * 8 * eps, atol=ulps * 8 * eps)


def _rows(dtype):
    """[8, 5] rows: random, large magnitudes (log_softmax's cancellation), edge values,
    all -inf, a NaN, signed zeros."""
    rng = np.random.default_rng(7)
    big = 1e4 if dtype.itemsize == 2 else 1e6
    rows = [rng.uniform(-3, 3, 5), rng.uniform(-3, 3, 5), big + rng.uniform(0, 4, 5),
            -big + rng.uniform(0, 4, 5), [-np.inf] * 5, [1.0, np.nan, 0.0, -1.0, 2.0],
            [0.0, -0.0, 0.0, -0.0, 0.0], [np.inf, 1.0, -np.inf, 0.0, 3.0]]
    return np.array(rows, np.float64).astype(dtype)


ACTIVATIONS = {
    "relu": (G.relu, jax.nn.relu, EXACT),
    "leaky_relu": (lambda x: G.leaky_relu(x, 0.1), lambda x: jax.nn.leaky_relu(x, 0.1), EXACT),
    "sigmoid": (G.sigmoid, jax.nn.sigmoid, None),
    "silu": (G.silu, jax.nn.silu, None),
    "softplus": (G.softplus, jax.nn.softplus, None),
    "gelu": (G.gelu, lambda x: jax.nn.gelu(x, approximate=False), None),
    "gelu_tanh": (lambda x: G.gelu(x, approximate=True),
                  lambda x: jax.nn.gelu(x, approximate=True), None),
    "square": (G.square, jnp.square, EXACT),
    "reciprocal": (G.reciprocal, jnp.reciprocal, EXACT),
    "clip": (lambda x: G.clip(x, -1.5, 2.0), lambda x: jnp.clip(x, -1.5, 2.0), EXACT),
    "zeros_like": (G.zeros_like, jnp.zeros_like, EXACT),
    "ones_like": (G.ones_like, jnp.ones_like, EXACT),
}
for _n in (0, 1, 2, 3, 4, 5, 7, -1, -2):
    ACTIVATIONS[f"power int {_n}"] = (lambda x, n=_n: G.power(x, n),
                                      lambda x, n=_n: jnp.power(x, n), EXACT)
ACTIVATIONS["power 0.5"] = (lambda x: G.power(x, 0.5), lambda x: jnp.power(x, 0.5), None)
ACTIVATIONS["power 2.5"] = (lambda x: G.power(x, 2.5), lambda x: jnp.power(x, 2.5), None)
ACTIVATIONS["x ** 3"] = (lambda x: x ** 3, lambda x: x ** 3, EXACT)


def _gelu_tail(dtype):
    """The exact gelu's negative tail (where 1 + erf(x / sqrt(2)) underflows)."""
    return np.array([-5.0, -8.0, -10.0, -12.5, -20.0, -30.0, -36.0], np.float64).astype(dtype)


ROW_OPS = {
    "softmax": (lambda x, a: G.softmax(x, a), lambda x, a: jax.nn.softmax(x, a)),
    "log_softmax": (lambda x, a: G.log_softmax(x, a), lambda x, a: jax.nn.log_softmax(x, a)),
    "logsumexp": (lambda x, a: G.logsumexp(x, a), lambda x, a: jax.nn.logsumexp(x, a)),
    "logsumexp keepdims": (lambda x, a: G.logsumexp(x, a, keepdims=True),
                           lambda x, a: jax.nn.logsumexp(x, a, keepdims=True)),
    "mean": (lambda x, a: G.mean(x, a), lambda x, a: jnp.mean(x, a)),
    "mean keepdims": (lambda x, a: G.mean(x, a, keepdims=True),
                      lambda x, a: jnp.mean(x, a, keepdims=True)),
    "variance": (lambda x, a: G.variance(x, a), lambda x, a: jnp.var(x, a)),
}


def _float_cases(rng, dtype):
    cases = []
    edges = edge_values(dtype, subnormals=False)
    for name, (ours, ref, check) in ACTIVATIONS.items():
        check = check or _tol(dtype)
        xs = [edges, random_values(rng, (2, 1, 3), dtype), random_values(rng, (0, 2), dtype),
              random_values(rng, (), dtype)]
        if name == "gelu":
            xs.append(_gelu_tail(dtype))
        cases += [Case(f"{name}({dtype}{list(x.shape)})", ours, ref, (x,), check) for x in xs]
    rows = _rows(dtype)
    inputs = [(rows, -1), (rows, 0), (rows[:, :1], 1), (rows[:1], 0), (rows[:0], 1),
              (rows[:3, :0], 0), (rows.reshape(2, 4, 5), (0, 2)), (rows[:2], None)]
    for name, (ours, ref) in ROW_OPS.items():
        for x, axis in inputs:
            if name.startswith(("softmax", "log_softmax")) and (axis is None or
                                                                 not isinstance(axis, int)):
                continue
            if name.startswith("mean") or name == "variance":
                if x.size == 0 and (axis is None or x.shape[axis if isinstance(axis, int)
                                                             else 0] == 0):
                    continue  # a mean over nothing is 0/0, NaN on both sides; kept out
            wide = np.abs(x.astype(np.float64))
            if name == "variance" and (wide[np.isfinite(wide)] > 1e3).any():
                continue  # rows of 1e6 + u: the rounding of their mean dominates
            cases.append(Case(f"{name}({dtype}{list(x.shape)}, {axis})",
                              lambda t, f=ours, a=axis: f(t, a), lambda t, f=ref, a=axis: f(t, a),
                              (x,), _tol(dtype, 8)))
    values = edge_values(dtype, subnormals=False)
    cases.append(Case("where", lambda c, x, y: G.where(c, x, y), jnp.where,
                      (rng.random(values.shape) < 0.5, values, values[::-1])))
    cases.append(Case("full", lambda: G.full((2, 0, 3), 1.5, dtype),
                      lambda: jnp.full((2, 0, 3), 1.5, dtype), ()))
    cases.append(Case("full 1", lambda: G.full((1, 3), -0.0, dtype),
                      lambda: jnp.full((1, 3), -0.0, dtype), ()))
    return cases


def _convert_cases(dtype):
    values = edge_values(dtype, subnormals=False)
    return [Case(f"convert({dtype} -> {d})", lambda x, t=d: G.convert(x, t),
                 lambda x, t=d: x.astype(t) if t != np.bool_ else x != 0, (values,))
            for d in ("float32", "int32", "bool", "float16")]


def _shape_cases(rng, dtype):
    x = np.resize(edge_values(dtype), (2, 1, 3))
    idx = np.array([[0, -1, 5], [-7, 2, 1]], np.int32)
    cases = [
        Case("expand_dims", lambda t: G.expand_dims(t, -1), lambda t: jnp.expand_dims(t, -1), (x,)),
        Case("squeeze", lambda t: G.squeeze(t), lambda t: jnp.squeeze(t), (x,)),
        Case("flatten", lambda t: G.flatten(t, 1), lambda t: t.reshape(2, 3), (x,)),
        Case("stack", lambda t: G.stack([t, t[:, :, ::-1]], 1),
             lambda t: jnp.stack([t, t[:, :, ::-1]], 1), (x,)),
        Case("split", lambda t: tuple(G.split(t, [1, 1, 2], 2)),
             lambda t: tuple(jnp.split(t, [1, 1, 2], 2)), (x,)),
        Case("take", lambda t, i: G.take(t, i, 2),
             lambda t, i: jnp.take(t, jnp.where(i < 0, i + 3, i), 2, mode="clip"), (x, idx)),
        Case("take_along_axis", lambda t, i: G.take_along_axis(t, i, 2),
             lambda t, i: jnp.take_along_axis(t, jnp.where(i < 0, i + 3, i), 2, mode="clip"),
             (x, idx.reshape(2, 1, 3))),
    ]
    if dtype in NUMERIC:
        v = np.concatenate([edge_values(dtype), edge_values(dtype)[:5]])
        m = np.stack([v, v[::-1]])
        for k in (0, 1, 5, v.size):
            cases.append(Case(f"top_k({dtype}, k={k})", lambda t, k=k: G.top_k(t, k),
                              lambda t, k=k: lax.top_k(t, k), (m,)))
    if dtype in INTS:
        labels = np.array([0, 3, -1, 4, 2], dtype) if dtype.kind == "i" else \
            np.array([0, 3, 9, 4, 2], dtype)
        cases.append(Case("one_hot", lambda t: G.one_hot(t, 4, np.float32),
                          lambda t: jax.nn.one_hot(t, 4, dtype=np.float32), (labels,)))
    return cases


def _product_cases(rng, dtype):
    lo, hi = (0, 3) if dtype.kind == "u" else (-3, 3)
    eps = float(jnp.finfo(dtype).eps) if dtype in FLOATS else 0.0
    check = Check("close", rtol=8 * eps, atol=8 * eps) if dtype in FLOATS else EXACT
    shapes = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
              ((2, 1, 3, 4), (5, 4, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3))]
    cases = [Case(f"matmul {a} @ {b}", G.matmul,
                  lambda p, q: jnp.matmul(p, q, precision=lax.Precision.HIGHEST),
                  (random_values(rng, a, dtype, lo, hi), random_values(rng, b, dtype, lo, hi)),
                  check) for a, b in shapes]
    specs = [("ij,jk->ik", [(3, 4), (4, 5)]), ("...ij,...jk->...ik", [(1, 2, 3), (4, 3, 2)]),
             ("...ij,...jk->...ik", [(4, 2, 3), (1, 3, 2)]),
             ("...i,...i->...", [(4, 2), (3, 1, 2)]),
             ("i...,...->...i", [(2, 3, 1), (4,)]), ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),
             ("ij->", [(3, 0)]), ("ab,cd->abcd", [(2, 1), (1, 3)])]
    for spec, operand_shapes in specs:
        ops = tuple(random_values(rng, s, dtype, lo, hi) for s in operand_shapes)
        cases.append(Case(f"einsum {spec} {operand_shapes}",
                          lambda *o, s=spec: G.einsum(s, *o),
                          lambda *o, s=spec: jnp.einsum(s, *o,
                                                        precision=lax.Precision.HIGHEST),
                          ops, check))
    return cases


def _solve_cases(rng, dtype):
    """Well-conditioned systems (a near 4I, so the pivots move rows but errors stay near
    eps): batched with a vector b, broadcast batches, a pivot that must swap rows."""
    if dtype.itemsize == 2:  # jax has no half-precision LU to compare with
        return []
    a = random_values(rng, (2, 4, 4), dtype, -1, 1) + 4 * np.eye(4, dtype=dtype)
    swap = np.array([[0, 2, 1], [3, 1, 0], [1, 0, 0]], dtype)  # a[0, 0] == 0
    eps = float(jnp.finfo(dtype).eps)
    check = Check("close", rtol=64 * eps, atol=64 * eps)
    solve = lambda p, q: jnp.linalg.solve(p, q)  # noqa: E731
    vector = lambda p, q: jnp.linalg.solve(p, q[..., None])[..., 0]  # noqa: E731
    return [Case("solve [2,4,4] [4]", G.solve, vector,
                 (a, random_values(rng, (4,), dtype, -3, 3)), check),
            Case("solve [2,4,4] [1,4,3]", G.solve, solve,
                 (a, random_values(rng, (1, 4, 3), dtype, -3, 3)), check),
            Case("solve with a row swap", G.solve, solve,
                 (swap, random_values(rng, (3, 2), dtype, -3, 3)), check)]


@pytest.mark.parametrize("dtype", FLOATS, ids=[d.name for d in FLOATS])
def test_float_composites_match_jax(backend_name, dtype):
    rng = np.random.default_rng(12)
    cases = _float_cases(rng, dtype) + _convert_cases(dtype) + _shape_cases(rng, dtype)
    cases += _product_cases(rng, dtype) + _solve_cases(rng, dtype)
    run_cases(backend_name, cases, f"composites_{dtype.name}")


@pytest.mark.parametrize("dtype", [np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.uint64),
                                   np.dtype(np.bool_)], ids=["int8", "int32", "uint64", "bool"])
def test_other_dtype_composites_match_jax(backend_name, dtype):
    rng = np.random.default_rng(13)
    cases = _shape_cases(rng, dtype) + _convert_cases(dtype)
    if dtype in INTS:
        cases += _product_cases(rng, dtype)
        x = edge_values(dtype)
        for n in (0, 1, 2, 3, 5):
            cases.append(Case(f"power int {n}", lambda t, n=n: G.power(t, n),
                              lambda t, n=n: jnp.power(t, n), (x,)))
        cases.append(Case("clip", lambda t: G.clip(t, 1, 7), lambda t: jnp.clip(t, 1, 7), (x,)))
    run_cases(backend_name, cases, f"composites_{dtype.name}")


def _uniform_ref(key, shape, dtype, p):
    bits = jax.random.bits(jax.random.wrap_key_data(key, impl="threefry2x32"), shape, np.uint32)
    top = bits >> np.uint32(32 - p) if p < 32 else bits
    return (top.astype(dtype) * np.asarray(2.0 ** -p, dtype)).astype(dtype)


def test_random_composites_match_jax(backend_name):
    keys = [G.random_key(0), G.random_key(2 ** 40 + 3)]
    cases = []
    for k in keys:
        cases.append(Case("random_bits", lambda key: G.random_bits(key, (3, 1, 2)),
                          lambda key: jax.random.bits(jax.random.wrap_key_data(
                              key, impl="threefry2x32"), (3, 1, 2), np.uint32), (k,)))
        cases.append(Case("split_key", lambda key: G.split_key(key, 3),
                          lambda key: jax.random.bits(jax.random.wrap_key_data(
                              key, impl="threefry2x32"), (3, 2), np.uint32), (k,)))
        for dtype, p in (("float32", 24), ("float64", 32), ("float16", 11), ("bfloat16", 8)):
            cases.append(Case(f"uniform {dtype}", lambda key, d=dtype: G.uniform(key, (4, 0, 2), d),
                              lambda key, d=dtype, p=p: _uniform_ref(key, (4, 0, 2), d, p), (k,)))
            cases.append(Case(f"uniform {dtype}", lambda key, d=dtype: G.uniform(key, (2, 5), d),
                              lambda key, d=dtype, p=p: _uniform_ref(key, (2, 5), d, p), (k,)))
    for seed in (0, 7, 2 ** 33 + 1):
        want = np.asarray(jax.random.key_data(jax.random.PRNGKey(seed)))
        np.testing.assert_array_equal(G.random_key(seed), want, err_msg=f"random_key({seed})")
    run_cases(backend_name, cases, "random")


def test_normal_matches_its_box_muller_in_jax(backend_name):
    """normal's documented algorithm (Box-Muller over two uniforms of split keys)."""
    key = G.random_key(5)

    def ref(k):
        keys = jax.random.bits(jax.random.wrap_key_data(k, impl="threefry2x32"), (2, 2),
                               np.uint32)
        u1, u2 = (_uniform_ref(keys[i], (3, 4), np.float32, 24) for i in (0, 1))
        radius = jnp.sqrt(jnp.log1p(-u1) * np.float32(-2.0))
        return radius * jnp.cos(u2 * np.float32(2 * np.pi))

    run_cases(backend_name, [Case("normal", lambda k: G.normal(k, (3, 4)), ref, (key,),
                                  Check("ulp", 4))], "normal")


def _functions_of(module) -> set[str]:
    return {n for n, f in vars(module).items() if not n.startswith("_") and callable(f)
            and getattr(f, "__module__", "") == module.__name__}


def test_every_public_composite_is_covered():
    public = set(composites.__all__) | _functions_of(layout) | _functions_of(linalg)
    public |= _functions_of(graph_random)
    assert public <= COVERED, f"composites without a differential test: {public - COVERED}"
