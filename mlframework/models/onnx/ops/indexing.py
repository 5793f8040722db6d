"""Indexing operators: Gather, GatherElements, GatherND, ScatterElements,
ScatterND and OneHot, on the IR's gather and scatter primitives.

Negative indices count from the end of their axis, as ONNX defines; indices
out of range are clamped (gathers) or dropped (scatters), as XLA does (ONNX
leaves them undefined).
"""
from __future__ import annotations

import math

import numpy as np

from mlframework import graph as G
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import UnsupportedOperatorError


def _gather(node, x, indices):
    x = as_node(x)
    return G.take(x, as_node(indices), normalize_axis("Gather", node.int("axis", 0), x.ndim))


def _gather_elements(node, x, indices):
    x = as_node(x)
    axis = normalize_axis("GatherElements", node.int("axis", 0), x.ndim)
    return G.take_along_axis(x, as_node(indices), axis)


def _wrapped(indices, dims):
    """indices [..., k] with negative entries counted from the end of dims[j]."""
    dims = G.convert(as_node(np.array(dims, np.int64)), indices.dtype)
    dims = G.broadcast_to(dims, indices.shape)
    return G.where(G.lt(indices, 0), indices + dims, indices)


def _batched(x, indices, batch_dims):
    """x and indices with their batch axes merged into one, and the batch coordinate
    prepended to every index vector: (x [B, ...], indices [B, ..., 1 + k])."""
    batch = math.prod(x.shape[:batch_dims])
    x = G.reshape(x, (batch,) + x.shape[batch_dims:])
    inner = indices.shape[batch_dims:]
    indices = G.reshape(indices, (batch,) + inner)
    coord = G.iota(indices.dtype, (batch,) + inner[:-1] + (1,), 0)
    return x, G.concatenate([coord, indices], -1)


def _gather_nd(node, x, indices):
    x, indices = as_node(x), as_node(indices)
    b = node.int("batch_dims", 0)
    k = indices.shape[-1]
    indices = _wrapped(indices, x.shape[b:b + k])
    out_shape = indices.shape[:-1] + x.shape[b + k:]
    if b:
        x, indices = _batched(x, indices, b)
        k += 1
    window = x.shape[k:]
    lead = indices.ndim - 1
    out = G.gather(x, indices, tuple(range(lead, lead + len(window))), tuple(range(k)),
                   tuple(range(k)), (1,) * k + window)
    return G.reshape(out, out_shape)


def _reduction(node):
    mode = node.str("reduction", "none")
    if mode not in ("none", "add"):
        raise UnsupportedOperatorError(f"reduction={mode!r} is not supported (none and add "
                                       "are); the IR's scatter primitives set or add")
    return G.scatter_set if mode == "none" else G.scatter_add


def _scatter_elements(node, x, indices, updates):
    x, indices, updates = as_node(x), as_node(indices), as_node(updates)
    scatter = _reduction(node)
    axis = normalize_axis("ScatterElements", node.int("axis", 0), x.ndim)
    n = x.shape[axis]
    indices = G.where(G.lt(indices, 0), indices + n, indices)
    coords = [G.iota(indices.dtype, indices.shape, d) if d != axis else indices
              for d in range(x.ndim)]
    full = G.concatenate([G.reshape(c, (*indices.shape, 1)) for c in coords], -1)
    dims = tuple(range(x.ndim))
    return scatter(x, full, updates, (), dims, dims)


def _scatter_nd(node, x, indices, updates):
    x, indices, updates = as_node(x), as_node(indices), as_node(updates)
    scatter = _reduction(node)
    k = indices.shape[-1]
    indices = _wrapped(indices, x.shape[:k])
    lead = indices.ndim - 1
    window = tuple(range(lead, lead + x.ndim - k))
    return scatter(x, indices, G.convert(updates, x.dtype), window, tuple(range(k)),
                   tuple(range(k)))


def _one_hot(node, indices, depth, values):
    indices = as_node(indices)
    depth = int(np.ravel(node.const(1, "depth"))[0])
    values = as_node(values)
    axis = node.int("axis", -1)
    axis = normalize_axis("OneHot", axis, indices.ndim + 1)
    indices = G.where(G.lt(indices, 0), indices + depth, indices) \
        if not indices.dtype.is_unsigned else indices
    shape = indices.shape[:axis] + (depth,) + indices.shape[axis:]
    hot = G.eq(G.iota(indices.dtype, shape, axis), G.expand_dims(indices, axis))
    off = G.slice(values, [0], [1])
    on = G.slice(values, [1], [2])
    return G.where(hot, G.reshape(on, ()), G.reshape(off, ()))


OPS = {
    "Gather": _gather, "GatherElements": _gather_elements, "GatherND": _gather_nd,
    "ScatterElements": _scatter_elements, "ScatterND": _scatter_nd, "OneHot": _one_hot,
}
