"""The autodiff API: `grad` over several inputs, unused inputs, stop_gradient,
cotangent accumulation, intermediate nodes, second order, and its errors."""
from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_gradcheck import check_grads

from mlframework import graph as G
from mlframework.graph import autodiff, vjp
from mlframework.graph.gen_optypes import DIFFERENTIABLE


def test_every_differentiable_op_has_a_rule_and_no_other():
    assert set(vjp.RULES) == set(DIFFERENTIABLE)
    for op, rule in vjp.RULES.items():
        if not callable(rule):  # one function per input: as many as the op has inputs
            assert all(r is None or callable(r) for r in rule), op


def test_several_inputs_unused_and_repeated(run):
    x, y, z = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.25, -0.5]), np.ones((2, 2), np.float32)

    def f(x, y, z):
        loss = G.reduce_sum(x * x * x + G.sin(x) * x + x * y)  # x used five times
        return G.grad(loss, [x, y, z, x])

    dx, dy, dz, dx_again = run(f, x, y, z)
    np.testing.assert_allclose(dx, 3 * x * x + np.cos(x) * x + np.sin(x) + y, rtol=1e-12)
    np.testing.assert_allclose(dy, x, rtol=1e-12)
    assert dz.dtype == np.float32 and dz.shape == (2, 2) and not dz.any()
    np.testing.assert_array_equal(dx_again, dx)


def test_node_used_many_times_and_diamonds(backend, rng):
    x = rng.uniform(0.5, 1.5, (3, 2))

    def f(x):
        h = G.tanh(x)
        a, b = h * 2.0, G.exp(h)
        return G.log(a * b + h) * h

    check_grads(backend, f, [x], lambda x: (lambda h: jnp.log(2 * h * jnp.exp(h) + h) * h)(
        jnp.tanh(x)))


def test_stop_gradient(run):
    x = np.array([0.5, -2.0, 3.0])

    def f(x):
        loss = G.reduce_sum(x * G.stop_gradient(x * x) + G.stop_gradient(G.exp(x)))
        return G.grad(loss, x)[0]

    ref = jax.grad(lambda x: jnp.sum(x * lax.stop_gradient(x * x) + lax.stop_gradient(jnp.exp(x))))
    np.testing.assert_allclose(run(f, x), ref(x), rtol=1e-12)
    np.testing.assert_allclose(run(f, x), x * x, rtol=1e-12)


def test_no_gradient_through_integers_or_comparisons(run):
    x = np.array([0.7, -1.2, 2.5])

    def f(x):
        mask = G.convert(x > 0, "float64")
        floored = G.convert(G.convert(x, "int32") * 2, "float64")
        index = G.convert(G.argmax(x, 0), "float64")
        loss = G.reduce_sum(mask * x + floored * x + G.floor(x) + index)
        return G.grad(loss, [x])[0]

    np.testing.assert_allclose(run(f, x), (x > 0) + 2 * np.trunc(x), rtol=1e-12)


def test_gradient_with_respect_to_intermediate_nodes(run):
    x, w = np.array([[1.0, 2.0]]), np.array([[0.5, -1.0, 0.25], [0.1, 0.2, 0.3]])

    def f(x, w):
        h = G.tanh(x @ w)
        loss = G.reduce_sum(h * h)
        dh, dloss, dx = G.grad(loss, [h, loss, x])
        return dh, dloss, dx

    dh, dloss, dx = run(f, x, w)
    h = np.tanh(x @ w)
    np.testing.assert_allclose(dh, 2 * h, rtol=1e-12)
    np.testing.assert_allclose(dloss, 1.0)
    np.testing.assert_allclose(dx, (2 * h * (1 - h * h)) @ w.T, rtol=1e-12)


def test_grad_emits_only_the_cotangents_it_needs():
    graph = G.Graph()
    with G.tracing(graph):
        x = G.parameter(_spec((8, 3)))
        w = G.parameter(_spec((3, 4)))
        loss = G.reduce_sum(G.tanh(x @ w) * x[:, :1])
        before = len(graph.nodes)
        G.grad(loss, [w])
    ops = [n.op for n in graph.nodes[before:]]
    assert ops.count(G.Op.DOT_GENERAL) == 1  # d/dw only: no d/dx matmul


def _spec(shape, dtype="float64"):
    from mlframework.core import shapes
    return shapes.make(dtype, *shape)


