"""Resize (nearest, linear and cubic, with every coordinate_transformation_mode,
nearest_mode, antialias, exclude_outside, axes and keep_aspect_ratio_policy).

Resizing is separable: each resized axis in turn, first to last, is an
interpolation whose taps (source indices and weights per output position) are
computed at import time from the constant scales or sizes. Nearest gathers one
tap; linear and cubic gather their taps and sum them weighted.
"""
from __future__ import annotations

import math

import numpy as np

from mlframework import graph as G
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _source_coordinates(mode, y, scale, size_in, size_out, roi):
    """(x_ori per output index, extrapolated mask or None), as the ONNX spec maps them."""
    width = scale * size_in
    if mode == "align_corners":
        return (np.zeros_like(y) if width == 1 else y * (size_in - 1) / (width - 1)), None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "tf_crop_and_resize":
        lo, hi = roi
        x = (np.full_like(y, (hi - lo) * (size_in - 1) / 2) if width == 1
             else y * (hi - lo) * (size_in - 1) / (width - 1)) + lo * (size_in - 1)
        return x, (x < 0) | (x > size_in - 1)
    if mode == "pytorch_half_pixel":
        return (np.full_like(y, -0.5) if width == 1 else (y + 0.5) / scale - 0.5), None
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if mode == "half_pixel_symmetric":
        offset = size_in / 2 * (1 - size_out / width)
        return offset + (y + 0.5) / scale - 0.5, None
    raise OnnxImportError(f"coordinate_transformation_mode {mode!r} is not an ONNX mode")


def _nearest(ratio, scale, rounding):
    if float(ratio).is_integer():
        return np.array([0.0, 1.0])
    up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
          "floor": False, "ceil": True}
    if rounding not in up:
        raise OnnxImportError(f"nearest_mode {rounding!r} is not an ONNX mode")
    return np.array([0.0, 1.0]) if up[rounding] else np.array([1.0, 0.0])


def _linear(ratio, scale, antialias):
    if not antialias:
        return np.array([1 - ratio, ratio])
    scale = min(scale, 1.0)
    start = int(np.floor(-1 / scale) + 1)
    args = (np.arange(start, 2 - start) - ratio) * scale
    coeffs = np.clip(1 - np.abs(args), 0, 1)
    return coeffs / coeffs.sum()


def _cubic_kernel(x, a):
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def _cubic(ratio, scale, antialias, a):
    if not antialias:
        return np.array([_cubic_kernel(d, a) for d in (ratio + 1, ratio, 1 - ratio, 2 - ratio)])
    scale = min(scale, 1.0)
    start = int(np.floor(-2 / scale) + 1)
    coeffs = np.array([_cubic_kernel(scale * (i - ratio), a) for i in range(start, 2 - start)])
    return coeffs / coeffs.sum()


