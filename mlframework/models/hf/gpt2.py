"""GPT-2: learned positions, pre-LayerNorm blocks, tanh GELU, tied embeddings.

Context variables (layer i): `wte/embedding/table`, `wpe/embedding/table`,
`h/i/ln_1/layer_norm/{gamma,beta}`, `h/i/attention/{query,key,value,output}/dense/...`
(the fused `attn.c_attn` split in three), `h/i/ln_2/...`, `h/i/mlp/fc/dense/...`,
`h/i/mlp/proj/dense/...`, `ln_f/layer_norm/...`; `lm_head/dense/weights` only when the
embeddings are untied. GPT-2's Conv1D weights are already [in, out], as dense layers.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlframework import graph as G
from mlframework.ml import layers
from mlframework.models.hf.families import (Family, activation, base_prefix, refuse,
                                            select_position)
from mlframework.models.hf.params import Param


@dataclass(frozen=True)
class GPT2Config:
    prefix: str
    vocab_size: int
    dim: int
    layers: int
    heads: int
    positions: int
    inner: int
    activation: str
    epsilon: float
    tied: bool
    eos_token_id: int | list | None


def read_config(raw: dict, weights) -> GPT2Config:
    refuse(raw, "add_cross_attention", (False,), "cross-attention blocks")
    refuse(raw, "scale_attn_weights", (True,), "unscaled attention scores")
    refuse(raw, "scale_attn_by_inverse_layer_idx", (False,), "scores scaled by layer index")
    dim = raw["n_embd"]
    activation(raw.get("activation_function", "gelu_new"), "activation_function")
    return GPT2Config(
        prefix=base_prefix(weights, "wte.weight", ("transformer.", "")),
        vocab_size=raw["vocab_size"], dim=dim, layers=raw["n_layer"], heads=raw["n_head"],
        positions=raw["n_positions"], inner=raw.get("n_inner") or 4 * dim,
        activation=raw.get("activation_function", "gelu_new"),
        epsilon=raw.get("layer_norm_epsilon", 1e-5),
        tied=raw.get("tie_word_embeddings", True), eos_token_id=raw.get("eos_token_id"))


def params(cfg: GPT2Config) -> list[Param]:
    p, d = cfg.prefix, cfg.dim
    out = [Param("wte/embedding/table", f"{p}wte.weight", (cfg.vocab_size, d)),
           Param("wpe/embedding/table", f"{p}wpe.weight", (cfg.positions, d))]
    for i in range(cfg.layers):
        h, v = f"{p}h.{i}.", f"h/{i}/"
        for ln in ("ln_1", "ln_2"):
            out += [Param(f"{v}{ln}/layer_norm/gamma", f"{h}{ln}.weight", (d,)),
                    Param(f"{v}{ln}/layer_norm/beta", f"{h}{ln}.bias", (d,))]
        for j, name in enumerate(("query", "key", "value")):
            out += [Param(f"{v}attention/{name}/dense/weights", f"{h}attn.c_attn.weight",
                          (d, 3 * d), part=(j, 3)),
                    Param(f"{v}attention/{name}/dense/biases", f"{h}attn.c_attn.bias",
                          (3 * d,), part=(j, 3))]
        out += [Param(f"{v}attention/output/dense/weights", f"{h}attn.c_proj.weight", (d, d)),
                Param(f"{v}attention/output/dense/biases", f"{h}attn.c_proj.bias", (d,)),
                Param(f"{v}mlp/fc/dense/weights", f"{h}mlp.c_fc.weight", (d, cfg.inner)),
                Param(f"{v}mlp/fc/dense/biases", f"{h}mlp.c_fc.bias", (cfg.inner,)),
                Param(f"{v}mlp/proj/dense/weights", f"{h}mlp.c_proj.weight", (cfg.inner, d)),
                Param(f"{v}mlp/proj/dense/biases", f"{h}mlp.c_proj.bias", (d,))]
    out += [Param("ln_f/layer_norm/gamma", f"{p}ln_f.weight", (d,)),
            Param("ln_f/layer_norm/beta", f"{p}ln_f.bias", (d,))]
    if not cfg.tied:
        out.append(Param("lm_head/dense/weights", "lm_head.weight", (cfg.vocab_size, d),
                         transpose=True))
    return out


def forward(cfg: GPT2Config, ctx, ids, positions, *, mask=None, cache_size=None, last=None):
    """Logits [batch, seq, vocab] of int ids [batch, seq] at int positions [batch, seq]
    ([batch, vocab] at sequence index `last` when given)."""
    act = activation(cfg.activation, "activation_function")
    x = layers.embedding(ctx / "wte", ids, cfg.vocab_size, cfg.dim) + \
        layers.embedding(ctx / "wpe", positions, cfg.positions, cfg.dim)
    for i in range(cfg.layers):
        block = ctx / "h" / str(i)
        h = layers.layer_norm(block / "ln_1", x, epsilon=cfg.epsilon)
        x = x + layers.multi_head_attention(block, h, num_heads=cfg.heads, causal=True,
                                            padding_mask=mask, cache_size=cache_size)
        h = layers.layer_norm(block / "ln_2", x, epsilon=cfg.epsilon)
        h = act(layers.dense(block / "mlp" / "fc", h, cfg.inner))
        x = x + layers.dense(block / "mlp" / "proj", h, cfg.dim)
    x = layers.layer_norm(ctx / "ln_f", x, epsilon=cfg.epsilon)
    if last is not None:
        x = select_position(x, last)
    if not cfg.tied:
        return layers.dense(ctx / "lm_head", x, cfg.vocab_size, use_bias=False)
    table = (ctx.reuse() / "wte" / "embedding").node("table", (cfg.vocab_size, cfg.dim))
    return G.dot_general(x, table, [x.ndim - 1], [1])


FAMILY = Family("GPT-2", ("gpt2",), True, read_config, params, forward)

__all__ = ["FAMILY", "GPT2Config"]
