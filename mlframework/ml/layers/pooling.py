"""Pooling over the spatial axes of [batch, channels, *spatial] inputs
(or [batch, *spatial, channels] with `channels_last=True`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlframework import graph as G
from mlframework.graph import Node
from mlframework.ml.layers.arguments import check_node, check_sizes
from mlframework.ml.layers.conv import _tuple, padding_pairs


def _windows(layer: str, x: Node, window: int | Sequence[int],
             strides: int | Sequence[int] | None,
             padding: str | int | Sequence[int | tuple[int, int]], channels_last: bool
             ) -> tuple[tuple[int, ...], tuple[int, ...], list[tuple[int, int]]]:
    check_node(layer, "x", x, min_rank=3)
    n = x.ndim - 2
    sizes = _tuple(check_sizes(layer, "window", window), n, "window")
    steps = sizes if strides is None else \
        _tuple(check_sizes(layer, "strides", strides), n, "strides")
    spatial = x.shape[1:-1] if channels_last else x.shape[2:]
    pads = padding_pairs(padding, spatial, sizes, steps, (1,) * n)
    if channels_last:
        return (1, *sizes, 1), (1, *steps, 1), [(0, 0), *pads, (0, 0)]
    return (1, 1, *sizes), (1, 1, *steps), [(0, 0), (0, 0), *pads]


def max_pool(x: Node, window: int | Sequence[int], strides: int | Sequence[int] | None = None,
             padding: str | int | Sequence[int | tuple[int, int]] = "valid",
             channels_last: bool = False) -> Node:
    """Maximum over windows (strides default to the window; padded cells never win)."""
    dims, strides, pads = _windows("max_pool", x, window, strides, padding, channels_last)
    return G.reduce_window_max(x, dims, strides, pads)


def avg_pool(x: Node, window: int | Sequence[int], strides: int | Sequence[int] | None = None,
             padding: str | int | Sequence[int | tuple[int, int]] = "valid",
             channels_last: bool = False) -> Node:
    """Mean over windows; padded cells are not counted (as count_include_pad=False)."""
    dims, strides, pads = _windows("avg_pool", x, window, strides, padding, channels_last)
    total = G.reduce_window_sum(x, dims, strides, pads)
    if all(p == (0, 0) for p in pads):
        return total / float(np.prod(dims))
    ones = np.ones([1 if d == 1 else s for d, s in zip(dims, x.shape)], np.float64)
    counts = _window_sum(ones, dims, strides, pads)
    return total / G.const(counts.astype(x.dtype.numpy))


def _window_sum(a: np.ndarray, dims, strides, pads) -> np.ndarray:
    """NumPy reduce_window sum (for the constant count of valid cells per window)."""
    a = np.pad(a, pads)
    out_shape = [(n - d) // s + 1 for n, d, s in zip(a.shape, dims, strides)]
    out = np.zeros(out_shape, a.dtype)
    for index in np.ndindex(*out_shape):
        sl = tuple(slice(i * s, i * s + d) for i, s, d in zip(index, strides, dims))
        out[index] = a[sl].sum()
    return out


def global_avg_pool(x: Node, channels_last: bool = False, keepdims: bool = False) -> Node:
    """Mean over all spatial axes: [batch, channels]."""
    axes = list(range(1, x.ndim - 1)) if channels_last else list(range(2, x.ndim))
    return G.mean(x, axes, keepdims=keepdims)


def global_max_pool(x: Node, channels_last: bool = False, keepdims: bool = False) -> Node:
    """Maximum over all spatial axes: [batch, channels]."""
    axes = list(range(1, x.ndim - 1)) if channels_last else list(range(2, x.ndim))
    return G.reduce_max(x, axes, keepdims=keepdims)


__all__ = ["avg_pool", "global_avg_pool", "global_max_pool", "max_pool"]
