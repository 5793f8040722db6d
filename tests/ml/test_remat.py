"""Gradient checkpointing: same gradients and losses, recomputed blocks in the graph."""
import numpy as np
import pytest

from mlframework import graph as G
from mlframework.core import shapes
from mlframework.ml import Context, datasets, layers, losses, optimizers, remat, train


def block(x, w):
    return G.tanh(x @ w) * G.exp(-G.square(x @ w) * 0.1)


def test_remat_grad_equals_plain_grad(run, rng):
    x = rng.normal(size=(8, 6)).astype(np.float32)
    ws = [rng.normal(size=(6, 6)).astype(np.float32) * 0.5 for _ in range(3)]

    def f(x, w1, w2, w3, use_remat):
        inner = remat.checkpoint(block)
        outer = remat.checkpoint(lambda h, a, b: inner(block(h, a), b))  # nested blocks
        h = outer(x, w1, w2) if use_remat else block(block(x, w1), w2)
        loss = G.reduce_sum(G.square(block(h, w3)))
        return (remat.grad if use_remat else G.grad)(loss, [x, w1, w2, w3])

    got = run(lambda *a: f(*a, True), x, *ws)
    want = run(lambda *a: f(*a, False), x, *ws)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_recomputed_block_appears_in_the_backward_graph():
    with G.tracing(G.Graph()) as graph:
        x = G.parameter(shapes.make(np.float32, 4, 4))
        w = G.parameter(shapes.make(np.float32, 4, 4))
        y = remat.checkpoint(block)(x, w)
        loss = G.reduce_sum(y)
        n_forward = len(graph.nodes)
        remat.grad(loss, [w])
        tanh_nodes = [n for n in graph.nodes if n.op is G.Op.TANH]
    assert len(tanh_nodes) == 2 and tanh_nodes[1].id > n_forward  # the recomputation


def test_block_leaking_an_inner_node_is_an_error():
    leaked = []

    def leaky(x):
        h = G.tanh(x)
        leaked.append(h)
        return h * 2

    with G.tracing(G.Graph()):
        x = G.parameter(shapes.make(np.float32, 3))
        y = remat.checkpoint(leaky)(x)
        loss = G.reduce_sum(y + leaked[0])
        with pytest.raises(ValueError, match="used outside the block"):
            remat.grad(loss, [x])


def mlp(use_remat):
    def hidden(ctx, x):
        x = layers.dense(ctx, x, 32, activation="gelu")
        return layers.dropout(ctx, x, 0.3)  # the recomputation must draw the same mask

    wrapped = remat.checkpoint(hidden) if use_remat else hidden

    def model(ctx, x):
        for i in range(3):
            x = wrapped(ctx / f"block{i}", x)
        return layers.dense(ctx / "logits", x, 10)
    return model


def test_trainer_with_checkpointed_blocks_gives_the_same_loss_curve(backend):
    (x, y), _ = datasets.load_digits()
    curves = []
    for use_remat in (False, True):
        ds = datasets.InMemory((x[:256], y[:256]), 32, shuffle=True, seed=0, drop_remainder=True)
        trainer = train.Trainer(backend, Context(seed=2), mlp(use_remat),
                                losses.sparse_categorical_cross_entropy_logits,
                                optimizers.Adam(1e-2))
        curves.append(train.Loop(trainer).run_steps(ds, 10).losses)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-5)
    assert curves[0][-1] < curves[0][0]
