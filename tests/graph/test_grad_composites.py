"""Gradients of composite ops and small models, by finite differences and against JAX."""
from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gradcheck import check_grads

from mlframework import graph as G

# name: (ours, jax); each gets its own input, away from kinks (0 for relu and friends).
ACTIVATIONS = {
    "relu": (G.relu, jax.nn.relu),
    "leaky_relu": (lambda x: G.leaky_relu(x, 0.1), lambda x: jax.nn.leaky_relu(x, 0.1)),
    "sigmoid": (G.sigmoid, jax.nn.sigmoid),
    "silu": (G.silu, jax.nn.silu),
    "softplus": (G.softplus, jax.nn.softplus),
    "gelu": (G.gelu, lambda x: jax.nn.gelu(x, approximate=False)),
    "gelu_tanh": (lambda x: G.gelu(x, approximate=True), lambda x: jax.nn.gelu(x)),
    "clip": (lambda x: G.clip(x, -1.0, 0.5), lambda x: jnp.clip(x, -1.0, 0.5)),
    "square": (G.square, jnp.square),
    "reciprocal": (G.reciprocal, jnp.reciprocal),
}


def test_activations(backend, rng):
    names = list(ACTIVATIONS)
    # Values in +-[0.3, 3]: no kinks at 0, -1 or 0.5 (clip) within eps.
    args = [np.sort(rng.uniform(0.3, 3, 8) * rng.choice([-1.0, 1.0], 8)) for _ in names]
    args[names.index("clip")][:3] = [-1.2, 0.1, 0.7]
    check_grads(backend, lambda *xs: [ACTIVATIONS[n][0](x) for n, x in zip(names, xs)], args,
                lambda *xs: [ACTIVATIONS[n][1](x) for n, x in zip(names, xs)], names=names)


def test_softmax_family(backend, rng):
    x = rng.standard_normal((3, 5))
    big = rng.standard_normal((2, 4)) * 3 + 500.0  # stable for large inputs

    def ours(x, big):
        return [G.softmax(x), G.softmax(x, axis=0), G.log_softmax(x), G.log_softmax(big, 0),
                G.logsumexp(x), G.logsumexp(big, axis=0, keepdims=True)]

    def ref(x, big):
        return [jax.nn.softmax(x), jax.nn.softmax(x, axis=0), jax.nn.log_softmax(x),
                jax.nn.log_softmax(big, 0), jax.nn.logsumexp(x, -1),
                jax.nn.logsumexp(big, axis=0, keepdims=True)]
    check_grads(backend, ours, [x, big], ref, names=["x", "big"], fd_rtol=1e-5)


def test_mean_variance_and_layer_norm(backend, rng):
    x, gamma, beta = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6)

    def layer_norm(x, gamma, beta, mean, var, rsqrt):
        mu = mean(x, -1, keepdims=True)
        return (x - mu) * rsqrt(var(x, -1, keepdims=True) + 1e-5) * gamma + beta

    check_grads(backend,
                lambda x, g, b: [layer_norm(x, g, b, G.mean, G.variance, G.rsqrt),
                                 G.mean(x * x, 0), G.variance(x)],
                [x, gamma, beta],
                lambda x, g, b: [layer_norm(x, g, b, jnp.mean, jnp.var, jax.lax.rsqrt),
                                 jnp.mean(x * x, 0), jnp.var(x)],
                names=["x", "gamma", "beta"])


MATMULS = [((2, 1, 3, 4), (3, 4, 5)), ((4,), (2, 4, 3)), ((3, 4), (4,)), ((4,), (4,)),
           ((2, 3), (3, 2))]


def test_matmul_with_broadcasting(backend, rng):
    args = [rng.standard_normal(s) for pair in MATMULS for s in pair]
    check_grads(backend, lambda *xs: [xs[2 * k] @ xs[2 * k + 1] for k in range(len(MATMULS))],
                args, lambda *xs: [xs[2 * k] @ xs[2 * k + 1] for k in range(len(MATMULS))])


EINSUMS = [("bij,bjk->bik", (2, 3, 4), (2, 4, 5)), ("ij,ij->", (3, 4), (3, 4)),
           ("ijk,kj->ik", (2, 3, 4), (4, 3)), ("ab,cd->dbca", (2, 3), (4, 1)),
           ("...ij,j->...i", (2, 2, 3), (3,))]


