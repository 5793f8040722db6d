"""`G.jacobian` (reverse mode) against analytic Jacobians and jax.jacrev; `G.jacfwd`
(forward mode) against `G.jacobian` and jax.jacfwd."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlframework import graph as G
from mlframework.core import shapes

jax.config.update("jax_enable_x64", True)  # float64 references, whichever backend runs


def test_jacobian_of_tanh_of_matrix_vector_product(run, rng):
    w, x = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def f(w, x):
        y = G.tanh(w @ x)
        return G.jacobian(y, x), G.jacobian(y, w)

    jx, jw = run(f, w, x)
    d = 1 - np.tanh(w @ x) ** 2
    np.testing.assert_allclose(jx, d[:, None] * w, rtol=1e-12)  # diag(1 - t^2) W
    expected = np.einsum("i,ij,k->ijk", d, np.eye(3), x)  # dy_i/dW_jk = d_i [i == j] x_k
    np.testing.assert_allclose(jw, expected, rtol=1e-12, atol=1e-15)


def test_jacobian_of_softmax(run, rng):
    x = rng.standard_normal(5)
    s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    np.testing.assert_allclose(run(lambda x: G.jacobian(G.softmax(x), x), x),
                               np.diag(s) - np.outer(s, s), rtol=1e-12, atol=1e-15)


def test_jacobian_of_matrix_output_against_jax(run, rng):
    x = rng.standard_normal((2, 3))

    def ours(x):
        y = G.concatenate([G.sin(x) * x[:, :1], G.cumsum(x, 1)], 0)
        return G.jacobian(y, x)

    def ref(x):
        return jnp.concatenate([jnp.sin(x) * x[:, :1], jnp.cumsum(x, 1)], 0)

    j = run(ours, x)
    assert j.shape == (4, 3, 2, 3)
    np.testing.assert_allclose(j, jax.jacrev(ref)(x), rtol=1e-12, atol=1e-15)


def test_jacobian_edge_cases(run):
    x, z = np.array([0.5, 1.5]), np.ones((3,), np.float32)

    def f(x, z):
        scalar = G.reduce_sum(x * x)
        return (G.jacobian(scalar, x), G.jacobian(G.exp(z), x), G.jacobian(x[:0], x),
                G.jacobian(G.convert(x, "float32") * z[:2], x))

    j_scalar, j_unrelated, j_empty, j_mixed = run(f, x, z)
    np.testing.assert_allclose(j_scalar, 2 * x)
    assert j_unrelated.shape == (3, 2) and not j_unrelated.any()
    assert j_empty.shape == (0, 2)
    assert j_mixed.dtype == np.float64  # the Jacobian has x's dtype
    np.testing.assert_allclose(j_mixed, np.eye(2))


def test_jacobian_of_integer_output_is_an_error():
    with G.tracing(G.Graph()):
        x = G.parameter(shapes.make("float32", 3))
        with pytest.raises(G.DTypeError, match="jacobian requires a float output, got int32"):
            G.jacobian(G.argmax(x, 0), x)


# ---- G.jacfwd: forward mode ----

def test_jacfwd_equals_jacobian_and_jax(run, rng):
    w, x = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def f(w, x):
        return G.tanh(w @ x) * G.cumsum(x, 0)[:3]

    def ours(w, x):
        y = f(w, x)
        return G.jacfwd(f, argnums=1)(w, x), G.jacobian(y, x), G.jacfwd(f)(w, x), \
            G.jacobian(y, w)

    fwd_x, rev_x, fwd_w, rev_w = run(ours, w, x)
    ref = lambda w, x: jnp.tanh(w @ x) * jnp.cumsum(x)[:3]  # noqa: E731
    np.testing.assert_allclose(fwd_x, jax.jacfwd(ref, 1)(w, x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fwd_w, jax.jacfwd(ref, 0)(w, x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fwd_x, rev_x, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fwd_w, rev_w, rtol=1e-12, atol=1e-15)


def test_jacfwd_pytrees_in_and_out_and_argnums(run, rng):
    x, y, z = rng.standard_normal((2, 2)), rng.standard_normal(3), rng.standard_normal(2)

    def f(x, p):
        y, z = p["y"], p["z"]
        return {"a": G.sin(x) * G.reduce_sum(y), "b": G.softmax(y) * G.reduce_sum(z * z)}

    def ref(x, p):
        y, z = p["y"], p["z"]
        return {"a": jnp.sin(x) * jnp.sum(y), "b": jax.nn.softmax(y) * jnp.sum(z * z)}

    got = run(lambda x, y, z: G.jacfwd(f, argnums=(0, 1))(x, {"y": y, "z": z}), x, y, z)
    want = jax.jacfwd(ref, argnums=(0, 1))(x, {"y": y, "z": z})
    got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves) == 6
    for g, w in zip(got_leaves, want_leaves):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_jacfwd_edge_cases_and_errors(run):
    x = np.array([0.5, 1.5])
    j_empty, j_scalar = run(lambda x: (G.jacfwd(lambda x: x * 2)(x[:0]),
                                       G.jacfwd(lambda x: G.reduce_sum(x * x))(x)), x)
    assert j_empty.shape == (0, 0)
    np.testing.assert_allclose(j_scalar, 2 * x)
    with G.tracing(G.Graph()):
        p = G.parameter(shapes.make("float32", 3))
        with pytest.raises(G.DTypeError, match="jacfwd requires float outputs, got int32"):
            G.jacfwd(lambda x: G.argmax(x, 0))(p)
        with pytest.raises(G.DTypeError, match="jacfwd requires float inputs to differentiate "
                                               "with respect to, got int32"):
            G.jacfwd(lambda i: G.convert(i, "float32"))(G.argmax(p, 0))
        with pytest.raises(TypeError, match=r"jacfwd\(argnums=3\) requires positions among "
                                            r"fn's 1 arguments"):
            G.jacfwd(G.sin, argnums=3)(p)