def test_second_order(backend, rng):
    # Gradients are graphs too: differentiate them again (Hessian-vector products).
    x, w = rng.standard_normal((3, 4)) * 0.5, rng.standard_normal((4, 2))
    p = rng.uniform(0.5, 1.5, (5,))
    img, kernel = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2))

    def loss(x, w, p, img, kernel, np_):
        conv = G.conv_general if np_ is _graph_numpy else lambda a, b, s: lax.conv_general_dilated(
            a, b, s, "VALID", precision=lax.Precision.HIGHEST)
        mlp = np_.sum(np_.tanh(np_.matmul(x, w)) ** 2 * np_.exp(x[:, :2]))
        probs = np_.sum(np_.log(p) * p / (1 + p * p) + np_.sqrt(p) * np_.sin(p))
        maps = np_.sum(np_.cumsum(conv(img, kernel, (2, 1))[0, :, ::2], 1) ** 2)
        return mlp + probs + maps + np_.sum(np_.sort(x, 1)[:, 1:] ** 3)

    check_grads(backend, lambda *a: G.grad(loss(*a, _graph_numpy), list(a)), [x, w, p, img, kernel],
                lambda *a: jax.grad(loss, range(5))(*a, jnp), fd_rtol=1e-5)


def test_second_order_of_more_ops(backend, rng):
    x, y = rng.uniform(0.3, 1.5, (3, 4)), rng.uniform(-1.5, -0.3, (3, 4))
    i = np.array([2, 0, 2], np.int32)

    def ours(x, y, i):
        pooled = G.reduce_window_sum(G.pad(x, [(1, 0, 0), (0, 1, 1)]), (2, 2), (1, 2))
        loss = (G.reduce_sum(G.softmax(x * y) * G.logistic(y)) + G.reduce_sum(pooled * pooled)
                + G.reduce_sum(G.erf(x) * G.atan2(x, y) + G.max(x, -y) * G.rsqrt(x))
                + G.reduce_sum(G.take(x, i, 1) ** 3) + G.reduce_max(x * y) * G.reduce_prod(x)
                + G.reduce_sum(G.dynamic_slice(G.concatenate([x, y]), [i[0], i[1]], (2, 3)) ** 3))
        return G.grad(loss, [x, y])

    def jax_loss(x, y, i):
        pooled = lax.reduce_window(lax.pad(x, 0.0, [(1, 0, 0), (0, 1, 1)]), 0.0, lax.add,
                                   (2, 2), (1, 2), "VALID")
        return (jnp.sum(jax.nn.softmax(x * y) * jax.nn.sigmoid(y)) + jnp.sum(pooled * pooled)
                + jnp.sum(lax.erf(x) * jnp.arctan2(x, y) + jnp.maximum(x, -y) * lax.rsqrt(x))
                + jnp.sum(jnp.take(x, i, 1) ** 3) + jnp.max(x * y) * jnp.prod(x)
                + jnp.sum(lax.dynamic_slice(jnp.concatenate([x, y]), (i[0], i[1]), (2, 3)) ** 3))

    check_grads(backend, ours, [x, y, i], lambda x, y, i: jax.grad(jax_loss, (0, 1))(x, y, i),
                fd_rtol=1e-5)


# Just enough of a NumPy namespace over graph nodes for `test_second_order`.
_graph_numpy = SimpleNamespace(
    tanh=G.tanh, exp=G.exp, log=G.log, sqrt=G.sqrt, sin=G.sin, sort=G.sort, matmul=G.matmul,
    sum=lambda x: G.reduce_sum(x), cumsum=lambda x, axis: G.cumsum(x, axis))


def test_grad_of_non_scalar_is_an_error():
    with G.tracing(G.Graph()):
        x = G.parameter(_spec((3,)))
        with pytest.raises(G.ShapeError, match=r"grad requires a scalar output, got float64\[3\]"):
            G.grad(G.sin(x), [x])


def test_grad_of_integer_output_is_an_error():
    with G.tracing(G.Graph()):
        x = G.parameter(_spec((3,)))
        with pytest.raises(G.DTypeError, match="grad requires a float output, got int32"):
            G.grad(G.argmax(x, 0), [x])


def test_grad_with_respect_to_integers_is_an_error():
    with G.tracing(G.Graph()):
        x, i = G.parameter(_spec((3,))), G.parameter(_spec((3,), "int32"))
        with pytest.raises(G.DTypeError, match="grad requires float inputs .* got int32"):
            G.grad(G.reduce_sum(x), [x, i])
        with pytest.raises(TypeError, match="grad requires nodes of the output's graph"):
            G.grad(G.reduce_sum(x), [np.ones(3)])


def test_vjp_of_non_scalar_output(run):
    x = np.array([0.1, 0.2, 0.3])

    def f(x):
        return autodiff.vjp(G.sin(x) * 2, [x], G.const(np.array([1.0, -1.0, 0.5])))[0]

    np.testing.assert_allclose(run(f, x), 2 * np.cos(x) * [1, -1, 0.5], rtol=1e-12)


def test_second_order_through_max_pooling_is_an_error_not_a_wrong_number():
    with G.tracing(G.Graph()):
        x = G.parameter(_spec((4, 4)))
        dx = G.grad(G.reduce_sum(G.reduce_window_max(x, (2, 2)) ** 3), [x])[0]
        with pytest.raises(NotImplementedError, match="grad through select_and_scatter_add"):
            G.grad(G.reduce_sum(dx * dx), [x])
