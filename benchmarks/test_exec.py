"""Exec overhead against bare jax.jit, and the cost of tracing a new signature.

    make bench   # or: .venv/bin/python -m pytest benchmarks/test_exec.py --benchmark-only

Target (issue 2): an Exec call on a tiny graph within 1.5x of calling the
equivalent jax.jit function directly. Compare the medians of the `call`
group; `benchmarks/README.md` records the measured ratio.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G

X = np.ones((4, 3), np.float32)
W = np.ones((3, 2), np.float32)


def tiny(x, w):
    return G.reduce_sum(G.tanh(x @ w), axes=[1])


@pytest.mark.benchmark(group="call")
def test_call_exec_xla(benchmark):
    exe = G.Exec(mlf.backends.new("xla"), tiny)
    exe(X, W)
    benchmark(exe, X, W)


@pytest.mark.benchmark(group="call")
def test_call_jax_jit(benchmark):
    fn = jax.jit(lambda x, w: jnp.sum(jnp.tanh(x @ w), axis=1))
    fn(X, W).block_until_ready()
    benchmark(fn, X, W)


@pytest.mark.benchmark(group="new-signature")
def test_trace_and_compile_new_signature(benchmark):
    backend = mlf.backends.new("xla")
    sizes = itertools.count(5)

    def new_signature():
        x = np.ones((next(sizes), 3), np.float32)
        G.Exec(backend, tiny)(x, W).numpy()

    benchmark.pedantic(new_signature, rounds=10, iterations=1)


@pytest.mark.benchmark(group="new-signature")
def test_jax_jit_new_signature(benchmark):
    sizes = itertools.count(5)

    def new_signature():
        x = np.ones((next(sizes), 3), np.float32)
        jax.jit(lambda x, w: jnp.sum(jnp.tanh(x @ w), axis=1))(x, W).block_until_ready()

    benchmark.pedantic(new_signature, rounds=10, iterations=1)
