"""LLaMA and its variants Mistral and Qwen2: RMSNorm, rotary positions, SwiGLU,
grouped-query attention, tied or untied embeddings.

Rotary embeddings take `rope_theta` and `rope_scaling` {"type"/"rope_type": "linear",
"factor"} (transformers 4) or `rope_parameters` (transformers 5); linear scaling divides
the positions by the factor. Qwen2 has biases on the query, key and value projections
only; LLaMA's `attention_bias` puts them on all four; Mistral has none.

Context variables (layer i): `embed/embedding/table`, `layers/i/input_norm/rms_norm/gamma`,
`layers/i/attention/{query,key,value,output}/dense/...`, `layers/i/post_norm/rms_norm/
gamma`, `layers/i/mlp/{gate,up,down}/dense/...`, `norm/rms_norm/gamma`, and
`lm_head/dense/weights` when the embeddings are untied.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlframework import graph as G
from mlframework.ml import layers
from mlframework.models.hf.families import (Family, UnsupportedModelError, activation,
                                            base_prefix, refuse, select_position)
from mlframework.models.hf.params import Param

ROPE_TYPES = ("default", "linear")


@dataclass(frozen=True)
class LlamaConfig:
    model_type: str
    prefix: str
    vocab_size: int
    dim: int
    inner: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    epsilon: float
    activation: str
    rope_theta: float
    rope_factor: float
    qkv_bias: bool
    output_bias: bool
    mlp_bias: bool
    tied: bool
    max_positions: int
    sliding_window: int | None
    eos_token_id: int | list | None


def _rope(raw: dict) -> tuple[float, float]:
    """(theta, linear factor) from a transformers 4 or 5 config."""
    rope = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise UnsupportedModelError(f"rope type {kind!r} is not supported; supported: "
                                    f"{', '.join(ROPE_TYPES)}")
    theta = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
    return float(theta), float(rope.get("factor", 1.0)) if kind == "linear" else 1.0


def read_config(raw: dict, weights) -> LlamaConfig:
    kind = raw["model_type"]
    refuse(raw, "pretraining_tp", (1,), "tensor-parallel slicing of the projections")
    refuse(raw, "partial_rotary_factor", (1, 1.0), "rotary embedding of part of a head")
    heads = raw["num_attention_heads"]
    dim = raw["hidden_size"]
    theta, factor = _rope(raw)
    attention_bias = bool(raw.get("attention_bias", False))
    window = raw.get("sliding_window") if kind == "mistral" or raw.get("use_sliding_window") \
        else None
    activation(raw.get("hidden_act", "silu"), "hidden_act")
    return LlamaConfig(
        model_type=kind, prefix=base_prefix(weights, "embed_tokens.weight", ("model.", "")),
        vocab_size=raw["vocab_size"], dim=dim, inner=raw["intermediate_size"],
        layers=raw["num_hidden_layers"], heads=heads,
        kv_heads=raw.get("num_key_value_heads") or heads,
        head_dim=raw.get("head_dim") or dim // heads,
        epsilon=raw.get("rms_norm_eps", 1e-6), activation=raw.get("hidden_act", "silu"),
        rope_theta=theta, rope_factor=factor,
        qkv_bias=kind == "qwen2" or attention_bias,
        output_bias=kind != "qwen2" and attention_bias,
        mlp_bias=bool(raw.get("mlp_bias", False)),
        tied=bool(raw.get("tie_word_embeddings", False)),  # the classes' default
        max_positions=raw.get("max_position_embeddings", 2048),
        sliding_window=window, eos_token_id=raw.get("eos_token_id"))


def _linear(variable: str, tensor: str, n_in: int, n_out: int, bias: bool) -> list[Param]:
    out = [Param(f"{variable}/dense/weights", f"{tensor}.weight", (n_out, n_in), transpose=True)]
    if bias:
        out.append(Param(f"{variable}/dense/biases", f"{tensor}.bias", (n_out,)))
    return out


def params(cfg: LlamaConfig) -> list[Param]:
    p, d, hd = cfg.prefix, cfg.dim, cfg.head_dim
    out = [Param("embed/embedding/table", f"{p}embed_tokens.weight", (cfg.vocab_size, d))]
    for i in range(cfg.layers):
        t, v = f"{p}layers.{i}.", f"layers/{i}/"
        out.append(Param(f"{v}input_norm/rms_norm/gamma", f"{t}input_layernorm.weight", (d,)))
        out += _linear(f"{v}attention/query", f"{t}self_attn.q_proj", d, cfg.heads * hd,
                       cfg.qkv_bias)
        for name, proj in (("key", "k_proj"), ("value", "v_proj")):
            out += _linear(f"{v}attention/{name}", f"{t}self_attn.{proj}", d,
                           cfg.kv_heads * hd, cfg.qkv_bias)
        out += _linear(f"{v}attention/output", f"{t}self_attn.o_proj", cfg.heads * hd, d,
                       cfg.output_bias)
        out.append(Param(f"{v}post_norm/rms_norm/gamma", f"{t}post_attention_layernorm.weight",
                         (d,)))
        out += _linear(f"{v}mlp/gate", f"{t}mlp.gate_proj", d, cfg.inner, cfg.mlp_bias)
        out += _linear(f"{v}mlp/up", f"{t}mlp.up_proj", d, cfg.inner, cfg.mlp_bias)
        out += _linear(f"{v}mlp/down", f"{t}mlp.down_proj", cfg.inner, d, cfg.mlp_bias)
    out.append(Param("norm/rms_norm/gamma", f"{p}norm.weight", (d,)))
    if not cfg.tied:
        out += _linear("lm_head", "lm_head", d, cfg.vocab_size, False)
    return out


def forward(cfg: LlamaConfig, ctx, ids, positions, *, mask=None, cache_size=None, last=None):
    """Logits [batch, seq, vocab] of int ids [batch, seq] at int positions [batch, seq]
    ([batch, vocab] at sequence index `last` when given).

    Raises:
        NotImplementedError: when a Mistral sliding window is shorter than the keys.
    """
    keys = cache_size or ids.shape[1]
    if cfg.sliding_window is not None and keys > cfg.sliding_window:
        raise NotImplementedError(f"sliding-window attention ({cfg.sliding_window} keys) over "
                                  f"{keys} keys is not implemented")
    act = activation(cfg.activation, "hidden_act")
    rope_positions = G.convert(positions, np.float32)
    if cfg.rope_factor != 1.0:
        rope_positions = rope_positions * (1.0 / cfg.rope_factor)
    x = layers.embedding(ctx / "embed", ids, cfg.vocab_size, cfg.dim)
    for i in range(cfg.layers):
        block = ctx / "layers" / str(i)
        h = layers.rms_norm(block / "input_norm", x, epsilon=cfg.epsilon)
        x = x + layers.multi_head_attention(
            block, h, num_heads=cfg.heads, num_kv_heads=cfg.kv_heads, head_dim=cfg.head_dim,
            causal=True, padding_mask=mask, rope_base=cfg.rope_theta, positions=rope_positions,
            cache_size=cache_size, use_bias=cfg.qkv_bias, output_bias=cfg.output_bias)
        h = layers.rms_norm(block / "post_norm", x, epsilon=cfg.epsilon)
        mlp = block / "mlp"
        gate = act(layers.dense(mlp / "gate", h, cfg.inner, use_bias=cfg.mlp_bias))
        up = layers.dense(mlp / "up", h, cfg.inner, use_bias=cfg.mlp_bias)
        x = x + layers.dense(mlp / "down", gate * up, cfg.dim, use_bias=cfg.mlp_bias)
    x = layers.rms_norm(ctx / "norm", x, epsilon=cfg.epsilon)
    if last is not None:
        x = select_position(x, last)
    if not cfg.tied:
        return layers.dense(ctx / "lm_head", x, cfg.vocab_size, use_bias=False)
    table = (ctx.reuse() / "embed" / "embedding").node("table", (cfg.vocab_size, cfg.dim))
    return G.dot_general(x, table, [x.ndim - 1], [1])


FAMILY = Family("LLaMA", ("llama", "mistral", "qwen2"), True, read_config, params, forward)

__all__ = ["FAMILY", "LlamaConfig"]
