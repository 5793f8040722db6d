"""`G.jacobian` against analytic Jacobians and jax.jacrev."""
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