def test_einsum(backend, rng):
    args = [rng.standard_normal(s) for _, *shapes in EINSUMS for s in shapes]
    a, b, c = (rng.standard_normal(s) for s in ((2, 3), (3, 4), (4, 2)))

    def ours(*xs):
        chain = G.einsum("ab,bc,cd->ad", *xs[-3:])
        return [G.einsum(e, xs[2 * k], xs[2 * k + 1]) for k, (e, *_) in enumerate(EINSUMS)] + [
            chain, G.einsum("ijk->kj", xs[0])]

    def ref(*xs):
        chain = jnp.einsum("ab,bc,cd->ad", *xs[-3:])
        return [jnp.einsum(e, xs[2 * k], xs[2 * k + 1]) for k, (e, *_) in enumerate(EINSUMS)] + [
            chain, jnp.einsum("ijk->kj", xs[0])]
    check_grads(backend, ours, args + [a, b, c], ref)


def test_one_hot_cross_entropy_and_mlp(backend, rng):
    # A two-layer classifier: every weight gets a gradient through matmul, gelu and the loss.
    x, labels = rng.standard_normal((5, 4)), np.array([0, 2, 1, 2, 0], np.int32)
    w1, b1, w2 = (rng.standard_normal(s) for s in ((4, 6), (6,), (6, 3)))

    def ours(x, labels, w1, b1, w2):
        logits = G.gelu(x @ w1 + b1) @ w2
        return -G.mean(G.reduce_sum(G.one_hot(labels, 3, "float64") * G.log_softmax(logits), 1))

    def ref(x, labels, w1, b1, w2):
        logits = jax.nn.gelu(x @ w1 + b1, approximate=False) @ w2
        return -jnp.mean(jnp.sum(jax.nn.one_hot(labels, 3) * jax.nn.log_softmax(logits), 1))
    check_grads(backend, ours, [x, labels, w1, b1, w2], ref,
                names=["x", "labels", "w1", "b1", "w2"])


def test_layout_composites_and_indexing(backend, rng):
    a, b, c = (rng.standard_normal(s) for s in ((2, 3), (2, 3), (1, 4, 1)))

    def ours(a, b, c):
        left, right = G.split(G.stack([a, b], axis=1), [1], axis=2)
        return [left * 2, G.squeeze(c), G.expand_dims(a, -1) * b[:, None, :], G.flatten(c),
                a[::-1, 1:], c[0, ::-2, ...], right]

    def ref(a, b, c):
        left, right = jnp.split(jnp.stack([a, b], axis=1), [1], axis=2)
        return [left * 2, jnp.squeeze(c), jnp.expand_dims(a, -1) * b[:, None, :], c.reshape(-1),
                a[::-1, 1:], c[0, ::-2, ...], right]
    check_grads(backend, ours, [a, b, c], ref, names=list("abc"))


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_reductions_of_composites(backend, rng, shape):
    x = rng.uniform(0.5, 2.0, shape)
    check_grads(backend, lambda x: [G.reduce_prod(G.sqrt(x)), G.mean(G.log(x)) * G.reduce_max(x)],
                [x], lambda x: [jnp.prod(jnp.sqrt(x)), jnp.mean(jnp.log(x)) * jnp.max(x)])


def test_masked_attention(backend, rng):
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    causal = np.tril(np.ones((4, 4), bool))

    def attention(q, k, v, np_, softmax):
        scores = np_.matmul(q, np_.swapaxes(k, -1, -2)) / np.sqrt(3.0)
        return np_.matmul(softmax(np_.where(causal, scores, -1e9)), v)

    check_grads(backend, lambda q, k, v: attention(q, k, v, _graph_numpy, G.softmax), [q, k, v],
                lambda q, k, v: attention(q, k, v, jnp, jax.nn.softmax), names=list("qkv"))


# Just enough of a NumPy namespace over graph nodes for `test_masked_attention`.
_graph_numpy = SimpleNamespace(matmul=G.matmul, where=G.where,
                               swapaxes=lambda x, a, b: G.transpose(x, (0, 2, 1)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_gradients(backend, rng, dtype):
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x, w = (jnp.asarray(a, dtype) for a in (x, w))
    check_grads(backend, lambda x, w: G.softmax(G.tanh(x @ w)) * G.exp(x[:, :2]),
                [np.asarray(x), np.asarray(w)],
                lambda x, w: jax.nn.softmax(jnp.tanh(x @ w)) * jnp.exp(x[:, :2]),
                fd=False, rtol=5e-2, atol=5e-2)


def test_zero_size_inputs(backend, rng):
    x, w = np.zeros((0, 3)), rng.standard_normal((3, 2))

    def ours(x, w):
        return [G.tanh(x @ w), G.reduce_sum(x, 0) * w[:, 0], G.concatenate([x, x], 0)]

    def ref(x, w):
        return [jnp.tanh(x @ w), jnp.sum(x, 0) * w[:, 0], jnp.concatenate([x, x], 0)]
    dx, dw = check_grads(backend, ours, [x, w], ref)
    assert dx.shape == (0, 3) and not dw.any()
