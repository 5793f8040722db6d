"""Attention (opset 23 on): scaled dot-product attention over 3-D [B, S, hidden]
(with q_num_heads and kv_num_heads) or 4-D [B, heads, S, head_size] inputs, with
a boolean or additive mask, causal and sliding-window masking, past key/value
caches (the present_key/present_value outputs), grouped-query heads, softcap,
softmax_precision and the qk_matmul_output modes 0-3.

Rows whose every key is masked give zeros, as the ONNX definition says.
"""
from __future__ import annotations

import numpy as np

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx import dtypes
from mlframework.models.onnx.errors import OnnxImportError


def _heads(x, n):
    """[B, S, n * d] -> [B, n, S, d]."""
    b, s, hidden = x.shape
    if hidden % n:
        raise OnnxImportError(f"hidden size {hidden} does not split into {n} heads")
    return G.transpose(G.reshape(x, (b, s, n, hidden // n)), (0, 2, 1, 3))


def _allowed_bias(allowed, dtype):
    """0 where allowed, -inf elsewhere."""
    return G.where(allowed, G.full(allowed.shape, 0.0, dtype),
                   G.full(allowed.shape, -np.inf, dtype))


def _offset_diff(q_len, kv_len, offset):
    """(i + offset) - j over [q, kv], or [B, 1, q, kv] for a per-batch offset node."""
    i = np.arange(q_len)[:, None]
    j = np.arange(kv_len)[None, :]
    if isinstance(offset, int):
        return as_node((i + offset - j).astype(np.int64))
    offset = G.reshape(G.convert(offset, "int64"), (-1, 1, 1, 1))
    return offset + as_node((i - j).astype(np.int64))


def _attention(node, q, k, v, mask=None, past_key=None, past_value=None, nonpad=None):
    q, k, v = as_node(q), as_node(k), as_node(v)
    rank3 = q.ndim == 3
    if rank3:
        if not node.has("q_num_heads") or not node.has("kv_num_heads"):
            raise OnnxImportError("3-D inputs require q_num_heads and kv_num_heads")
        q = _heads(q, node.int("q_num_heads"))
        k, v = _heads(k, node.int("kv_num_heads")), _heads(v, node.int("kv_num_heads"))
    dtype = q.dtype
    scale = node.float("scale", 1 / np.sqrt(q.shape[3]))
    root = float(np.sqrt(scale))
    if past_key is not None:
        k = G.concatenate([as_node(past_key), k], 2)
        v = G.concatenate([as_node(past_value), v], 2)
    present_k, present_v = k, v
    q_len, kv_len = q.shape[2], k.shape[2]
    bias = G.full((q_len, kv_len), 0.0, dtype)
    if mask is not None:
        mask = as_node(mask)
        short = kv_len - mask.shape[-1]
        if short > 0:
            fill = False if mask.dtype.value == "bool" else -np.inf
            mask = G.pad(mask, [(0, 0, 0)] * (mask.ndim - 1) + [(0, short, 0)], fill)
        if mask.dtype.value == "bool":
            mask = _allowed_bias(mask, dtype)
        bias = bias + G.convert(mask, dtype)
    past = past_key.shape[2] if past_key is not None else 0
    offset = as_node(nonpad) - q_len if nonpad is not None and past_key is None else past
    if node.int("is_causal", 0):
        bias = bias + _allowed_bias(G.ge(_offset_diff(q_len, kv_len, offset), 0), dtype)
    left, right = node.int("left_window_size", -1), node.int("right_window_size", -1)
    if left >= 0 or right >= 0:
        diff = _offset_diff(q_len, kv_len, offset)
        allowed = G.full(diff.shape, True, np.bool_)
        if left >= 0:
            allowed = G.logical_and(allowed, G.le(diff, left))
        if right >= 0:
            allowed = G.logical_and(allowed, G.le(-diff, right))
        bias = bias + _allowed_bias(allowed, dtype)
    if nonpad is not None:
        keep = G.lt(as_node(np.arange(kv_len, dtype=np.int64)),
                    G.reshape(G.convert(as_node(nonpad), "int64"), (-1, 1)))
        bias = bias + G.reshape(_allowed_bias(keep, dtype), (-1, 1, 1, kv_len))
    heads_q, heads_k = q.shape[1], k.shape[1]
    if heads_q != heads_k:
        if heads_q % heads_k:
            raise OnnxImportError(f"{heads_q} query heads do not group over {heads_k} kv heads")
        reps = heads_q // heads_k

        def repeat(t):
            b, h, s, d = t.shape
            t = G.broadcast_in_dim(t, (b, h, reps, s, d), (0, 1, 3, 4))
            return G.reshape(t, (b, h * reps, s, d))
        k, v = repeat(k), repeat(v)
    qk = G.matmul(q * root, G.transpose(k * root, (0, 1, 3, 2)))
    softcap = node.float("softcap", 0.0)
    if softcap > 0:
        qk = G.tanh(qk / softcap) * softcap
    with_bias = qk + bias
    mode = node.int("qk_matmul_output_mode", 0)
    scores = with_bias
    if node.has("softmax_precision"):
        scores = G.convert(scores, dtypes.from_onnx(node.int("softmax_precision")))
    peak = G.reduce_max(scores, [-1], keepdims=True)
    peak = G.where(G.is_finite(peak), peak, G.zeros_like(peak))
    e = G.exp(scores - peak)
    total = G.reduce_sum(e, [-1], keepdims=True)
    weights = e / G.where(G.eq(total, 0), G.ones_like(total), total)
    masked = G.logical_not(G.is_finite(G.reduce_max(bias, [-1], keepdims=True)))
    weights = G.where(masked, G.zeros_like(weights), weights)
    extra = {0: qk, 1: qk, 2: with_bias, 3: weights}.get(mode)
    if extra is None:
        raise OnnxImportError(f"qk_matmul_output_mode must be 0 to 3, got {mode}")
    weights = G.convert(weights, dtype)
    out = G.matmul(weights, v)
    if rank3:
        b, h, s, d = out.shape
        out = G.reshape(G.transpose(out, (0, 2, 1, 3)), (b, s, h * d))
    return out, present_k, present_v, G.convert(extra, dtype)


OPS = {"Attention": _attention}
