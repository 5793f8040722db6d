"""Control flow (issue 15): a 256-step scan RNN, forward and gradient, on the c and xla
backends side by side with the same model in plain jax.jit; and the per-iteration cost
of an empty fori_loop.

    .venv/bin/python -m pytest benchmarks/test_control_flow.py --benchmark-only

Target: c at least 1.0x jax.jit on the RNN. Compare the medians within each group;
`benchmarks/README.md` records the ratios. Where a backend does not compile control
flow, its case asserts the NotImplementedError instead of timing anything.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import mlframework as mlf
from mlframework import graph as G

STEPS, BATCH, HIDDEN = 256, 32, 256
EMPTY_LOOP_TRIPS = 1_000_000

_rng = np.random.default_rng(0)
W = (_rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
U = (_rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
H0 = np.zeros((BATCH, HIDDEN), np.float32)
XS = _rng.standard_normal((STEPS, BATCH, HIDDEN)).astype(np.float32)


def _rnn(tanh, scan, total):
    def forward(w, u, h0, xs):
        def step(h, x):
            h = tanh(h @ w + x @ u)
            return h, None
        h, _ = scan(step, h0, xs)
        return total(h * h)
    return forward


OURS = _rnn(G.tanh, G.scan, G.reduce_sum)
THEIRS = _rnn(jnp.tanh, lax.scan, jnp.sum)


def _ours_gradient(w, u, h0, xs):
    loss = OURS(w, u, h0, xs)
    return G.grad(loss, [w, u])


def _compiled(backend_name, fn, *args):
    """The Exec, warmed up; or None once the backend's refusal of control flow is checked."""
    exe = G.Exec(mlf.backends.new(backend_name), fn)
    try:
        exe(*args)
    except NotImplementedError as error:
        assert backend_name == "c" and "scan" in str(error), error
        return None
    return exe


@pytest.mark.benchmark(group="rnn-forward")
@pytest.mark.parametrize("backend_name", ["c", "xla"])
def test_rnn_forward(benchmark, backend_name):
    exe = _compiled(backend_name, OURS, W, U, H0, XS)
    if exe is not None:
        benchmark(lambda: exe(W, U, H0, XS).numpy())


@pytest.mark.benchmark(group="rnn-forward")
def test_rnn_forward_jax_jit(benchmark):
    fn = jax.jit(THEIRS)
    fn(W, U, H0, XS).block_until_ready()
    benchmark(lambda: fn(W, U, H0, XS).block_until_ready())


@pytest.mark.benchmark(group="rnn-gradient")
@pytest.mark.parametrize("backend_name", ["c", "xla"])
def test_rnn_gradient(benchmark, backend_name):
    exe = _compiled(backend_name, _ours_gradient, W, U, H0, XS)
    if exe is not None:
        benchmark(lambda: [g.numpy() for g in exe(W, U, H0, XS)])


@pytest.mark.benchmark(group="rnn-gradient")
def test_rnn_gradient_jax_jit(benchmark):
    fn = jax.jit(jax.grad(THEIRS, argnums=(0, 1)))
    jax.block_until_ready(fn(W, U, H0, XS))
    benchmark(lambda: jax.block_until_ready(fn(W, U, H0, XS)))


@pytest.mark.benchmark(group="empty-fori-loop")
@pytest.mark.parametrize("backend_name", ["c", "xla"])
def test_empty_fori_loop(benchmark, backend_name):
    """EMPTY_LOOP_TRIPS iterations of a loop that only counts (the carry is returned as
    is); the per-iteration cost is the median divided by EMPTY_LOOP_TRIPS."""
    def empty(x):
        return G.fori_loop(0, EMPTY_LOOP_TRIPS, lambda i, c: c, x)
    x = np.float32(1)
    exe = _compiled(backend_name, empty, x)
    if exe is not None:
        benchmark(lambda: exe(x).numpy())
        benchmark.extra_info["ns_per_iteration"] = \
            benchmark.stats.stats.median / EMPTY_LOOP_TRIPS * 1e9
