"""Batch, layer and RMS normalization."""
from __future__ import annotations

from collections.abc import Sequence

from mlframework import graph as G
from mlframework.core import symbolic
from mlframework.graph import Node
from mlframework.ml import initializers as inits
from mlframework.ml.context import Context
from mlframework.ml.layers.arguments import check_context, check_node, check_number


def _axes(axes, ndim: int) -> list[int]:
    axes = [axes] if isinstance(axes, int) else list(axes)
    return sorted(a % ndim for a in axes)


def batch_norm(ctx: Context, x: Node, *, axis: int = 1, momentum: float = 0.99,
               epsilon: float = 1e-3, center: bool = True, scale: bool = True) -> Node:
    """Batch normalization over every axis but the feature `axis`.

    Training graphs (ctx.training) normalize with the batch mean and (biased)
    variance and update `batch_norm/moving_mean` and `moving_variance` as
    moving = momentum * moving + (1 - momentum) * batch; inference graphs
    use the moving statistics. Learns `gamma` (ones) and `beta` (zeros).

    Raises:
        TypeError: ctx is not a Context or x not a node.
        ValueError: x is a scalar, momentum outside [0, 1] or epsilon < 0.
    """
    check_context("batch_norm", ctx)
    check_node("batch_norm", "x", x, min_rank=1)
    momentum = check_number("batch_norm", "momentum", momentum, 0.0, 1.0)
    epsilon = check_number("batch_norm", "epsilon", epsilon, 0.0)
    ctx = ctx / "batch_norm"
    axis %= x.ndim
    features = symbolic.static(x.shape[axis], f"batch_norm's features x.shape[{axis}]")
    reduce = [a for a in range(x.ndim) if a != axis]
    bshape = [features if a == axis else 1 for a in range(x.ndim)]
    moving_mean = ctx.node("moving_mean", (features,), x.dtype, inits.zeros(),
                           trainable=False)
    moving_var = ctx.node("moving_variance", (features,), x.dtype, inits.ones(),
                          trainable=False)
    if ctx.training:
        mean = G.mean(x, reduce, keepdims=True)
        var = G.mean(G.square(x - mean), reduce, keepdims=True)
        batch_mean = G.stop_gradient(G.reshape(mean, (features,)))
        batch_var = G.stop_gradient(G.reshape(var, (features,)))
        ctx.assign("moving_mean", moving_mean * momentum + batch_mean * (1 - momentum))
        ctx.assign("moving_variance", moving_var * momentum + batch_var * (1 - momentum))
    else:
        mean, var = G.reshape(moving_mean, bshape), G.reshape(moving_var, bshape)
    y = (x - mean) * G.rsqrt(var + epsilon)
    if scale:
        y = y * G.reshape(ctx.node("gamma", (features,), x.dtype, inits.ones()), bshape)
    if center:
        y = y + G.reshape(ctx.node("beta", (features,), x.dtype, inits.zeros()), bshape)
    return y


def layer_norm(ctx: Context, x: Node, *, axes: int | Sequence[int] = -1, epsilon: float = 1e-5,
               center: bool = True, scale: bool = True) -> Node:
    """(x - mean) / sqrt(var + epsilon) over `axes`, then `gamma`, `beta` of those axes' shape.

    Raises:
        TypeError: ctx is not a Context or x not a node.
        ValueError: x is a scalar or epsilon < 0.
    """
    check_context("layer_norm", ctx)
    check_node("layer_norm", "x", x, min_rank=1)
    epsilon = check_number("layer_norm", "epsilon", epsilon, 0.0)
    ctx = ctx / "layer_norm"
    axes = _axes(axes, x.ndim)
    mean = G.mean(x, axes, keepdims=True)
    y = (x - mean) * G.rsqrt(G.mean(G.square(x - mean), axes, keepdims=True) + epsilon)
    return _affine(ctx, y, axes, center, scale)


def rms_norm(ctx: Context, x: Node, *, axes: int | Sequence[int] = -1, epsilon: float = 1e-6,
             scale: bool = True) -> Node:
    """x / sqrt(mean(x ** 2) + epsilon) over `axes`, then `gamma`.

    Raises:
        TypeError: ctx is not a Context or x not a node.
        ValueError: x is a scalar or epsilon < 0.
    """
    check_context("rms_norm", ctx)
    check_node("rms_norm", "x", x, min_rank=1)
    epsilon = check_number("rms_norm", "epsilon", epsilon, 0.0)
    ctx = ctx / "rms_norm"
    axes = _axes(axes, x.ndim)
    y = x * G.rsqrt(G.mean(G.square(x), axes, keepdims=True) + epsilon)
    return _affine(ctx, y, axes, False, scale)


def _affine(ctx, y, axes, center, scale):
    shape = tuple(symbolic.static(y.shape[a], f"the scale and offset axis {a} of the normalized x")
                  for a in axes)
    bshape = [shape[axes.index(a)] if a in axes else 1 for a in range(y.ndim)]
    if scale:
        y = y * G.reshape(ctx.node("gamma", shape, y.dtype, inits.ones()), bshape)
    if center:
        y = y + G.reshape(ctx.node("beta", shape, y.dtype, inits.zeros()), bshape)
    return y


__all__ = ["batch_norm", "layer_norm", "rms_norm"]
