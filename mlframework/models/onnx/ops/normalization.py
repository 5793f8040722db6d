"""Normalizations: BatchNormalization (inference and training mode),
LayerNormalization, InstanceNormalization, GroupNormalization, LpNormalization,
MeanVarianceNormalization and LRN.

Statistics are computed in float32 at least (`stash_type`), then the result is
cast back to the input's dtype.
"""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _channel(v, rank: int):
    """A per-channel vector [C] laid out to broadcast against [N, C, *spatial]."""
    v = as_node(v)
    return G.reshape(v, (1, v.shape[0]) + (1,) * (rank - 2))


def _batch_norm(node, x, scale, bias, mean, var):
    x = as_node(x)
    eps = node.float("epsilon", 1e-5)
    training = node.int("training_mode", 0)
    axes = [0] + list(range(2, x.ndim))
    if training:
        batch_mean = G.mean(x, axes)
        batch_var = G.variance(x, axes)
        momentum = node.float("momentum", 0.9)
        run_mean = as_node(mean) * momentum + batch_mean * (1 - momentum)
        run_var = as_node(var) * momentum + batch_var * (1 - momentum)
        mean, var = batch_mean, batch_var
    inv = G.rsqrt(_channel(var, x.ndim) + eps) * _channel(scale, x.ndim)
    y = (x - _channel(mean, x.ndim)) * inv + _channel(bias, x.ndim)
    return (y, run_mean, run_var) if training else y


def _stash(node, x):
    wide = x.dtype.is_float and x.dtype.itemsize < 4 and node.int("stash_type", 1) == 1
    return G.convert(x, "float32") if wide else x


def _layer_norm(node, x, scale, bias=None):
    x = as_node(x)
    axis = normalize_axis("LayerNormalization", node.int("axis", -1), x.ndim)
    eps = node.float("epsilon", 1e-5)
    axes = list(range(axis, x.ndim))
    xs = _stash(node, x)
    mean = G.mean(xs, axes, keepdims=True)
    centered = xs - mean
    inv = G.rsqrt(G.mean(centered * centered, axes, keepdims=True) + eps)
    y = G.convert(centered * inv, x.dtype) * as_node(scale)
    if bias is not None:
        y = y + as_node(bias)
    outs = [y]
    if node.output_used(1) or node.output_used(2):
        outs += [mean, inv]
    return tuple(outs) if len(outs) > 1 else y


def _instance_norm(node, x, scale, bias):
    x = as_node(x)
    eps = node.float("epsilon", 1e-5)
    axes = list(range(2, x.ndim))
    mean = G.mean(x, axes, keepdims=True)
    centered = x - mean
    y = centered * G.rsqrt(G.mean(centered * centered, axes, keepdims=True) + eps)
    return y * _channel(scale, x.ndim) + _channel(bias, x.ndim)


def _group_norm(node, x, scale, bias):
    x = as_node(x)
    groups = node.int("num_groups")
    eps = node.float("epsilon", 1e-5)
    n, c = x.shape[:2]
    if c % groups:
        raise OnnxImportError(f"num_groups={groups} does not divide the {c} channels")
    xs = _stash(node, x)
    g = G.reshape(xs, (n, groups, -1))
    mean = G.mean(g, [2], keepdims=True)
    centered = g - mean
    y = centered * G.rsqrt(G.mean(centered * centered, [2], keepdims=True) + eps)
    y = G.convert(G.reshape(y, x.shape), x.dtype)
    scale, bias = as_node(scale), as_node(bias)
    if scale.shape[0] == groups and groups != c:  # opset 18: one scale per group
        per = c // groups
        scale = G.reshape(G.broadcast_to(G.reshape(scale, (groups, 1)), (groups, per)), (c,))
        bias = G.reshape(G.broadcast_to(G.reshape(bias, (groups, 1)), (groups, per)), (c,))
    return y * _channel(scale, x.ndim) + _channel(bias, x.ndim)


def _lp_norm(node, x):
    x = as_node(x)
    axis = normalize_axis("LpNormalization", node.int("axis", -1), x.ndim)
    p = node.int("p", 2)
    if p == 1:
        norm = G.reduce_sum(G.abs(x), [axis], keepdims=True)
    elif p == 2:
        norm = G.sqrt(G.reduce_sum(x * x, [axis], keepdims=True))
    else:
        raise OnnxImportError(f"p must be 1 or 2, got {p}")
    return G.where(G.eq(norm, 0), G.zeros_like(x), x / norm)


def _rms_norm(node, x, scale):
    x = as_node(x)
    axis = normalize_axis("RMSNormalization", node.int("axis", -1), x.ndim)
    eps = node.float("epsilon", 1e-5)
    xs = _stash(node, x)
    axes = list(range(axis, x.ndim))
    y = xs * G.rsqrt(G.mean(xs * xs, axes, keepdims=True) + eps)
    return G.convert(y, x.dtype) * as_node(scale)


def _mvn(node, x):
    x = as_node(x)
    axes = [normalize_axis("MeanVarianceNormalization", a, x.ndim)
            for a in node.ints("axes", [0, 2, 3])]
    mean = G.mean(x, axes, keepdims=True)
    centered = x - mean
    return centered / (G.sqrt(G.mean(centered * centered, axes, keepdims=True)) + 1e-9)


def _lrn(node, x):
    x = as_node(x)
    size = node.int("size")
    alpha, beta, bias = node.float("alpha", 1e-4), node.float("beta", 0.75), \
        node.float("bias", 1.0)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    window = (1, size) + (1,) * (x.ndim - 2)
    padding = [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2)
    total = G.reduce_window_sum(x * x, window, None, padding)
    return x / G.power(total * (alpha / size) + bias, beta)


OPS = {
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "InstanceNormalization": _instance_norm, "GroupNormalization": _group_norm,
    "LpNormalization": _lp_norm, "MeanVarianceNormalization": _mvn, "LRN": _lrn,
    "RMSNormalization": _rms_norm,
}
