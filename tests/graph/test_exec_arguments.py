"""G.Exec checks its arguments at construction, naming the fix."""
from __future__ import annotations

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G


def double(x):
    return 2 * x


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((double, "xla"), {}, TypeError, "requires a callable fn, got str"),
    ((None, None), {}, TypeError, "requires a callable fn, got NoneType"),
    (("xla", double), {}, TypeError, "requires a backend from mlf.backends.new\\(\\)"),
    ((None, double), {"donate": 0}, TypeError, "a tuple of argument positions, got 0"),
    ((None, double), {"donate": (-1,)}, TypeError, "argument positions"),
    ((None, double), {"max_cache_size": 0}, ValueError, "an int >= 1, got 0"),
])
def test_exec_rejects(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        G.Exec(*args, **kwargs)


def test_swapped_backend_and_function():
    backend = mlf.backends.new("xla")
    with pytest.raises(TypeError, match="got XlaBackend"):
        G.Exec(double, backend)


def test_none_backend_traces_only():
    graph = G.Exec(None, double).graph(np.ones(3, np.float32))
    assert graph.outputs[0].shape == (3,)


def test_none_backend_refuses_to_run():
    with pytest.raises(TypeError, match="backend None, which traces only"):
        G.Exec(None, double)(np.ones(3, np.float32))
