"""Indexing ops (gather, scatter, dynamic slices) with a symbolic dimension on the c
backend: one compiled module, checked against the xla backend at sizes 1, 7 and the
maximum, and gradients through them."""
from __future__ import annotations

import numpy as np
import pytest

from mlframework import graph as G
from symbolic_support import compare_with_xla

RNG = np.random.default_rng(1)
TABLE = RNG.normal(size=(10, 4)).astype(np.float32)


def _ids(n, rows=8, high=10):  # some out of range: XLA clamps (gather) or drops (scatter)
    return RNG.integers(-2, high + 2, size=(n, rows)).astype(np.int32)


def test_embedding_gather():
    compare_with_xla(lambda ids: G.take(TABLE, ids, axis=0), {"ids": "N, 8"}, lambda n: [_ids(n)])


def test_gather_rows_of_a_symbolic_operand():
    def fn(x, i):
        return G.take(x, i, axis=0)
    compare_with_xla(fn, {"x": "N, 3"},
             lambda n: [RNG.normal(size=(n, 3)).astype(np.float32),
                        np.array([0, n - 1, n + 3, -1], np.int32)])


@pytest.mark.parametrize("op", ["scatter_add", "scatter_max", "scatter_min", "scatter_mul",
                                "scatter_set"])
def test_scatter_into_a_table(op):
    def fn(ids, upd):
        idx = G.reshape(ids, (ids.shape[0], 1))
        return getattr(G, op)(TABLE, idx, upd, update_window_dims=(1,),
                              inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,))
    def make(n):  # unique ids (set overwrites), some out of range at both ends: dropped
        return [np.arange(n, dtype=np.int32) - 3, RNG.normal(size=(n, 4)).astype(np.float32)]
    compare_with_xla(fn, {"ids": "N", "upd": "N, 4"}, make)


def test_scatter_into_a_symbolic_operand():
    def fn(x, i, u):
        return G.scatter_add(x, i, u, update_window_dims=(1,), inserted_window_dims=(0,),
                             scatter_dims_to_operand_dims=(0,))
    compare_with_xla(fn, {"x": "N, 3"},
             lambda n: [RNG.normal(size=(n, 3)).astype(np.float32),
                        np.array([[0], [n - 1], [n], [0]], np.int32),
                        RNG.normal(size=(4, 3)).astype(np.float32)])


def test_dynamic_slice_and_update_with_clamped_starts():
    def fn(x, s):
        piece = G.dynamic_slice(x, [s, 0], (1, 5))
        return piece, G.dynamic_update_slice(x, piece * 2.0, [s - 1, 0])
    compare_with_xla(fn, {"x": "N, 5"},
             lambda n: [RNG.normal(size=(n, 5)).astype(np.float32), np.int32(n + 2)])


def _x(n, cols=3):  # ties and a NaN-free mix of signs
    return RNG.integers(-3, 4, size=(n, cols)).astype(np.float32) * 0.5


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_along_either_axis(op, axis):
    compare_with_xla(lambda x: getattr(G, op)(x, axis=axis), {"x": "N, 3"}, lambda n: [_x(n)])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"])
def test_cumulative_along_the_symbolic_axis(op, reverse):
    compare_with_xla(lambda x: getattr(G, op)(x, axis=0, reverse=reverse), {"x": "N, 3"},
             lambda n: [_x(n)])


def test_cumulative_across_a_symbolic_axis():
    compare_with_xla(lambda x: G.cumsum(x, axis=1, reverse=True), {"x": "N, 3"}, lambda n: [_x(n)])


@pytest.mark.parametrize("descending", [False, True])
def test_sort_and_argsort_along_the_symbolic_axis(descending):
    def fn(x):
        return (G.sort(x, axis=0, descending=descending),
                G.argsort(x, axis=0, descending=descending))
    compare_with_xla(fn, {"x": "N, 3"}, lambda n: [_x(n)])


def test_sort_rows_of_a_symbolic_batch():
    compare_with_xla(lambda x: G.sort(x, axis=1), {"x": "N, 3"}, lambda n: [_x(n)])


def test_rng_bits_of_a_symbolic_shape():
    key = np.array([0, 42], np.uint32)
    compare_with_xla(lambda x, k: G.rng_bits(k, (x.shape[0], 5)), {"x": "N, 3"},
             lambda n: [_x(n), key])


def _grads(loss):
    def fn(x):
        return G.grad(loss(x), x)[0]
    return fn


@pytest.mark.parametrize("loss", [
    lambda x: G.reduce_sum(G.take(x, np.array([0, 2, 2, -1], np.int32), axis=0) * 1.5),
    lambda x: G.reduce_sum(G.cummax(x, axis=0) * x),
    lambda x: G.reduce_sum(G.dynamic_slice(x, [np.int32(3), np.int32(0)], (1, 3)) ** 2),
], ids=["gather", "cummax", "dynamic_slice"])
def test_gradients_with_a_symbolic_batch(loss):
    compare_with_xla(_grads(loss), {"x": "N, 3"},
                     lambda n: [RNG.normal(size=(n, 3)).astype(np.float32)])
