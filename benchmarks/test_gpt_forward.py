"""GPT-2-shaped forward: our backends beside a hand-written jax.jit of the same computation.

    .venv/bin/python -m pytest benchmarks/test_gpt_forward.py --benchmark-only \
        --benchmark-columns=median,iqr,ops

The workload of issue 17: GPT-2's transformer body (pre-LayerNorm blocks of causal
multi-head self-attention and a tanh-GELU MLP of 4x the width, then the final LayerNorm)
with 4 layers, 4 heads, width 256, over one sequence of 128 hidden states (batch 1),
float32. Ours is built from the project's layers (`layer_norm`, `multi_head_attention`,
`dense`), as `mlframework/models/hf/gpt2.py` builds each block; the embedding lookup and
the vocabulary head are left out, so the time is the blocks'. The jax.jit contender is
written by hand with jax.numpy on the very weights our context holds; the same function in
float64 NumPy is the reference that every contender's output is checked against before
timing (rtol and atol `TOL`, 2e-5). One timed call is a forward plus copying the
[1, 128, 256] result to the host. Target (issue 17): c at least 1.3x jax.jit on 1 and 2
threads. For one thread, run under `taskset -c 0` with MLF_NUM_THREADS=1 (XLA sizes its
pool by the CPUs the process may use); for two, as is.

The groups `gpt2-4x256-s128-b32/b128/b512-forward` run the same forward over 32, 128 and
512 sequences (issue 17's batch sizes), c against jax.jit; each call there takes 0.1-3 s.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlframework as mlf
from mlframework.core.tensors import Tensor
from mlframework.ml import Context, ContextExec, layers

LAYERS, HEADS, WIDTH, SEQ = 4, 4, 256, 128
TOL = 2e-5  # rtol and atol of every contender against the float64 reference
X = np.random.default_rng(0).normal(size=(1, SEQ, WIDTH)).astype(np.float32)


def gpt_body(ctx, x):
    """GPT-2's blocks over hidden states x [batch, seq, width] -> [batch, seq, width]."""
    for i in range(LAYERS):
        block = ctx / "h" / str(i)
        h = layers.layer_norm(block / "ln_1", x)
        x = x + layers.multi_head_attention(block, h, num_heads=HEADS, causal=True)
        h = layers.layer_norm(block / "ln_2", x)
        h = layers.gelu(layers.dense(block / "mlp" / "fc", h, 4 * WIDTH), approximate=True)
        x = x + layers.dense(block / "mlp" / "proj", h, WIDTH)
    return layers.layer_norm(ctx / "ln_f", x)


def _layer_norm(xp, p, name, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / xp.sqrt(var + 1e-5) * p[f"{name}/layer_norm/gamma"] + \
        p[f"{name}/layer_norm/beta"]


def _dense(p, name, x):
    return x @ p[f"{name}/dense/weights"] + p[f"{name}/dense/biases"]


def _softmax(xp, s):
    e = xp.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _gelu(xp, x):
    """GELU's tanh approximation, as jax.nn.gelu(approximate=True) computes it. (Constants
    are Python or float32 scalars: mlframework enables jax's float64, and a float64 scalar
    would make jax compute in float64.)"""
    return 0.5 * x * (1 + xp.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + 0.044715 * x ** 3)))


