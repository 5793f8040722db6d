"""Gradient checkpointing: peak temporary memory of one train step, with and without.

    .venv/bin/python -m pytest benchmarks/test_train_memory.py -s

A residual MLP of 6 blocks (dense 512 -> gelu -> dense 512), batch 256,
trained with SGD. With `remat.checkpoint` around each block the backward
pass recomputes the block's activations instead of keeping them. The memory
is XLA's own plan for the compiled train step (`memory_analysis()`: the
temporary buffers beyond arguments and outputs), so it is exact and
repeatable; the loss curves must agree. `benchmarks/README.md` (Training)
records the numbers.
"""
import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.core import pytree
from mlframework.ml import Context, layers, losses, optimizers, remat, train

DEPTH, WIDTH, BATCH = 6, 512, 256


def make_model(use_remat: bool):
    def block(ctx, x):
        h = layers.dense(ctx / "up", x, WIDTH, activation="gelu")
        return x + G.tanh(layers.dense(ctx / "down", h, WIDTH))

    block = remat.checkpoint(block) if use_remat else block

    def model(ctx, x):
        x = layers.dense(ctx / "in", x, WIDTH)
        for i in range(DEPTH):
            x = block(ctx / f"block{i}", x)
        return layers.dense(ctx / "out", x, 10)
    return model


def xla_temp_bytes(trainer, backend, x, y) -> int:
    """Bytes of temporaries XLA planned for the compiled train step."""
    (executable, _, _), = trainer._train._exec._cache.values()
    variables = {v.name: v.value for v in trainer.ctx.variables()}
    leaves, _ = pytree.flatten((variables, x, y))
    buffers = [t.buffer(backend) if hasattr(t, "buffer") else t for t in leaves]
    return executable._fn.lower(*buffers).compile().memory_analysis().temp_size_in_bytes


def test_gradient_checkpointing_lowers_peak_memory_with_the_same_losses():
    backend = mlf.backends.new("xla")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, 64)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    results = {}
    for use_remat in (False, True):
        trainer = train.Trainer(backend, Context(seed=0), make_model(use_remat),
                                losses.sparse_categorical_cross_entropy_logits,
                                optimizers.SGD(0.01))
        curve = [float(trainer.train_step(x, y)["loss"].numpy()) for _ in range(4)]
        results[use_remat] = (curve, xla_temp_bytes(trainer, backend, x, y))
    (plain_curve, plain_bytes), (remat_curve, remat_bytes) = results[False], results[True]
    print(f"\nxla temporaries per train step: plain {plain_bytes / 2**20:.1f} MiB, "
          f"checkpointed {remat_bytes / 2**20:.1f} MiB ({remat_bytes / plain_bytes:.2f}x)")
    np.testing.assert_allclose(remat_curve, plain_curve, rtol=1e-6)
    assert remat_bytes < 0.6 * plain_bytes


def planned_arena_bytes(trainer):
    """The scratch arena a planning backend (c) allocates for the train step, or None."""
    (executable, _, _), = trainer._train._exec._cache.values()
    plan = getattr(executable, "memory_plan", None)
    return getattr(plan, "arena_bytes", None)


@pytest.mark.parametrize("name", [n for n in mlf.backends.names() if n != "xla"])
def test_other_backends_give_the_same_losses_with_checkpointing(name):
    backend = mlf.backends.new(name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, 64)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    curves, arenas = [], []
    for use_remat in (False, True):
        trainer = train.Trainer(backend, Context(seed=0), make_model(use_remat),
                                losses.sparse_categorical_cross_entropy_logits,
                                optimizers.SGD(0.01))
        curves.append([float(trainer.train_step(x, y)["loss"].numpy()) for _ in range(3)])
        arenas.append(planned_arena_bytes(trainer))
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-5)
    if None not in arenas:
        print(f"\n{name} arena per train step: plain {arenas[0] / 2**20:.1f} MiB, "
              f"checkpointed {arenas[1] / 2**20:.1f} MiB ({arenas[1] / arenas[0]:.2f}x)")
