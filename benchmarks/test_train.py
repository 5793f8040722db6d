"""Train-step throughput: our backends beside a hand-written jitted JAX step and PyTorch eager.

    .venv/bin/python -m pytest benchmarks/test_train.py --benchmark-only \
        --benchmark-columns=median,iqr,ops

Two models, as issue 4 asks: an MLP 784-512-512-10 (ReLU) at batch 128 and
LeNet-5 (conv 6@5x5 same, max-pool, conv 16@5x5, max-pool, dense 120-84-10,
ReLU) on 28x28 at batch 64, both trained with Adam (lr 1e-3) on softmax
cross-entropy. One timed call is a full step (forward, loss, gradients,
update) plus copying the loss to the host, the way a training loop runs.
NumPy batches go in each step for every contender. Targets (issue 4): xla
within 1.1x of plain JAX; c at least 1.3x PyTorch eager on the MLP and 1.0x
on LeNet. Read ratios of medians; `benchmarks/README.md` records them.

The groups `mlp-adam-b32/b128/b512` set the c backend against plain jax.jit at
the batch sizes of issue 17 (target: c at least 1.25x). For one thread, run
under `taskset -c 0` with MLF_NUM_THREADS=1 (XLA sizes its pool by the CPUs
the process may use); for two, as is.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mlframework as mlf
from bench_models import lenet, mlp
from mlframework.ml import Context, losses, optimizers, train

RNG = np.random.default_rng(0)
MLP_X = RNG.normal(size=(128, 784)).astype(np.float32)
MLP_Y = RNG.integers(0, 10, 128).astype(np.int32)
LENET_X = RNG.normal(size=(64, 1, 28, 28)).astype(np.float32)
LENET_Y = RNG.integers(0, 10, 64).astype(np.int32)


# ---- ours ----

def ours(name, model, x, y):
    trainer = train.Trainer(mlf.backends.new(name), Context(seed=0), model,
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
    step = lambda: float(trainer.train_step(x, y)["loss"].numpy())  # noqa: E731
    for _ in range(3):
        step()  # compile and warm up
    return step


@pytest.mark.benchmark(group="mlp-784-512-512-10-b128-adam")
@pytest.mark.parametrize("name", mlf.backends.names())
def test_mlp_ours(benchmark, name):
    benchmark(ours(name, mlp, MLP_X, MLP_Y))


SWEEP = {b: (RNG.normal(size=(b, 784)).astype(np.float32),
             RNG.integers(0, 10, b).astype(np.int32)) for b in (32, 128, 512)}


@pytest.mark.parametrize("batch", SWEEP)
def test_mlp_batch_sweep_c(benchmark, batch):
    benchmark.group = f"mlp-adam-b{batch}"
    benchmark(ours("c", mlp, *SWEEP[batch]))


@pytest.mark.parametrize("batch", SWEEP)
def test_mlp_batch_sweep_plain_jax(benchmark, batch):
    benchmark.group = f"mlp-adam-b{batch}"
    benchmark(plain_jax(jax_mlp_loss, MLP_SHAPES, *SWEEP[batch]))


@pytest.mark.benchmark(group="lenet5-28x28-b64-adam")
@pytest.mark.parametrize("name", mlf.backends.names())
def test_lenet_ours(benchmark, name):
    benchmark(ours(name, lenet, LENET_X, LENET_Y))


# ---- plain JAX: hand-written model, Adam and jitted step ----

def jax_adam_step(loss_fn):
    def step(params, m, v, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
        params = jax.tree.map(lambda p, m, v: p - 1e-3 / c1 * m / (jnp.sqrt(v / c2) + 1e-8),
                              params, m, v)
        return params, m, v, t, loss
    return jax.jit(step, donate_argnums=(0, 1, 2))


def xent(logits, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


def jax_mlp_loss(p, x, y):
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    h = jax.nn.relu(h @ p["w2"] + p["b2"])
    return xent(h @ p["w3"] + p["b3"], y)


def jax_lenet_loss(p, x, y):
    dn = ("NCHW", "OIHW", "NCHW")
    h = jax.lax.conv_general_dilated(x, p["k1"], (1, 1), "SAME", dimension_numbers=dn)
    h = jax.nn.relu(h + p["c1"][:, None, None])
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = jax.lax.conv_general_dilated(h, p["k2"], (1, 1), "VALID", dimension_numbers=dn)
    h = jax.nn.relu(h + p["c2"][:, None, None])
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ p["w1"] + p["b1"])
    h = jax.nn.relu(h @ p["w2"] + p["b2"])
    return xent(h @ p["w3"] + p["b3"], y)


def plain_jax(loss_fn, shapes, x, y):
    params = {k: jnp.asarray(RNG.normal(size=s).astype(np.float32) * 0.05)
              for k, s in shapes.items()}
    state = [params, jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.zeros_like, params),
             jnp.zeros((), jnp.float32)]
    fn = jax_adam_step(loss_fn)

    def step():
        *state[:4], loss = fn(*state, x, y)
        return float(loss)
    for _ in range(3):
        step()
    return step


MLP_SHAPES = dict(w1=(784, 512), b1=(512,), w2=(512, 512), b2=(512,), w3=(512, 10), b3=(10,))
LENET_SHAPES = dict(k1=(6, 1, 5, 5), c1=(6,), k2=(16, 6, 5, 5), c2=(16,), w1=(400, 120),
                    b1=(120,), w2=(120, 84), b2=(84,), w3=(84, 10), b3=(10,))


@pytest.mark.benchmark(group="mlp-784-512-512-10-b128-adam")
def test_mlp_plain_jax(benchmark):
    benchmark(plain_jax(jax_mlp_loss, MLP_SHAPES, MLP_X, MLP_Y))


@pytest.mark.benchmark(group="lenet5-28x28-b64-adam")
def test_lenet_plain_jax(benchmark):
    benchmark(plain_jax(jax_lenet_loss, LENET_SHAPES, LENET_X, LENET_Y))


# ---- PyTorch eager ----

def torch_step(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    for _ in range(3):
        step()
    return step


@pytest.mark.benchmark(group="mlp-784-512-512-10-b128-adam")
def test_mlp_torch_eager(benchmark):
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    benchmark(torch_step(model, MLP_X, MLP_Y))


@pytest.mark.benchmark(group="lenet5-28x28-b64-adam")
def test_lenet_torch_eager(benchmark):
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))
    benchmark(torch_step(model, LENET_X, LENET_Y))