def body(xp, p, x):
    """`gpt_body` over the weights p {variable name: array} with the array module xp:
    jax.numpy in float32 for the jax.jit contender, NumPy in float64 for the reference."""
    b, s, d = x.shape
    hd = d // HEADS
    allowed = xp.tril(xp.ones((s, s), bool))
    heads = lambda t: t.reshape(b, s, HEADS, hd).transpose(0, 2, 1, 3)  # noqa: E731
    for i in range(LAYERS):
        blk = f"h/{i}"
        h = _layer_norm(xp, p, f"{blk}/ln_1", x)
        q, k, v = (heads(_dense(p, f"{blk}/attention/{n}", h))
                   for n in ("query", "key", "value"))
        scores = xp.where(allowed, q @ k.transpose(0, 1, 3, 2) * np.float32(1 / np.sqrt(hd)),
                          np.finfo(np.float32).min)
        att = (_softmax(xp, scores) @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
        x = x + _dense(p, f"{blk}/attention/output", att)
        h = _layer_norm(xp, p, f"{blk}/ln_2", x)
        h = _gelu(xp, _dense(p, f"{blk}/mlp/fc", h))
        x = x + _dense(p, f"{blk}/mlp/proj", h)
    return _layer_norm(xp, p, "ln_f", x)


def jax_body(p, x):
    """The jax.jit contender: `body` in jax.numpy."""
    return body(jnp, p, x)


def numpy_reference(weights, x):
    """`body` in float64 NumPy on the same weights: what every contender is checked against."""
    p = {k: a.astype(np.float64) for k, a in weights.items()}
    return body(np, p, x.astype(np.float64))


@pytest.fixture(scope="module")
def weights():
    """(a Context holding the model's variables, {name: float32 array} of the same values)."""
    ctx = Context(seed=0)
    ContextExec(mlf.backends.new("xla"), ctx, gpt_body)(X)  # creates the variables
    values = {v.name: np.asarray(v.value.numpy(), np.float32) for v in ctx.variables()}
    rng = np.random.default_rng(1)
    for v in ctx.variables():  # random LayerNorm affines and biases, so that all of them count
        if not v.name.endswith("/weights"):
            values[v.name] = (values[v.name] + 0.1 * rng.normal(size=values[v.name].shape)
                              ).astype(np.float32)
            v.value = Tensor(values[v.name])
    return ctx, values


@pytest.fixture(scope="module")
def reference(weights):
    """The forward in float64 NumPy."""
    return numpy_reference(weights[1], X)


@pytest.mark.benchmark(group="gpt2-4x256-s128-b1-forward")
@pytest.mark.parametrize("name", mlf.backends.names())
def test_gpt_forward_ours(benchmark, weights, reference, name):
    benchmark(_ours(name, weights, X, reference))


def _ours(name, weights, x, reference, warmup=3):
    """A timed call of our forward on backend `name` over x, after checking it."""
    exe = ContextExec(mlf.backends.new(name), weights[0], gpt_body)
    step = lambda: exe(x).numpy()  # noqa: E731
    np.testing.assert_allclose(step(), reference, rtol=TOL, atol=TOL)
    for _ in range(warmup):
        step()
    return step


@pytest.mark.benchmark(group="gpt2-4x256-s128-b1-forward")
def test_gpt_forward_plain_jax(benchmark, weights, reference):
    benchmark(_plain_jax(weights, X, reference))


def _plain_jax(weights, x, reference, warmup=3):
    """A timed call of the hand-written jax.jit forward on x, after checking it."""
    params = {k: jnp.asarray(a) for k, a in weights[1].items()}
    fn = jax.jit(jax_body)
    step = lambda: np.asarray(fn(params, x))  # noqa: E731
    np.testing.assert_allclose(step(), reference, rtol=TOL, atol=TOL)
    for _ in range(warmup):
        step()
    return step


SWEEP = (32, 128, 512)


@pytest.fixture(scope="module")
def sweep(weights):
    """{batch: (hidden states [batch, 128, 256], the forward of them in float64 NumPy)}."""
    rng = np.random.default_rng(2)
    out = {}
    for b in SWEEP:
        x = rng.normal(size=(b, SEQ, WIDTH)).astype(np.float32)
        out[b] = x, numpy_reference(weights[1], x)
    return out


@pytest.mark.parametrize("batch", SWEEP)
def test_gpt_forward_batch_sweep_c(benchmark, weights, sweep, batch):
    benchmark.group = f"gpt2-4x256-s128-b{batch}-forward"
    x, reference = sweep[batch]
    benchmark(_ours("c", weights, x, reference, warmup=1))


@pytest.mark.parametrize("batch", SWEEP)
def test_gpt_forward_batch_sweep_plain_jax(benchmark, weights, sweep, batch):
    benchmark.group = f"gpt2-4x256-s128-b{batch}-forward"
    x, reference = sweep[batch]
    benchmark(_plain_jax(weights, x, reference, warmup=1))
