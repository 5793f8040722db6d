"""Attention: scaled dot-product attention, rotary position embedding, and the
multi-head attention layer with grouped key/value heads and a key/value cache.

Shapes: queries [batch, heads, q_len, head_dim]; keys and values
[batch, kv_heads, kv_len, head_dim] with heads a multiple of kv_heads
(grouped-query attention; kv_heads == 1 is multi-query attention). Masks are
boolean, True where a query may attend to a key.
"""
from __future__ import annotations

import math

import numpy as np

from mlframework import graph as G
from mlframework.core import symbolic
from mlframework.core.symbolic import Dim, DimLike
from mlframework.core.tensors import Tensor
from mlframework.graph import Node
from mlframework.graph.graph import Operand
from mlframework.ml import initializers as inits
from mlframework.ml.context import Context
from mlframework.ml.layers.dense import dense


def rope(x: Node, positions: Operand, base: float = 10000.0) -> Node:
    """Rotary position embedding of x [..., seq, head_dim] (rotate-half form, as Llama).

    `positions`: integer [seq] or [batch, seq] (for x [batch, heads, seq, dim]).
    Pairs element i with i + head_dim / 2 and rotates it by position * base ** (-2i / head_dim).
    """
    dim = symbolic.static(x.shape[-1], "rope's head_dim x.shape[-1]")
    if dim % 2:
        raise ValueError(f"rope requires an even head_dim, got {dim}")
    half = dim // 2
    inv_freq = (1.0 / base ** (np.arange(half, dtype=np.float64) * 2 / dim)).astype(np.float32)
    angles = G.convert(positions, np.float32)
    angles = G.reshape(angles, (*angles.shape, 1)) * G.const(inv_freq)
    if angles.ndim == 3 and x.ndim == 4:  # [batch, seq, half] -> [batch, 1, seq, half]
        angles = G.reshape(angles, (angles.shape[0], 1, *angles.shape[1:]))
    cos, sin = G.convert(G.cos(angles), x.dtype), G.convert(G.sin(angles), x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return G.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def causal_mask(q_len: DimLike, kv_len: DimLike, offset: Operand | DimLike = 0) -> Node:
    """[q_len, kv_len] bool: query i (at position offset + i) sees keys at positions <= its own.
    The lengths and offset may be symbolic (`kv_len - q_len` over a sequence S)."""
    if isinstance(offset, Dim):
        offset = G.dim_value(offset, np.int32)
    q = G.iota(np.int32, (q_len, kv_len), 0) + offset
    return G.iota(np.int32, (q_len, kv_len), 1) <= q


def scaled_dot_product_attention(q: Node, k: Node, v: Node, mask: Operand | None = None, *,
                                 causal: bool = False, scale: float | None = None) -> Node:
    """softmax(q k^T * scale + masked) v, per head; k and v heads shared by groups of q heads.

    Args:
        q: [batch, heads, q_len, d]. k, v: [batch, kv_heads, kv_len, d].
        mask: bool, broadcastable to [batch, heads, q_len, kv_len].
        causal: query i attends to keys j <= i + kv_len - q_len.
        scale: default 1 / sqrt(d).
    Returns: [batch, heads, q_len, d_v]. A row with no allowed key gives the mean of v.
    """
    b, _, sq, _ = q.shape
    h = symbolic.static(q.shape[1], "attention's heads q.shape[1]")
    d = symbolic.static(q.shape[3], "attention's head size q.shape[3]")
    hkv = symbolic.static(k.shape[1], "attention's key/value heads k.shape[1]")
    skv = k.shape[2]
    if h % hkv:
        raise ValueError(f"attention requires heads ({h}) divisible by kv_heads ({hkv})")
    g = h // hkv
    scale = 1 / math.sqrt(d) if scale is None else scale
    qg = G.reshape(q, (b, hkv, g, sq, d))
    scores = G.dot_general(qg, k, [4], [3], [0, 1], [0, 1]) * scale  # [b, hkv, g, sq, skv]
    allowed = None
    if causal:
        allowed = causal_mask(sq, skv, skv - sq)
    if mask is not None:
        allowed = G.const(mask) if allowed is None else G.logical_and(mask, allowed)
    if allowed is not None:
        full = G.reshape(G.broadcast_to(allowed, (b, h, sq, skv)), (b, hkv, g, sq, skv))
        scores = G.where(full, scores, float(np.finfo(q.dtype.numpy).min))
    probs = G.softmax(scores, axis=-1)
    out = G.dot_general(probs, v, [4], [2], [0, 1], [0, 1])  # [b, hkv, g, sq, dv]
    return G.reshape(out, (b, h, sq, v.shape[-1]))


def _heads(x: Node, n: int, d: int) -> Node:
    b, s, _ = x.shape
    return G.transpose(G.reshape(x, (b, s, n, d)), (0, 2, 1, 3))


def multi_head_attention(ctx: Context, query: Node, key_value: Node | None = None, *,
                         num_heads: int, num_kv_heads: int | None = None,
                         head_dim: int | None = None, causal: bool = False,
                         padding_mask: Operand | None = None, rope_base: float | None = None,
                         positions: Operand | None = None, cache_size: int | None = None,
                         use_bias: bool = True, output_bias: bool | None = None,
                         output_dim: int | None = None) -> Node:
    """Multi-head attention layer over [batch, seq, dim] inputs.

    Projects `query` (and `key_value`, default `query`: self-attention) with
    dense layers `attention/{query,key,value}`, attends per head, and
    projects back with `attention/output` to `output_dim` (default dim).

    Args:
        num_kv_heads: key/value heads (default num_heads); fewer gives grouped-query attention.
        causal: each position attends to itself and earlier ones.
        padding_mask: bool [batch, kv_len], True for real (non-padding) keys.
        rope_base: applies rotary position embedding to queries and keys.
        positions: int [seq] or [batch, seq] positions for RoPE (default 0..seq-1,
            or continuing from the cache).
        cache_size: keeps keys and values in `attention/cache/{key,value}`
            variables [batch, kv_heads, cache_size, head_dim] and the next write
            position in `attention/cache/position`, for step-by-step decoding:
            each call appends its keys and values and attends to all cached ones
            (self-attention only; `reset_cache` starts over).
        use_bias: biases on the query, key and value projections, and by default on the
            output projection; `output_bias` sets the latter apart (Qwen2: False).
    """
    ctx = ctx / "attention"
    b, sq, _ = query.shape
    dim = symbolic.static(query.shape[2], "multi_head_attention's model size query.shape[2]")
    hd = head_dim or dim // num_heads
    hkv = num_kv_heads or num_heads
    kv_in = query if key_value is None else key_value
    q = _heads(dense(ctx / "query", query, num_heads * hd, use_bias=use_bias), num_heads, hd)
    k = _heads(dense(ctx / "key", kv_in, hkv * hd, use_bias=use_bias), hkv, hd)
    v = _heads(dense(ctx / "value", kv_in, hkv * hd, use_bias=use_bias), hkv, hd)
    mask = None
    if padding_mask is not None:
        keep = G.const(padding_mask)
        mask = G.reshape(keep, (keep.shape[0], 1, 1, keep.shape[1]))
    if cache_size is not None:
        if key_value is not None:
            raise ValueError("multi_head_attention keeps a cache for self-attention only")
        out = _cached(ctx / "cache", q, k, v, mask, causal, rope_base, positions, cache_size)
    else:
        if rope_base is not None:
            q_pos = positions if positions is not None else G.iota(np.int32, (sq,), 0)
            k_pos = positions if positions is not None else G.iota(np.int32, (k.shape[2],), 0)
            q, k = rope(q, q_pos, rope_base), rope(k, k_pos, rope_base)
        out = scaled_dot_product_attention(q, k, v, mask, causal=causal)
    out = G.reshape(G.transpose(out, (0, 2, 1, 3)), (b, sq, num_heads * hd))
    return dense(ctx / "output", out, output_dim or dim,
                 use_bias=use_bias if output_bias is None else output_bias)


def _cached(ctx, q, k, v, mask, causal, rope_base, positions, size):
    b = symbolic.static(k.shape[0], "the key/value cache's batch size")
    sq = symbolic.static(k.shape[2], "a cached attention step's length")
    hkv, hd = k.shape[1], k.shape[3]
    start = ctx.node("position", (), np.int32, inits.zeros(), trainable=False)
    keys = ctx.node("key", (b, hkv, size, hd), k.dtype, inits.zeros(), trainable=False)
    values = ctx.node("value", (b, hkv, size, hd), v.dtype, inits.zeros(), trainable=False)
    if rope_base is not None:
        pos = positions if positions is not None else G.iota(np.int32, (sq,), 0) + start
        q, k = rope(q, pos, rope_base), rope(k, pos, rope_base)
    keys = G.dynamic_update_slice(keys, k, [0, 0, start, 0])
    values = G.dynamic_update_slice(values, v, [0, 0, start, 0])
    ctx.assign("key", keys)
    ctx.assign("value", values)
    ctx.assign("position", start + sq)
    key_pos = G.iota(np.int32, (sq, size), 1)
    allowed = key_pos < start + sq  # written entries only
    if causal:
        allowed = G.logical_and(allowed, key_pos <= G.iota(np.int32, (sq, size), 0) + start)
    if mask is not None:
        allowed = G.logical_and(mask, allowed)
    return scaled_dot_product_attention(q, keys, values, allowed)


def reset_cache(ctx: Context) -> None:
    """Sets every `cache/position` variable under ctx's scope back to 0 (outside tracing)."""
    for var in ctx.variables():
        if var.name.endswith("cache/position"):
            var.value = Tensor(np.zeros((), np.int32))


__all__ = ["causal_mask", "multi_head_attention", "reset_cache", "rope",
           "scaled_dot_product_attention"]
