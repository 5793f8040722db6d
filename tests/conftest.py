"""Shared fixtures: every backend-dependent test runs once per registered backend."""
from __future__ import annotations

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G


@pytest.fixture(params=mlf.backends.names())
def backend(request):
    """Each registered backend ("xla", "c", ...) in turn."""
    return mlf.backends.new(request.param)


@pytest.fixture
def run(backend):
    """run(fn, *arrays) -> NumPy result(s) of fn traced and executed on `backend`."""
    def call(fn, *args):
        out = G.Exec(backend, fn)(*args)
        return mlf.core.pytree.tree_map(lambda t: t.numpy(), out)
    return call


@pytest.fixture
def rng():
    return np.random.default_rng(0)
