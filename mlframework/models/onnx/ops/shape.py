"""Shape and movement operators: Reshape, Flatten, Transpose, (Un)Squeeze, Concat,
Split, Slice, Tile, Expand, Pad, DepthToSpace, SpaceToDepth, Trilu, and the
shape queries (Shape, Size), which give import-time constants.

Shapes, axes, pads, repeats and slice bounds must be known at import time
(constants or computed from shapes); a run-time value raises OnnxImportError.
"""
from __future__ import annotations

import math

import numpy as np

from mlframework import graph as G
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node, broadcast_shapes, broadcast_to
from mlframework.models.onnx.errors import OnnxImportError
from mlframework.models.onnx.node import is_const


def _ints(array) -> list[int]:
    return [int(v) for v in np.ravel(array)]


def _reshape(node, x, shape):
    x = as_node(x)
    dims = _ints(node.const(1, "shape"))
    if not node.int("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1:
        raise OnnxImportError(f"shape {dims} has more than one -1")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or x.size % known:
            raise OnnxImportError(f"cannot reshape {x.spec} to {dims}")
        dims[dims.index(-1)] = x.size // known
    if math.prod(dims) != x.size:
        raise OnnxImportError(f"cannot reshape {x.spec} ({x.size} elements) to {dims}")
    return G.reshape(x, tuple(dims))


def _flatten(node, x):
    x = as_node(x)
    axis = node.int("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise OnnxImportError(f"axis {node.int('axis', 1)} is out of range for {x.spec}")
    return G.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _transpose(node, x):
    x = as_node(x)
    perm = node.ints("perm", list(range(x.ndim))[::-1])
    return G.transpose(x, perm)


def _axes_input(node, x_rank: int, index: int = 1) -> list[int] | None:
    axes = node.const(index, "axes", None)
    return None if axes is None else [normalize_axis(node.op_type, a, x_rank)
                                      for a in _ints(axes)]


def _squeeze(node, x, axes=None):
    x = as_node(x)
    return G.squeeze(x, _axes_input(node, x.ndim))


def _unsqueeze(node, x, axes):
    x = as_node(x)
    raw = _ints(node.const(1, "axes"))
    rank = x.ndim + len(raw)
    axes = sorted(normalize_axis("Unsqueeze", a, rank) for a in raw)
    if len(set(axes)) != len(axes):
        raise OnnxImportError(f"axes {raw} repeat an axis")
    dims, it = [], iter(x.shape)
    for i in range(rank):
        dims.append(1 if i in axes else next(it))
    return G.reshape(x, tuple(dims))


def _concat(node, *xs):
    nodes = [as_node(x) for x in xs if x is not None]
    axis = normalize_axis("Concat", node.int("axis"), nodes[0].ndim)
    return G.concatenate(nodes, axis)


def _split(node, x, split=None):
    x = as_node(x)
    axis = normalize_axis("Split", node.int("axis", 0), x.ndim)
    dim = x.shape[axis]
    if split is not None:
        sizes = _ints(node.const(1, "split"))
    else:
        n = node.int("num_outputs", node.num_outputs) if node.opset >= 18 else node.num_outputs
        if node.opset >= 18 and node.has("num_outputs"):
            chunk = -(-dim // n)
            sizes = [min(chunk, dim - i * chunk) for i in range(n)]
        else:
            if dim % n:
                raise OnnxImportError(f"axis {axis} of {x.spec} does not split into {n} "
                                      "equal parts")
            sizes = [dim // n] * n
    if sum(sizes) != dim:
        raise OnnxImportError(f"split sizes {sizes} do not add up to {dim}")
    cuts = np.cumsum(sizes)[:-1].tolist()
    return G.split(x, cuts, axis)


def _slice(node, x, starts, ends, axes=None, steps=None):
    x = as_node(x)
    starts, ends = _ints(node.const(1, "starts")), _ints(node.const(2, "ends"))
    axes = _ints(node.const(3, "axes")) if axes is not None else list(range(len(starts)))
    steps = _ints(node.const(4, "steps")) if steps is not None else [1] * len(starts)
    lo, hi, st = [0] * x.ndim, list(x.shape), [1] * x.ndim
    flip = []
    for s, e, a, k in zip(starts, ends, axes, steps):
        a = normalize_axis("Slice", a, x.ndim)
        n = x.shape[a]
        if k == 0:
            raise OnnxImportError("steps must be non-zero")
        s = s + n if s < 0 else s
        e = e + n if e < 0 else e
        if k > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
        else:  # run the reversed axis forwards: index i becomes n - 1 - i
            s, e = min(max(s, 0), n - 1), min(max(e, -1), n - 1)
            s, e, k = n - 1 - s, n - 1 - e, -k
            flip.append(a)
        lo[a], hi[a], st[a] = s, max(s, e), k
    if flip:
        x = G.reverse(x, flip)
    return G.slice(x, lo, hi, st)


def _tile(node, x, repeats):
    x = as_node(x)
    reps = _ints(node.const(1, "repeats"))
    if len(reps) != x.ndim:
        raise OnnxImportError(f"repeats {reps} must have one entry per axis of {x.spec}")
    big = tuple(d for r, n in zip(reps, x.shape) for d in (r, n))
    out = G.broadcast_in_dim(x, big, tuple(range(1, 2 * x.ndim, 2)))
    return G.reshape(out, tuple(r * n for r, n in zip(reps, x.shape)))


def _expand(node, x, shape):
    x = as_node(x)
    shape = broadcast_shapes("Expand", x.shape, tuple(_ints(node.const(1, "shape"))))
    return broadcast_to(x, shape)


def _pad(node, x, pads, value=None, axes=None):
    x = as_node(x)
    pads = _ints(node.const(1, "pads"))
    axes = _axes_input(node, x.ndim, 3) or list(range(x.ndim))
    if len(pads) != 2 * len(axes):
        raise OnnxImportError(f"pads {pads} must hold 2 * {len(axes)} values")
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[len(axes) + i]
    mode = node.str("mode", "constant")
    if mode == "constant":
        config = [(b, e, 0) for b, e in zip(begin, end)]
        if value is not None and not is_const(value):  # a run-time fill value
            inside = np.pad(np.ones(x.shape, bool), [(max(b, 0), max(e, 0)) for b, e in
                                                     zip(begin, end)])
            inside = inside[tuple(slice(max(-b, 0), inside.shape[i] - max(-e, 0))
                                  for i, (b, e) in enumerate(zip(begin, end)))]
            fill = G.reshape(G.convert(value, x.dtype), ())
            return G.where(inside, G.pad(x, config, 0), fill)
        first = np.ravel(value)[0] if value is not None and np.size(value) else 0
        scalar = float(first) if x.dtype.is_float else bool(first) if x.dtype.value == "bool" \
            else int(first)
        return G.pad(x, config, scalar)
    if mode not in ("reflect", "edge", "wrap"):
        raise OnnxImportError(f"mode must be constant, reflect, edge or wrap, got {mode!r}")
    for a in range(x.ndim):
        x = _pad_axis(x, a, begin[a], end[a], mode)
    return x


def _pad_axis(x, axis, before, after, mode):
    if before < 0 or after < 0:
        starts, limits = [0] * x.ndim, list(x.shape)
        starts[axis], limits[axis] = max(-before, 0), x.shape[axis] - max(-after, 0)
        x = G.slice(x, starts, limits)
        before, after = max(before, 0), max(after, 0)
    if not before and not after:
        return x
    n = x.shape[axis]
    index = np.arange(-before, n + after)
    if mode == "reflect":
        if n == 1:
            index = np.zeros_like(index)
        else:
            period = 2 * (n - 1)
            index = np.abs((index + period) % period)
            index = np.where(index >= n, period - index, index)
    elif mode == "edge":
        index = np.clip(index, 0, n - 1)
    else:
        index = index % n
    return G.take(x, index.astype(np.int32), axis)


def _shape(node, x):
    dims = np.array(x.shape, np.int64)
    start, end = node.int("start", 0), node.int("end", len(dims))
    return dims[start:end] if node.has("end") else dims[start:]


def _size(node, x):
    return np.array(math.prod(x.shape), np.int64)


def _depth_to_space(node, x):
    x = as_node(x)
    b = node.int("blocksize")
    n, c, h, w = x.shape
    if node.str("mode", "DCR") == "DCR":
        t = G.reshape(x, (n, b, b, c // (b * b), h, w))
        t = G.transpose(t, (0, 3, 4, 1, 5, 2))
    else:
        t = G.reshape(x, (n, c // (b * b), b, b, h, w))
        t = G.transpose(t, (0, 1, 4, 2, 5, 3))
    return G.reshape(t, (n, c // (b * b), h * b, w * b))


def _space_to_depth(node, x):
    x = as_node(x)
    b = node.int("blocksize")
    n, c, h, w = x.shape
    t = G.reshape(x, (n, c, h // b, b, w // b, b))
    dcr = node.str("mode", "DCR") == "DCR"
    t = G.transpose(t, (0, 3, 5, 1, 2, 4) if dcr else (0, 1, 3, 5, 2, 4))
    return G.reshape(t, (n, c * b * b, h // b, w // b))


def _trilu(node, x, k=None):
    x = as_node(x)
    k = 0 if k is None else int(np.ravel(node.const(1, "k"))[0])
    rows = np.arange(x.shape[-2])[:, None]
    cols = np.arange(x.shape[-1])[None, :]
    keep = cols - rows >= k if node.int("upper", 1) else cols - rows <= k
    return G.where(keep, x, G.zeros_like(x))


def _center_crop_pad(node, x, shape):
    x = as_node(x)
    target = _ints(node.const(1, "shape"))
    axes = [normalize_axis("CenterCropPad", a, x.ndim)
            for a in node.ints("axes", list(range(x.ndim)))]
    for a, size in zip(axes, target):
        n = x.shape[a]
        if size < n:  # crop: the extra cell goes to the end
            lo = (n - size) // 2
            starts, limits = [0] * x.ndim, list(x.shape)
            starts[a], limits[a] = lo, lo + size
            x = G.slice(x, starts, limits)
        elif size > n:  # pad: the extra cell goes to the end
            lo = (size - n) // 2
            pads = [(0, 0, 0)] * x.ndim
            pads[a] = (lo, size - n - lo, 0)
            x = G.pad(x, pads, 0)
    return x


def _reverse_sequence(node, x, lengths):
    x = as_node(x)
    lengths = _ints(node.const(1, "sequence_lens"))
    batch_axis, time_axis = node.int("batch_axis", 1), node.int("time_axis", 0)
    index_shape = [1] * x.ndim
    index_shape[batch_axis], index_shape[time_axis] = x.shape[batch_axis], x.shape[time_axis]
    index = np.zeros((x.shape[batch_axis], x.shape[time_axis]), np.int32)
    for b, n in enumerate(lengths):
        t = np.arange(x.shape[time_axis])
        index[b] = np.where(t < n, n - 1 - t, t)
    if batch_axis > time_axis:
        index = index.T
    index = np.broadcast_to(index.reshape(index_shape), x.shape)
    return G.take_along_axis(x, index.astype(np.int32), time_axis)


def _compress(node, x, condition):
    x = as_node(x)
    keep = np.flatnonzero(np.ravel(node.const(1, "condition"))).astype(np.int32)
    if not node.has("axis"):
        return G.take(G.reshape(x, (-1,)), keep)
    axis = normalize_axis("Compress", node.int("axis"), x.ndim)
    return G.take(x, keep[keep < x.shape[axis]], axis)


OPS = {
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split, "Slice": _slice,
    "Tile": _tile, "Expand": _expand, "Pad": _pad, "Shape": _shape, "Size": _size,
    "DepthToSpace": _depth_to_space, "SpaceToDepth": _space_to_depth, "Trilu": _trilu,
    "CenterCropPad": _center_crop_pad, "ReverseSequence": _reverse_sequence,
    "Compress": _compress,
}
