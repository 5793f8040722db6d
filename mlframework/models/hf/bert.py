"""BERT encoders: post-LayerNorm blocks, token types, the pooler.

Context variables (layer i): `embeddings/{word,position,token_type}/embedding/table`,
`embeddings/ln/layer_norm/{gamma,beta}`, `layer/i/attention/{query,key,value,output}/
dense/{weights,biases}`, `layer/i/attention_ln/...`, `layer/i/intermediate/dense/...`,
`layer/i/output/dense/...`, `layer/i/output_ln/...`, and `pooler/dense/...` when the
checkpoint has a pooler.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlframework import graph as G
from mlframework.ml import layers
from mlframework.models.hf.families import Family, activation, base_prefix, refuse
from mlframework.models.hf.params import Param


@dataclass(frozen=True)
class BertConfig:
    prefix: str
    vocab_size: int
    dim: int
    layers: int
    heads: int
    inner: int
    positions: int
    type_vocab_size: int
    activation: str
    epsilon: float
    pooler: bool


def read_config(raw: dict, weights) -> BertConfig:
    refuse(raw, "position_embedding_type", ("absolute",), "relative position embeddings")
    refuse(raw, "is_decoder", (False,), "BERT as a decoder")
    refuse(raw, "add_cross_attention", (False,), "cross-attention blocks")
    activation(raw.get("hidden_act", "gelu"), "hidden_act")
    prefix = base_prefix(weights, "embeddings.word_embeddings.weight", ("", "bert."))
    return BertConfig(
        prefix=prefix, vocab_size=raw["vocab_size"], dim=raw["hidden_size"],
        layers=raw["num_hidden_layers"], heads=raw["num_attention_heads"],
        inner=raw["intermediate_size"], positions=raw.get("max_position_embeddings", 512),
        type_vocab_size=raw.get("type_vocab_size", 2), activation=raw.get("hidden_act", "gelu"),
        epsilon=raw.get("layer_norm_eps", 1e-12),
        pooler=f"{prefix}pooler.dense.weight" in weights)


def _dense(variable: str, tensor: str, n_in: int, n_out: int) -> list[Param]:
    return [Param(f"{variable}/dense/weights", f"{tensor}.weight", (n_out, n_in), transpose=True),
            Param(f"{variable}/dense/biases", f"{tensor}.bias", (n_out,))]


def _norm(variable: str, tensor: str, d: int) -> list[Param]:
    return [Param(f"{variable}/layer_norm/gamma", f"{tensor}.weight", (d,)),
            Param(f"{variable}/layer_norm/beta", f"{tensor}.bias", (d,))]


def params(cfg: BertConfig) -> list[Param]:
    p, d = cfg.prefix, cfg.dim
    e = f"{p}embeddings."
    out = [Param("embeddings/word/embedding/table", f"{e}word_embeddings.weight",
                 (cfg.vocab_size, d)),
           Param("embeddings/position/embedding/table", f"{e}position_embeddings.weight",
                 (cfg.positions, d)),
           Param("embeddings/token_type/embedding/table", f"{e}token_type_embeddings.weight",
                 (cfg.type_vocab_size, d)),
           *_norm("embeddings/ln", f"{e}LayerNorm", d)]
    for i in range(cfg.layers):
        t, v = f"{p}encoder.layer.{i}.", f"layer/{i}/"
        for name in ("query", "key", "value"):
            out += _dense(f"{v}attention/{name}", f"{t}attention.self.{name}", d, d)
        out += _dense(f"{v}attention/output", f"{t}attention.output.dense", d, d)
        out += _norm(f"{v}attention_ln", f"{t}attention.output.LayerNorm", d)
        out += _dense(f"{v}intermediate", f"{t}intermediate.dense", d, cfg.inner)
        out += _dense(f"{v}output", f"{t}output.dense", cfg.inner, d)
        out += _norm(f"{v}output_ln", f"{t}output.LayerNorm", d)
    if cfg.pooler:
        out += _dense("pooler", f"{p}pooler.dense", d, d)
    return out


def forward(cfg: BertConfig, ctx, ids, positions, *, mask=None, token_types=None,
            cache_size=None, last=None):
    """Last hidden states [batch, seq, dim] and the pooler output [batch, dim] (None
    without a pooler) of int ids [batch, seq]; `mask` bool [batch, seq] marks real tokens,
    `token_types` int [batch, seq] (default zeros)."""
    if cache_size is not None or last is not None:
        raise ValueError("BERT is an encoder: it keeps no key/value cache")
    act = activation(cfg.activation, "hidden_act")
    if token_types is None:
        token_types = G.zeros_like(ids)
    emb = ctx / "embeddings"
    x = layers.embedding(emb / "word", ids, cfg.vocab_size, cfg.dim) + \
        layers.embedding(emb / "position", positions, cfg.positions, cfg.dim) + \
        layers.embedding(emb / "token_type", token_types, cfg.type_vocab_size, cfg.dim)
    x = layers.layer_norm(emb / "ln", x, epsilon=cfg.epsilon)
    for i in range(cfg.layers):
        block = ctx / "layer" / str(i)
        a = layers.multi_head_attention(block, x, num_heads=cfg.heads, padding_mask=mask)
        x = layers.layer_norm(block / "attention_ln", x + a, epsilon=cfg.epsilon)
        h = act(layers.dense(block / "intermediate", x, cfg.inner))
        x = layers.layer_norm(block / "output_ln", x + layers.dense(block / "output", h, cfg.dim),
                              epsilon=cfg.epsilon)
    pooled = None
    if cfg.pooler:
        first = G.reshape(x[:, :1], (x.shape[0], cfg.dim))
        pooled = G.tanh(layers.dense(ctx / "pooler", first, cfg.dim))
    return x, pooled


FAMILY = Family("BERT", ("bert",), False, read_config, params, forward)

__all__ = ["FAMILY", "BertConfig"]
