"""Context and the layers check their obvious arguments at the call."""
from __future__ import annotations

import numpy as np
import pytest

from mlframework import Shape
from mlframework import graph as G
from mlframework.ml import Context, layers


@pytest.mark.parametrize("seed", [-1, 0.5, "0", True])
def test_context_seed(seed):
    with pytest.raises(TypeError, match="non-negative int seed"):
        Context(seed)


def _traced(fn, shape=(2, 8), dtype=np.float32):
    """Runs fn(ctx, x) on a parameter of `shape` inside a graph being traced."""
    with G.tracing(G.Graph()):
        return fn(Context(0), G.parameter(Shape(np.dtype(dtype), shape)))


@pytest.mark.parametrize("call, error, message", [
    (lambda ctx, x: layers.dense(x, ctx, 4), TypeError, "requires a Context first, got Node"),
    (lambda ctx, x: layers.dense(ctx, np.ones((2, 8)), 4), TypeError,
     "x as a graph node.*got ndarray"),
    (lambda ctx, x: layers.dense(ctx, x, 0), ValueError, "units >= 1, got 0"),
    (lambda ctx, x: layers.dense(ctx, x, "4"), TypeError, "units as a positive int, got '4'"),
    (lambda ctx, x: layers.dense(ctx, G.reduce_sum(x, [0, 1]), 4), ValueError, "rank >= 1"),
    (lambda ctx, x: layers.conv(ctx, G.reshape(x, (2, 2, 4)), 0, 3), ValueError,
     "filters >= 1"),
    (lambda ctx, x: layers.conv(ctx, G.reshape(x, (2, 2, 4)), 4, 3, groups=1.5), TypeError,
     "groups as a positive int"),
    (lambda ctx, x: layers.embedding(ctx, G.convert(x, "int32"), -3, 4), ValueError,
     "vocab_size >= 1"),
    (lambda ctx, x: layers.layer_norm(ctx, x, epsilon=-1e-5), ValueError, "epsilon >= 0.0"),
    (lambda ctx, x: layers.rms_norm(ctx, x, epsilon="tiny"), TypeError, "epsilon as a number"),
    (lambda ctx, x: layers.batch_norm(ctx, x, momentum=1.5), ValueError,
     "momentum in \\[0.0, 1.0\\], got 1.5"),
    (lambda ctx, x: layers.batch_norm(x, ctx), TypeError, "requires a Context first"),
    (lambda ctx, x: layers.max_pool(x, 2), ValueError, "max_pool requires x of rank >= 3"),
    (lambda ctx, x: layers.avg_pool(G.reshape(x, (1, 2, 8)), 0), ValueError,
     "avg_pool requires window >= 1, got 0"),
    (lambda ctx, x: layers.max_pool(G.reshape(x, (1, 2, 8)), (2,), strides=(1.5,)), TypeError,
     "strides as a positive int"),
])
def test_layers_reject(call, error, message):
    with pytest.raises(error, match=message):
        _traced(call)


def test_valid_arguments_still_build():
    y = _traced(lambda ctx, x: layers.dense(ctx, x, np.int64(4)))
    assert y.shape == (2, 4)
    assert _traced(lambda ctx, x: layers.max_pool(G.reshape(x, (1, 2, 8)), 2)).shape == (1, 2, 4)
    assert _traced(lambda ctx, x: layers.layer_norm(ctx, x, epsilon=0)).shape == (2, 8)
