"""Differential tests of random programs and of gradients against jax, on every backend.

Seeded random programs chain several ops (elementwise, broadcasts, transposes, slices,
pads, reductions broadcast back, selects, casts through the half types), so the c
backend fuses them into loop nests, row-wise kernels and epilogues; the same program is
built with jax.lax alongside. Programs of exact ops (no transcendental) compare bitwise
in float16 and bfloat16 (both sides round after every op);
programs with transcendental ops compare within a tolerance (float32 and float64
exact programs within 4 ulps: the c backend contracts multiply-adds). Gradients of primitives
and composites, at random points and at their kinks (abs and relu at 0, max ties,
clip at its bounds), go against jax.grad.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from differential import BF16, FLOATS, Case, Check, run_cases
from jax import lax

from mlframework import graph as G

SHAPE = (3, 4, 5)
CONSTANTS = (0.25, 0.5, 1.5, -2.0, 3.0)  # no 0 or 1: XLA folds x + 0 and x * 1 away


class _Ours:
    """The ops a program step uses, on graph nodes."""

    max, min, where, abs, tanh, exp, sin, sqrt = (G.max, G.min, G.where, G.abs, G.tanh, G.exp,
                                                  G.sin, G.sqrt)
    log1p, sigmoid, transpose, reverse, slice = G.log1p, G.sigmoid, G.transpose, G.reverse, G.slice

    @staticmethod
    def const(c, like):
        return c  # a Python float: weakly typed, takes the node's dtype

    @staticmethod
    def softmax(x):
        return G.softmax(x, -1)

    @staticmethod
    def reduce(kind, x, axis):
        return (G.reduce_max if kind == "max" else G.reduce_sum)(x, axis, keepdims=True)

    @staticmethod
    def pad(x, value, config):
        return G.pad(x, config, value)

    @staticmethod
    def concatenate(parts, axis):
        return G.concatenate(parts, axis)

    @staticmethod
    def convert(x, dtype):
        return G.convert(x, dtype)


class _Jax:
    """The same ops in jax."""

    max, min, where, abs, tanh, exp, sin, sqrt = (lax.max, lax.min, jnp.where, jnp.abs,
                                                  jnp.tanh, jnp.exp, jnp.sin, jnp.sqrt)
    log1p, sigmoid, transpose, reverse, slice = (jnp.log1p, jax.nn.sigmoid, lax.transpose,
                                                 lax.rev, lax.slice)

    @staticmethod
    def const(c, like):
        return np.asarray(c, like.dtype)

    @staticmethod
    def softmax(x):
        return jax.nn.softmax(x, -1)

    @staticmethod
    def reduce(kind, x, axis):
        return (jnp.max if kind == "max" else jnp.sum)(x, axis, keepdims=True)

    @staticmethod
    def pad(x, value, config):
        return lax.pad(x, np.asarray(value, x.dtype), config)

    @staticmethod
    def concatenate(parts, axis):
        return lax.concatenate(parts, axis)

    @staticmethod
    def convert(x, dtype):
        return x.astype(dtype)


def _exact_step(rng, L, x, others):
    """One random exact op (no rounding other than the dtype's own) on x of SHAPE."""
    k = int(rng.integers(11))
    c = L.const(float(rng.choice(CONSTANTS)), x)
    o = others[int(rng.integers(len(others)))]
    if k == 0:
        return x + o
    if k == 1:
        return x * c
    if k == 2:
        return x - o * c
    if k == 3:
        return L.max(x, o)
    if k == 4:
        return L.min(x, -o)
    if k == 5:
        return L.where(x > o, x, o * c)
    if k == 6:  # a reduction broadcast back over its rows: a row-wise kernel
        return x - L.reduce("max", x, 2)
    if k == 7:  # transposed and reversed reads of a fused chain
        return L.transpose(L.reverse(L.transpose(x, (2, 1, 0)), (0,)), (2, 1, 0))
    if k == 8:
        return L.pad(L.slice(x, (0, 1, 0), (3, 4, 5)), 1.5, [(0, 0, 0), (1, 0, 0), (0, 0, 0)])
    if k == 9:  # (a sum's order is not exact)
        return x + L.reduce("max", o, 0)
    return L.concatenate([L.slice(x, (0, 0, 0), (3, 2, 5)), L.slice(o, (0, 2, 0), (3, 4, 5))], 1)


def _smooth_step(rng, L, x, others):
    """One random op that may be transcendental (compared within a tolerance)."""
    k = int(rng.integers(7))
    o = others[int(rng.integers(len(others)))]
    if k == 0:
        return L.tanh(x) + o
    if k == 1:
        return L.exp(L.tanh(x)) * o
    if k == 2:
        return L.sigmoid(x) - o
    if k == 3:
        return L.softmax(x) * L.const(4.0, x)
    if k == 4:
        return L.log1p(L.abs(x)) + L.sin(o)
    if k == 5:
        return L.sqrt(x * x + L.const(0.5, x)) - L.reduce("sum", o, 0)
    return _exact_step(rng, L, x, others)


def _chain(seed: int, step, L, a, b, c, dtype):
    """The seeded chain of 6 steps over inputs a, b, c, with casts through other float
    dtypes mid-chain (the same draws on both sides)."""
    rng = np.random.default_rng(seed)
    x = a
    for _ in range(6):
        x = step(rng, L, x, [b, c])
        if rng.random() < 0.3:
            target = FLOATS[int(rng.integers(len(FLOATS)))]
            x = L.convert(L.convert(x, target), dtype)
    return x


def _inputs(rng, dtype):
    return tuple(rng.uniform(-3, 3, SHAPE).astype(dtype) for _ in range(3))


def _program_check(dtype, smooth: bool):
    if not smooth:  # float32/float64: DIFFERENCES["fused multiply-add"]
        return Check() if np.dtype(dtype).itemsize == 2 else Check("ulp", 4)
    rtol = {np.dtype(np.float16): 3e-2, BF16: 2e-1, np.dtype(np.float32): 1e-4,
            np.dtype(np.float64): 1e-10}[np.dtype(dtype)]
    return Check("close", rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", FLOATS, ids=[d.name for d in FLOATS])
def test_random_programs_match_xla(backend_name, dtype):
    rng = np.random.default_rng(14)
    cases = []
    for seed in range(1000, 1012):
        smooth = seed % 2 == 1
        step = _smooth_step if smooth else _exact_step
        cases.append(Case(f"program {seed} ({'smooth' if smooth else 'exact'})",
                          lambda a, b, c, s=seed, f=step: _chain(s, f, _Ours, a, b, c, dtype),
                          lambda a, b, c, s=seed, f=step: _chain(s, f, _Jax, a, b, c, dtype),
                          _inputs(rng, dtype), _program_check(dtype, smooth)))
    run_cases(backend_name, cases, f"programs_{dtype.name}")


# ---- gradients --------------------------------------------------------------------

def _kinks(dtype):
    """Points where a derivative is one-sided: 0 and -0.0 (abs, relu), clip's bounds."""
    return np.array([0.0, -0.0, 1.0, -1.0, 2.0, -1.5, 0.5, 3.0], dtype)


# name: (ours, jax's, input sampler)
GRADS = {
    "abs": (G.abs, jnp.abs), "relu": (G.relu, jax.nn.relu),
    "clip": (lambda x: G.clip(x, -1.0, 2.0), lambda x: jnp.clip(x, -1.0, 2.0)),
    "max with 0": (lambda x: G.max(x, 0.0), lambda x: jnp.maximum(x, 0.0)),
    "min ties": (lambda x: G.min(x, G.abs(x)), lambda x: jnp.minimum(x, jnp.abs(x))),
    "leaky_relu": (lambda x: G.leaky_relu(x, 0.1), lambda x: jax.nn.leaky_relu(x, 0.1)),
    "tanh": (G.tanh, jnp.tanh), "exp": (G.exp, jnp.exp), "sin": (G.sin, jnp.sin),
    "erf": (G.erf, lax.erf), "erfc": (G.erfc, lax.erfc),
    "gelu": (G.gelu, lambda x: jax.nn.gelu(x, approximate=False)),
    "gelu_tanh": (lambda x: G.gelu(x, True), lambda x: jax.nn.gelu(x, approximate=True)),
    "silu": (G.silu, jax.nn.silu), "softplus": (G.softplus, jax.nn.softplus),
    "sigmoid": (G.sigmoid, jax.nn.sigmoid),
    "softmax": (lambda x: G.softmax(x, -1), lambda x: jax.nn.softmax(x, -1)),
    "log_softmax": (lambda x: G.log_softmax(x, -1), lambda x: jax.nn.log_softmax(x, -1)),
    "logsumexp": (lambda x: G.logsumexp(x, 0), lambda x: jax.nn.logsumexp(x, 0)),
    "variance": (lambda x: G.variance(x, -1), lambda x: jnp.var(x, -1)),
    "power 3": (lambda x: G.power(x, 3), lambda x: jnp.power(x, 3)),
    "power 0": (lambda x: G.power(x, 0), lambda x: jnp.power(x, 0)),
    "reduce_max ties": (lambda x: G.reduce_max(G.abs(x), -1), lambda x: jnp.max(jnp.abs(x), -1)),
    "sort": (lambda x: G.sort(x, -1), lambda x: jnp.sort(x, -1)),
    "cumsum": (lambda x: G.cumsum(x, 1), lambda x: jnp.cumsum(x, 1)),
    "einsum": (lambda x: G.einsum("ij,kj->ik", x, x * 0.5),
               lambda x: jnp.einsum("ij,kj->ik", x, x * 0.5)),
}


def _grad_case(name, dtype, x, w):
    ours_fn, ref_fn = GRADS[name]

    def ours(t, weights):
        y = ours_fn(t)
        return G.grad(G.reduce_sum(y * G.broadcast_to(weights, y.shape)), [t])[0]

    def ref(t, weights):
        return jax.grad(lambda u: jnp.sum(ref_fn(u) * jnp.broadcast_to(weights, ref_fn(u).shape)
                                          ))(t)

    eps = float(jnp.finfo(dtype).eps)
    return Case(f"grad {name}({dtype}{list(x.shape)})", ours, ref, (x, w),
                Check("close", rtol=64 * eps, atol=64 * eps))


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)],
                         ids=["float32", "float64"])
def test_gradients_match_jax_grad(backend_name, dtype):
    rng = np.random.default_rng(15)
    cases = []
    for name in GRADS:
        x = np.concatenate([_kinks(dtype), rng.uniform(-2.5, 2.5, 8).astype(dtype)]).reshape(2, 8)
        out_shape = np.shape(jax.eval_shape(GRADS[name][1], jax.ShapeDtypeStruct(x.shape, dtype)))
        w = rng.uniform(0.5, 1.5, out_shape).astype(dtype)
        cases.append(_grad_case(name, dtype, x, w))
    run_cases(backend_name, cases, f"grads_{dtype.name}")
