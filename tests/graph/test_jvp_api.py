"""`G.jvp`: composites against finite differences and jax.jvp, pytrees in and
out, repeated and closed-over primals, mixing with reverse mode, and errors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_jvpcheck import check_jvp

from mlframework import graph as G
from mlframework.core import shapes

jax.config.update("jax_enable_x64", True)


def _layer_norm(x, gamma, beta, mean, rsqrt):
    mu = mean(x, -1, keepdims=True)
    var = mean((x - mu) * (x - mu), -1, keepdims=True)
    return (x - mu) * rsqrt(var + 1e-5) * gamma + beta


def test_softmax_layer_norm_and_mlp(backend, rng):
    x, gamma, beta = rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    w1, b1, w2 = rng.standard_normal((5, 8)) * 0.5, rng.standard_normal(8), \
        rng.standard_normal((8, 2)) * 0.5

    def ours(x, gamma, beta, w1, b1, w2):
        h = G.tanh(x @ w1 + b1)
        return [G.softmax(x, -1), G.log_softmax(x * 3, 0),
                _layer_norm(x, gamma, beta, lambda v, a, keepdims: G.mean(v, a, keepdims),
                            G.rsqrt),
                G.reduce_sum(G.softmax(h @ w2, -1) * G.relu(x[:, :2]))]

    def ref(x, gamma, beta, w1, b1, w2):
        hp = jax.lax.Precision.HIGHEST
        h = jnp.tanh(jnp.dot(x, w1, precision=hp) + b1)
        return [jax.nn.softmax(x, -1), jax.nn.log_softmax(x * 3, 0),
                _layer_norm(x, gamma, beta, jnp.mean, jax.lax.rsqrt),
                jnp.sum(jax.nn.softmax(jnp.dot(h, w2, precision=hp), -1) * jax.nn.relu(x[:, :2]))]
    check_jvp(backend, ours, [x, gamma, beta, w1, b1, w2], ref, fd=True,
              names=["softmax", "log_softmax", "layer_norm", "mlp"])


def test_float32_tangents_keep_their_dtype(backend, rng):
    x = rng.uniform(0.5, 2, (2, 3)).astype(np.float32)
    check_jvp(backend, lambda x: G.tanh(x) / x + G.log(x), [x],
              lambda x: jnp.tanh(x) / x + jnp.log(x), rtol=1e-5, atol=1e-6)


def test_pytrees_in_and_out(run):
    x, w = np.array([0.5, -1.0]), np.array([[1.0, 2.0], [3.0, -1.0]])
    tx, tw = np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.5, 0.0]])

    def f(params, x):
        y = params["w"] @ x
        return {"y": y, "pair": (G.sin(y), G.argmax(y, 0))}

    def g(x, w, tx, tw):
        return G.jvp(f, ({"w": w}, x), ({"w": tw}, tx))

    (out, tout) = run(g, x, w, tx, tw)
    ref_out, ref_tout = jax.jvp(lambda p, x: {"y": p["w"] @ x, "pair": jnp.sin(p["w"] @ x)},
                                ({"w": w}, x), ({"w": tw}, tx))
    np.testing.assert_allclose(out["y"], ref_out["y"])
    np.testing.assert_allclose(tout["y"], ref_tout["y"])
    np.testing.assert_allclose(tout["pair"][0], ref_tout["pair"])
    assert tout["pair"][1].dtype == np.int32 and not tout["pair"][1].any()  # integer: zeros


def test_repeated_closed_over_unused_and_integer_primals(run):
    x, i = np.array([1.5, -0.5]), np.array([1, 0], np.int32)
    t1, t2 = np.array([1.0, 2.0]), np.array([0.5, -1.0])

    def g(x, i):
        c = G.exp(x)  # closed over: a constant to the jvp, even though it is x's exp
        def f(a, b, k, unused):
            return a * b * c + G.convert(k, "float64"), G.exp(c)
        return G.jvp(f, (x, x, i, x), (t1, t2, i, t1))

    (y, z), (ty, tz) = run(g, x, i)
    np.testing.assert_allclose(y, x * x * np.exp(x) + i)
    np.testing.assert_allclose(ty, (t1 * x + x * t2) * np.exp(x))
    assert tz.shape == (2,) and not tz.any()


def test_forward_over_reverse_and_reverse_over_forward(run, rng):
    x, v = rng.standard_normal(4), rng.standard_normal(4)

    def loss(x):
        return jnp.sum(jnp.sin(x) * jnp.cumsum(x * x))

    def g(x, v):
        def grad_of(x):
            return G.grad(G.reduce_sum(G.sin(x) * G.cumsum(x * x, 0)), x)[0]
        _, hvp = G.jvp(grad_of, (x,), (v,))  # a Hessian-vector product
        _, dir_deriv = G.jvp(lambda x: G.reduce_sum(G.sin(x) * G.cumsum(x * x, 0)), (x,), (v,))
        return hvp, G.grad(dir_deriv, x)[0]  # also H v, by reverse over forward

    hvp, rof = run(g, x, v)
    want = jax.jvp(jax.grad(loss), (x,), (v,))[1]
    np.testing.assert_allclose(hvp, want, rtol=1e-12)
    np.testing.assert_allclose(rof, want, rtol=1e-12)


def _trace(fn, *specs):
    with G.tracing(G.Graph()):
        return fn(*[G.parameter(shapes.make(*s)) for s in specs])


def test_errors():
    spec = ("float32", 3)
    with pytest.raises(TypeError, match="jvp requires primals and tangents as tuples or lists"):
        _trace(lambda x: G.jvp(G.sin, x, x), spec)
    with pytest.raises(TypeError, match=r"jvp requires tangents in the structure of the "
                                        r"primals, got \(\*, \*\) for \(\*\)"):
        _trace(lambda x: G.jvp(G.sin, (x,), (x, x)), spec)
    with pytest.raises(G.ShapeError, match=r"jvp requires each tangent in its primal's shape, "
                                           r"got float32\[2\] for float32\[3\]"):
        _trace(lambda x: G.jvp(G.sin, (x,), (np.ones(2),)), spec)


def test_hessian_vector_product_through_max_pooling(run, rng):
    # Forward over reverse through max pooling's gradient (select_and_scatter_add).
    x, v = rng.permutation(20).reshape(4, 5) / 7.0, rng.standard_normal((4, 5))

    def ours(x):
        return G.reduce_sum(G.reduce_window_max(G.sin(x), (2, 2), (1, 2), ((0, 1), (1, 0))) ** 2)

    def ref(x):
        pooled = jax.lax.reduce_window(jnp.sin(x), -jnp.inf, jax.lax.max, (2, 2), (1, 2),
                                       ((0, 1), (1, 0)))
        return jnp.sum(pooled ** 2)

    hvp = run(lambda x, v: G.jvp(lambda x: G.grad(ours(x), x)[0], (x,), (v,))[1], x, v)
    np.testing.assert_allclose(hvp, jax.jvp(jax.grad(ref), (x,), (v,))[1], rtol=1e-12,
                               atol=1e-14)
