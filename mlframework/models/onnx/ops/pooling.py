"""Pooling: MaxPool, AveragePool, LpPool and their Global forms.

Windows take strides, pads, auto_pad, ceil_mode and dilations. Undilated
windows run on the reduce_window primitives; dilated ones as the maximum or sum
of one strided slice per window offset. AveragePool's divisor (which cells a
window counts, per `count_include_pad`) is computed at import time.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from mlframework import graph as G
from mlframework.core.dtypes import finfo_min
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import UnsupportedOperatorError
from mlframework.models.onnx.ops.windows import geometry


def _windows(x, kernel, strides, dilations, pads, kind: str):
    """Max or sum of x [N, C, *spatial] over the windows; padding cells are the
    identity of the reduction (-inf for max, 0 for sum)."""
    full_pads = [(0, 0), (0, 0)] + [tuple(p) for p in pads]
    if all(d == 1 for d in dilations):
        window = (1, 1) + tuple(kernel)
        stride = (1, 1) + tuple(strides)
        fn = G.reduce_window_max if kind == "max" else G.reduce_window_sum
        return fn(x, window, stride, full_pads)
    fill = finfo_min(x.dtype) if kind == "max" else 0
    padded = G.pad(x, [(lo, hi, 0) for lo, hi in full_pads], fill)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    out = [(s - w) // st + 1 for s, w, st in zip(padded.shape[2:], spans, strides)]
    result = None
    for offset in itertools.product(*[range(k) for k in kernel]):
        starts = [0, 0] + [o * d for o, d in zip(offset, dilations)]
        limits = list(x.shape[:2]) + [st + (n - 1) * s + 1
                                      for st, n, s in zip(starts[2:], out, strides)]
        part = G.slice(padded, starts, limits, [1, 1] + list(strides))
        result = part if result is None else (G.max(result, part) if kind == "max"
                                              else result + part)
    return result


def _max_pool(node, x):
    x = as_node(x)
    if node.output_used(1):
        raise UnsupportedOperatorError("the Indices output of MaxPool is not supported")
    if node.int("storage_order", 0):
        raise UnsupportedOperatorError("storage_order=1 is not supported")
    kernel = node.ints("kernel_shape")
    strides, dilations, pads = geometry(node, x.shape[2:], kernel, bool(node.int("ceil_mode", 0)))
    return _windows(x, kernel, strides, dilations, pads, "max")


def _divisor(spatial, kernel, strides, dilations, pads, declared, include_pad: bool):
    """How many cells each window counts: real cells, plus the declared padding
    when `include_pad` (never the extra cells of ceil_mode), shape [1, 1, *out]."""
    mask = np.ones(spatial)
    pad_value = 1.0 if include_pad else 0.0
    mask = np.pad(mask, declared, constant_values=pad_value)
    extra = [(0, e - d[1]) for (_, e), d in zip(pads, declared)]
    mask = np.pad(mask, extra, constant_values=0.0)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    out = [(s - w) // st + 1 for s, w, st in zip(mask.shape, spans, strides)]
    counts = np.zeros(out)
    for offset in itertools.product(*[range(k) for k in kernel]):
        index = tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                      for o, d, n, s in zip(offset, dilations, out, strides))
        counts += mask[index]
    return counts.reshape((1, 1) + counts.shape)


def _average_pool(node, x):
    x = as_node(x)
    kernel = node.ints("kernel_shape")
    spatial = x.shape[2:]
    strides, dilations, declared = geometry(node, spatial, kernel)
    _, _, pads = geometry(node, spatial, kernel, bool(node.int("ceil_mode", 0)))
    total = _windows(x, kernel, strides, dilations, pads, "sum")
    include = bool(node.int("count_include_pad", 0))
    counts = _divisor(spatial, kernel, strides, dilations, pads, declared, include)
    return total / np.maximum(counts, 1).astype(x.dtype.numpy)


def _lp_pool(node, x):
    x = as_node(x)
    p = node.int("p", 2)
    kernel = node.ints("kernel_shape")
    strides, dilations, pads = geometry(node, x.shape[2:], kernel,
                                        bool(node.int("ceil_mode", 0)))
    total = _windows(G.power(G.abs(x), p), kernel, strides, dilations, pads, "sum")
    return G.power(total, 1.0 / p)


def _global(kind):
    def convert(node, x):
        x = as_node(x)
        axes = list(range(2, x.ndim))
        if kind == "max":
            return G.reduce_max(x, axes, keepdims=True)
        if kind == "mean":
            return G.reduce_sum(x, axes, keepdims=True) / math.prod(x.shape[2:])
        p = node.int("p", 2)
        return G.power(G.reduce_sum(G.power(G.abs(x), p), axes, keepdims=True), 1.0 / p)
    return convert


OPS = {
    "MaxPool": _max_pool, "AveragePool": _average_pool, "LpPool": _lp_pool,
    "GlobalMaxPool": _global("max"), "GlobalAveragePool": _global("mean"),
    "GlobalLpPool": _global("lp"),
}
