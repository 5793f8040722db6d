"""Convolutions: `conv` (N-d), `conv1d`, `conv2d`, over channels-first inputs.

Inputs are [batch, channels, *spatial] (as PyTorch and `G.conv_general`),
or [batch, *spatial, channels] with `channels_last=True`. Kernels are stored
as [out, in / groups, *window]; their initializer sees the Keras layout
[*window, in / groups, out], so Glorot and He fans are the usual ones.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlframework import graph as G
from mlframework.core import symbolic
from mlframework.core.symbolic import Dim, DimLike
from mlframework.graph import Node
from mlframework.ml import initializers as inits
from mlframework.ml.context import Context
from mlframework.ml.initializers import Initializer
from mlframework.ml.layers.activations import activation as _activation
from mlframework.ml.layers.arguments import check_context, check_node, check_size


def _tuple(value, n: int, what: str) -> tuple[int, ...]:
    out = (value,) * n if isinstance(value, int) else tuple(value)
    if len(out) != n:
        raise ValueError(f"conv requires {what} of {n} ints for {n}-d inputs, got {value!r}")
    return out


def same_padding(sizes: Sequence[int], window: Sequence[int], strides: Sequence[int],
                 dilation: Sequence[int]) -> list[tuple[int, int]]:
    """TensorFlow "SAME" padding: output size ceil(size / stride), the odd pixel at the end."""
    pads = []
    for n, k, s, d in zip(sizes, window, strides, dilation):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def padding_pairs(padding: str | int | Sequence[int | tuple[int, int]],
                  sizes: Sequence[DimLike], window: Sequence[int], strides: Sequence[int],
                  dilation: Sequence[int]) -> list[tuple[int, int]]:
    """"same", "valid", one int per side for all axes, or explicit (low, high) pairs.

    Raises:
        SymbolicError: "same" padding with a stride > 1 over a symbolic spatial size (the
            padding would depend on the size).
    """
    if isinstance(padding, str):
        if padding.lower() == "same":
            return same_padding([1 if s == 1 and isinstance(n, Dim) else
                                 symbolic.static(n, f"'same' padding with stride {s} over a "
                                                    f"spatial size") for n, s in
                                 zip(sizes, strides)], window, strides, dilation)
        if padding.lower() == "valid":
            return [(0, 0)] * len(sizes)
        raise ValueError(f"padding requires 'same', 'valid', an int or pairs, got {padding!r}")
    if isinstance(padding, int):
        return [(padding, padding)] * len(sizes)
    pairs = []
    for p in padding:
        low, high = (p, p) if isinstance(p, int) else p
        pairs.append((low, high))
    return pairs


def _kernel_init(init):
    """Runs a Keras-layout initializer and transposes to [out, in, *window]."""
    def run(rng, shape, dtype):
        out, cin, *window = shape
        value = init(rng, (*window, cin, out), dtype)
        rank = len(window)
        return np.ascontiguousarray(np.transpose(value, (rank + 1, rank, *range(rank))))
    return run


def conv(ctx: Context, x: Node, filters: int, kernel_size: int | Sequence[int], *,
         strides: int | Sequence[int] = 1,
         padding: str | int | Sequence[int | tuple[int, int]] = "same",
         dilation: int | Sequence[int] = 1, groups: int = 1, use_bias: bool = True,
         activation: str | None = None, channels_last: bool = False,
         kernel_initializer: Initializer | None = None,
         bias_initializer: Initializer | None = None) -> Node:
    """N-d convolution layer; N = x.ndim - 2.

    Creates `conv/weights` [filters, in / groups, *kernel_size] and
    `conv/biases` [filters]. Output [batch, filters, *spatial'] (or
    channels-last if the input is).

    Raises:
        TypeError: ctx is not a Context, x not a node, filters or groups not ints.
        ValueError: x of rank < 3, filters or groups < 1, or not dividing the channels.
    """
    check_context("conv", ctx)
    check_node("conv", "x", x)
    filters, groups = check_size("conv", "filters", filters), check_size("conv", "groups", groups)
    n = x.ndim - 2
    if n < 1:
        raise ValueError(f"conv requires [batch, channels, *spatial] inputs, got {x.shape}")
    if channels_last:
        x = G.transpose(x, (0, n + 1, *range(1, n + 1)))
    window = _tuple(kernel_size, n, "kernel_size")
    strides, dilation = _tuple(strides, n, "strides"), _tuple(dilation, n, "dilation")
    cin = symbolic.static(x.shape[1], "conv's input channels")
    if cin % groups or filters % groups:
        raise ValueError(f"conv requires channels ({cin}) and filters ({filters}) divisible by "
                         f"groups ({groups})")
    ctx = ctx / "conv"
    w = ctx.node("weights", (filters, cin // groups, *window), x.dtype,
                 _kernel_init(kernel_initializer or inits.glorot_uniform()))
    pads = padding_pairs(padding, x.shape[2:], window, strides, dilation)
    y = G.conv_general(x, w, window_strides=strides, padding=pads, rhs_dilation=dilation,
                       feature_group_count=groups)
    if use_bias:
        b = ctx.node("biases", (filters,), x.dtype, bias_initializer or inits.zeros())
        y = y + G.reshape(b, (filters,) + (1,) * n)
    y = _activation(activation, y)
    if channels_last:
        y = G.transpose(y, (0, *range(2, n + 2), 1))
    return y


def conv1d(ctx: Context, x: Node, filters: int, kernel_size: int | Sequence[int],
           **kwargs: Any) -> Node:
    """1-d convolution: x [batch, channels, length]."""
    if x.ndim != 3:
        raise ValueError(f"conv1d requires a rank-3 input, got {x.shape}")
    return conv(ctx, x, filters, kernel_size, **kwargs)


def conv2d(ctx: Context, x: Node, filters: int, kernel_size: int | Sequence[int],
           **kwargs: Any) -> Node:
    """2-d convolution: x [batch, channels, height, width]."""
    if x.ndim != 4:
        raise ValueError(f"conv2d requires a rank-4 input, got {x.shape}")
    return conv(ctx, x, filters, kernel_size, **kwargs)


__all__ = ["conv", "conv1d", "conv2d", "padding_pairs", "same_padding"]
