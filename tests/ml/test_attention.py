"""Attention against PyTorch's scaled_dot_product_attention and a NumPy RoPE."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml_helpers import run_ctx, var
from mlframework import graph as G
from mlframework.ml import Context, ContextExec, layers

TOL = dict(rtol=1e-5, atol=1e-5)


def t(a):
    return torch.from_numpy(np.asarray(a))


@pytest.mark.parametrize("heads,kv_heads,causal,masked", [
    (4, 4, False, False), (4, 2, True, False), (6, 1, False, True), (4, 2, True, True)],
    ids=["mha", "gqa-causal", "mqa-padding", "gqa-causal-padding"])
def test_sdpa_matches_torch(run, rng, heads, kv_heads, causal, masked):
    q = rng.normal(size=(2, heads, 5, 8)).astype(np.float32)
    k = rng.normal(size=(2, kv_heads, 7, 8)).astype(np.float32)
    v = rng.normal(size=(2, kv_heads, 7, 8)).astype(np.float32)
    mask = np.ones((2, 1, 1, 7), bool)
    mask[1, ..., 5:] = False  # padding in the second sequence

    def f(q, k, v, m):
        return layers.scaled_dot_product_attention(q, k, v, m if masked else None, causal=causal)

    y = run(f, q, k, v, mask)
    allowed = torch.ones(5, 7, dtype=torch.bool)
    if causal:  # queries are the last 5 of 7 positions
        allowed = torch.ones(5, 7, dtype=torch.bool).tril(diagonal=2)
    if masked:
        allowed = allowed & t(mask)
    ref = F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=allowed,
                                         enable_gqa=kv_heads != heads)
    np.testing.assert_allclose(y, ref.numpy(), **TOL)


def rope_reference(x, positions, base=10000.0):
    d = x.shape[-1]
    inv = 1.0 / base ** (np.arange(0, d, 2) / d)
    ang = positions[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rotated = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rotated * sin


def test_rope_matches_rotate_half_reference(run, rng):
    x = rng.normal(size=(2, 3, 6, 8)).astype(np.float32)
    pos = np.array([0, 1, 2, 5, 9, 100], np.int32)
    y = run(lambda x, p: layers.rope(x, p), x, pos)
    np.testing.assert_allclose(y, rope_reference(x.astype(np.float64), pos), rtol=1e-4, atol=1e-5)


def test_multi_head_attention_layer_matches_torch(backend, rng):
    x = rng.normal(size=(2, 6, 16)).astype(np.float32)
    pad = np.ones((2, 6), bool)
    pad[0, 4:] = False

    def f(ctx, x, pad):
        return layers.multi_head_attention(ctx, x, num_heads=4, num_kv_heads=2, causal=True,
                                           padding_mask=pad, rope_base=10000.0)

    y, ctx = run_ctx(backend, f, x, pad)
    w = {n: var(ctx, f"attention/{n}/dense/weights") for n in ("query", "key", "value", "output")}
    b = {n: var(ctx, f"attention/{n}/dense/biases") for n in ("query", "key", "value", "output")}
    assert w["key"].shape == (16, 8)  # 2 kv heads of 4

    def heads(a, n):
        return a.reshape(2, 6, n, 4).transpose(0, 2, 1, 3)

    pos = np.arange(6)
    q = rope_reference(heads(x @ w["query"] + b["query"], 4), pos).astype(np.float32)
    k = rope_reference(heads(x @ w["key"] + b["key"], 2), pos).astype(np.float32)
    v = heads(x @ w["value"] + b["value"], 2)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril() & t(pad)[:, None, None, :]
    o = F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=allowed, enable_gqa=True)
    ref = o.numpy().transpose(0, 2, 1, 3).reshape(2, 6, 16) @ w["output"] + b["output"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_kv_cache_decoding_equals_full_causal_attention(backend, rng):
    x = rng.normal(size=(2, 5, 16)).astype(np.float32)
    kw = dict(num_heads=4, num_kv_heads=2, causal=True, rope_base=10000.0)
    full, ctx = run_ctx(backend, lambda c, x: layers.multi_head_attention(c, x, **kw), x)

    dec_ctx = Context(seed=0)  # same seed: the same weights
    step = ContextExec(backend, dec_ctx,
                       lambda c, x: layers.multi_head_attention(c, x, cache_size=8, **kw))
    prefix = step(x[:, :2]).numpy()  # a 2-token prompt, then one token at a time
    tokens = [step(x[:, i:i + 1]).numpy() for i in range(2, 5)]
    np.testing.assert_allclose(np.concatenate([prefix, *tokens], 1), full, rtol=1e-4, atol=1e-5)
    assert int(dec_ctx.get_variable("attention/cache/position").numpy()) == 5
    layers.reset_cache(dec_ctx)
    np.testing.assert_allclose(step(x[:, :2]).numpy(), prefix, rtol=1e-6)
    np.testing.assert_array_equal(var(dec_ctx, "attention/query/dense/weights"),
                                  var(ctx, "attention/query/dense/weights"))


def test_attention_requires_divisible_heads():
    with G.tracing(G.Graph()):
        q = G.parameter(__import__("mlframework").core.shapes.make(np.float32, 1, 3, 2, 4))
        k = G.parameter(__import__("mlframework").core.shapes.make(np.float32, 1, 2, 2, 4))
        with pytest.raises(ValueError, match="divisible by kv_heads"):
            layers.scaled_dot_product_attention(q, k, k)
