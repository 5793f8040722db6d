"""cholesky, triangular_solve and the solve composite against NumPy's float64 linear
algebra (one graph per dtype), their gradients against finite differences and jax.grad,
their tangents against jax.jvp; and the forward mode of a widened dot_general."""
from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from op_records import FLOATS, assert_close, ids
from test_gradcheck import check_grads
from test_jvpcheck import check_jvp

from mlframework import graph as G

# (left_side, lower, transpose_a, unit_diagonal): every combination.
SOLVES = list(itertools.product((True, False), repeat=4))


def _spd(rng, shape):
    """Well-conditioned symmetric positive-definite matrices [..., n, n], with junk above
    the diagonal (cholesky reads the lower triangle only)."""
    m = rng.standard_normal(shape)
    out = m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])
    return out + np.triu(np.full(shape, 7.0), 1)


def _read(x):
    """The symmetric matrix cholesky reads: the lower triangle mirrored."""
    return np.tril(x) + np.swapaxes(np.tril(x, -1), -1, -2)


def _op(a, lower, transpose_a, unit_diagonal):
    t = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        t = t - t * np.eye(a.shape[-1]) + np.eye(a.shape[-1])
    return np.swapaxes(t, -1, -2) if transpose_a else t


def _solve_ref(a, b, left_side, lower, transpose_a, unit_diagonal):
    m = _op(a.astype(np.float64), lower, transpose_a, unit_diagonal)
    b = b.astype(np.float64)
    if left_side:
        return np.linalg.solve(m, b)
    return np.swapaxes(np.linalg.solve(np.swapaxes(m, -1, -2), np.swapaxes(b, -1, -2)), -1, -2)


@pytest.mark.parametrize("dtype", FLOATS, ids=ids(FLOATS))
def test_cholesky_triangular_solve_and_solve(run, rng, dtype):
    spd = _spd(rng, (2, 3, 4, 4))
    a = rng.uniform(-1, 1, (2, 4, 4)) + 3 * np.eye(4)
    left, right = rng.uniform(-1, 1, (2, 4, 3)), rng.uniform(-1, 1, (2, 3, 4))
    not_pd = np.array([[1.0, 2.0], [2.0, 1.0]])
    args = [x.astype(dtype) for x in (spd, a, left, right, not_pd)]

    def f(spd, a, left, right, not_pd):
        return {"cholesky": G.cholesky(spd), "not_pd": G.cholesky(not_pd),
                "solves": [G.triangular_solve(a, left if s[0] else right, *s) for s in SOLVES],
                "solve": G.solve(a, left), "vector": G.solve(a[0], right[0, 0])}

    got = run(f, *args)
    spd, a, left, right, _ = (x.astype(np.float64) for x in args)
    assert_close(got["cholesky"], np.linalg.cholesky(_read(spd)).astype(dtype), dtype, "cholesky")
    assert_close(got["not_pd"], np.array([[np.nan, 0], [np.nan, np.nan]], dtype), dtype,
                 "cholesky of a matrix that is not positive definite")
    for s, out in zip(SOLVES, got["solves"]):
        want = _solve_ref(a, left if s[0] else right, *s)
        assert_close(out, want.astype(dtype), dtype, f"triangular_solve {s}")
    assert_close(got["solve"], np.linalg.solve(a, left).astype(dtype), dtype, "solve")
    assert_close(got["vector"], np.linalg.solve(a[0], right[0, 0]).astype(dtype), dtype,
                 "solve, vector b")


def test_shape_errors():
    exe = G.Exec(None, lambda a, b: G.triangular_solve(a, b, left_side=True))
    with pytest.raises(G.ShapeError, match="triangular_solve requires b"):
        exe.graph(np.eye(3), np.ones((2, 3)))
    with pytest.raises(G.ShapeError, match="cholesky requires square"):
        G.Exec(None, G.cholesky).graph(np.ones((2, 3)))
    with pytest.raises(G.ShapeError, match="solve requires b"):
        G.Exec(None, G.solve).graph(np.eye(3), np.ones((2,)))


def _sym(x):
    return jnp.tril(x) + jnp.swapaxes(jnp.tril(x, -1), -1, -2)


def _cases(rng):
    args = [_spd(rng, (2, 3, 3)), rng.standard_normal((2, 3, 3)) + 2 * np.eye(3),
            rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 2, 3))]
    chosen = SOLVES[::3]

    def ours(s, a, bl, br):
        return [G.cholesky(s), *[G.triangular_solve(a, bl if c[0] else br, *c) for c in chosen],
                G.solve(a, bl), G.solve(a[0], bl[0, :, 0])]

    def ref(s, a, bl, br):
        return [lax.linalg.cholesky(_sym(s), symmetrize_input=False),
                *[lax.linalg.triangular_solve(a, bl if c[0] else br, left_side=c[0], lower=c[1],
                                              transpose_a=c[2], unit_diagonal=c[3])
                  for c in chosen],
                jnp.linalg.solve(a, bl), jnp.linalg.solve(a[0], bl[0, :, 0])]
    return args, ours, ref


def test_gradients(backend, rng):
    # The reference reads the same triangle: cholesky of the mirrored lower triangle.
    args, ours, ref = _cases(rng)
    check_grads(backend, ours, args, ref)


def test_tangents(backend, rng):
    args, ours, ref = _cases(rng)
    check_jvp(backend, ours, args, ref, fd=True)


def test_dot_general_preferred_element_type_tangent(backend, rng):
    args = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (4, 5))]
    check_jvp(backend, lambda a, b: G.dot_general(a, b, (1,), (0,),
                                                  preferred_element_type=np.float64), args,
              lambda a, b: lax.dot_general(a, b, (((1,), (0,)), ((), ())),
                                           preferred_element_type=np.float64), rtol=1e-6)