def taps(node, size_in, size_out, scale, roi):
    """(indices [out, n], weights [out, n], extrapolated [out] or None) of one axis."""
    mode = node.str("mode", "nearest")
    antialias = bool(node.int("antialias", 0))
    if mode == "nearest":
        rounding = node.str("nearest_mode", "round_prefer_floor")
        def coeffs(r): return _nearest(r, scale, rounding)  # noqa: E704
    elif mode == "linear":
        def coeffs(r): return _linear(r, scale, antialias)  # noqa: E704
    elif mode == "cubic":
        a = node.float("cubic_coeff_a", -0.75)
        def coeffs(r): return _cubic(r, scale, antialias, a)  # noqa: E704
    else:
        raise OnnxImportError(f"mode must be nearest, linear or cubic, got {mode!r}")
    y = np.arange(size_out, dtype=np.float64)
    x, extrapolated = _source_coordinates(node.str("coordinate_transformation_mode",
                                                   "half_pixel"), y, scale, size_in, size_out,
                                          roi)
    base = np.floor(x)
    ratios = np.where(x == base, 1.0, x - base)
    weights = np.stack([coeffs(float(r)) for r in ratios]) if size_out else np.zeros((0, 2))
    n = weights.shape[1]
    pad = math.ceil(n / 2)
    padded = x + pad
    floor = np.floor(padded)
    frac = padded - floor
    if n % 2 == 0:
        offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    indices = (floor + offset).astype(np.int64)[:, None] + np.arange(n)[None, :] - pad
    if node.int("exclude_outside", 0):
        weights = np.where((indices < 0) | (indices >= size_in), 0.0, weights)
        total = weights.sum(-1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(indices, 0, size_in - 1), weights, extrapolated


def _plan(node, x, roi, scales, sizes):
    """(output sizes, scales, roi pairs) for every axis of x."""
    r = x.ndim
    axes = [normalize_axis("Resize", a, r) for a in node.ints("axes", list(range(r)))]
    roi = None if roi is None or np.size(roi) == 0 else np.ravel(roi).astype(np.float64)
    pairs = [(0.0, 1.0)] * r
    if roi is not None:
        k = len(axes)
        for i, a in enumerate(axes):
            pairs[a] = (roi[i], roi[k + i])
    out, factor = list(x.shape), [1.0] * r
    if sizes is not None and np.size(sizes):
        sizes = [int(s) for s in np.ravel(sizes)]
        for i, a in enumerate(axes):
            out[a] = sizes[i]
            factor[a] = sizes[i] / x.shape[a]
        policy = node.str("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = {"not_larger": min, "not_smaller": max}.get(policy)
            if pick is None:
                raise OnnxImportError(f"keep_aspect_ratio_policy {policy!r} is not an ONNX "
                                      "policy")
            scale = pick(factor[a] for a in axes)
            for a in axes:
                factor[a] = scale
                out[a] = int(scale * x.shape[a] + 0.5)
    elif scales is not None and np.size(scales):
        for i, a in enumerate(axes):
            factor[a] = float(np.ravel(scales)[i])
            out[a] = int(factor[a] * x.shape[a])
    else:
        raise OnnxImportError("requires scales or sizes")
    return out, factor, pairs


def _resize(node, x, roi=None, scales=None, sizes=None):
    x = as_node(x)
    roi = node.const(1, "roi", None)
    scales = node.const(2, "scales", None)
    sizes = node.const(3, "sizes", None)
    out, factor, pairs = _plan(node, x, roi, scales, sizes)
    nearest = node.str("mode", "nearest") == "nearest"
    if not nearest and not x.dtype.is_float:
        raise OnnxImportError(f"{node.str('mode')} resizing requires float data, got {x.spec}")
    fill = node.float("extrapolation_value", 0.0)
    for a in range(x.ndim):
        identity = math.isclose(factor[a], 1.0) and out[a] == x.shape[a] and \
            math.isclose(pairs[a][0], 0.0) and math.isclose(pairs[a][1], 1.0)
        if identity:
            continue
        indices, weights, extrapolated = taps(node, x.shape[a], out[a], factor[a], pairs[a])
        if nearest:
            pick = indices[np.arange(out[a]), np.argmax(weights, -1)] if out[a] else \
                np.zeros(0, np.int64)
            x = G.take(x, pick.astype(np.int32), a)
        else:
            n = indices.shape[1]
            gathered = G.take(x, indices.astype(np.int32), a)  # [..., out, n, ...]
            shape = [1] * gathered.ndim
            shape[a], shape[a + 1] = out[a], n
            w = weights.reshape(shape).astype(x.dtype.numpy)
            x = G.reduce_sum(gathered * w, [a + 1])
        if extrapolated is not None and extrapolated.any():
            shape = [1] * x.ndim
            shape[a] = out[a]
            x = G.where(extrapolated.reshape(shape), G.full(x.shape, fill, x.dtype), x)
    return x


OPS = {"Resize": _resize}
