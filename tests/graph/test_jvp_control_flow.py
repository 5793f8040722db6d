"""Forward mode through control flow (cond, switch, scan, fori_loop and while_loop,
which reverse mode refuses) against jax.jvp, on the models of `test_control_flow.py`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_control_flow import (JAX_CUMPROD, JAX_RNN, OURS_CUMPROD, OURS_RNN, OursNp, _branchy,
                               _nested, _newton, _rnn_args, _switched)
from test_jvpcheck import check_jvp

from mlframework import graph as G


jvps = check_jvp


def test_scan_rnn(backend):
    jvps(backend, OURS_RNN, _rnn_args(np.float64, steps=12), JAX_RNN, fd=True)


def test_reverse_scan_with_an_integer_carry_and_no_xs(backend, rng):
    def model(np_, scan):
        def fn(x, w):
            def step(c, _):
                k, v = c
                return (k + 1, np_.sin(v * w) + x), v * v
            return scan(step, (np.int32(0), x), None, length=4, reverse=True)
        return fn
    jvps(backend, model(OursNp, G.scan), [rng.standard_normal(3), rng.standard_normal(3)],
         model(jnp, lambda *a, **k: lax.scan(*a, **k)), fd=True)


def test_while_loop_newton(backend):
    # Forward mode goes through while_loop, as in JAX (reverse mode cannot).
    a = np.array([0.25, 2.0, 9.0, 1e4], np.float64)
    jvps(backend, _newton(OursNp, G.while_loop), [a], _newton(jnp, lax.while_loop),
         rtol=1e-12)


def test_fori_loop_cumulative_product(backend):
    x = np.array([1.5, -2.0, 0.5, 3.0, 1.25], np.float64)
    jvps(backend, OURS_CUMPROD, [x], JAX_CUMPROD, fd=True)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_with_pytrees_and_captures(backend, sign):
    rng = np.random.default_rng(1)
    x, y = sign * np.abs(rng.standard_normal(4)), rng.standard_normal(4)
    jvps(backend, _branchy(OursNp, G.cond), [x, y], _branchy(jnp, lax.cond), fd=True)


@pytest.mark.parametrize("index", [-3, 1, 7])
def test_switch(backend, index):
    rng = np.random.default_rng(2)
    args = [np.int32(index), rng.standard_normal(3), rng.standard_normal(3)]
    jvps(backend, _switched(G.switch, G.exp), args, _switched(lax.switch, jnp.exp), fd=True)


def test_cond_inside_scan(backend):
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(2), rng.standard_normal(9), rng.standard_normal(2)]
    jvps(backend, _nested(G.scan, G.cond, G.sin, G.cos), args,
         _nested(lax.scan, lax.cond, jnp.sin, jnp.cos), fd=True)
