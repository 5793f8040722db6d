"""Sentence embeddings as sentence-transformers computes them: the encoder's last hidden
states pooled over the real tokens (mean, or the first token), then L2-normalized.

The pooling mode comes from `1_Pooling/config.json` (mean when absent), the truncation
length from `sentence_bert_config.json`'s `max_seq_length` (else the position count).
"""
from __future__ import annotations

import json

import numpy as np

from mlframework import graph as G
from mlframework.ml import ContextExec

POOLING, SBERT = "1_Pooling/config.json", "sentence_bert_config.json"


def _pooling_mode(folder) -> str:
    path = folder / POOLING
    if not path.exists():
        return "mean"
    cfg = json.loads(path.read_text())
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise NotImplementedError(f"{path}: pooling {', '.join(modes) or 'none'} is not "
                              "implemented (mean tokens or cls token are)")


def _pow2(n: int, least: int, most: int) -> int:
    return min(max(least, 1 << max(0, n - 1).bit_length()), most)


class SentenceEmbedder:
    """Tokenizes, runs and pools sentences for an encoder `hf.Model`."""

    def __init__(self, model):
        self.model = model
        self.mode = _pooling_mode(model.folder)
        sbert = model.folder / SBERT
        limit = json.loads(sbert.read_text()).get("max_seq_length") if sbert.exists() else None
        self.max_len = min(limit or model.config.positions, model.config.positions)
        from tokenizers import Tokenizer
        self.tokenizer = Tokenizer.from_str(model._require_tokenizer().to_str())
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_len)
        self._exec = ContextExec(model.backend, model.ctx, self._traced, name="embed_sentences")

    def _traced(self, ctx, ids, mask, types):
        model = self.model
        hidden, _ = model.family.forward(model.config, ctx, ids, G.iota(np.int32, ids.shape, 1),
                                         mask=mask, token_types=types)
        if self.mode == "cls":
            return G.reshape(hidden[:, :1], (hidden.shape[0], hidden.shape[2]))
        weights = G.reshape(G.convert(mask, hidden.dtype), (*mask.shape, 1))
        total = G.reduce_sum(hidden * weights, axes=[1])
        return total / G.max(G.reduce_sum(weights, axes=[1]), 1e-9)

    def __call__(self, sentences: list[str], batch_size: int, normalize: bool) -> np.ndarray:
        out = []
        encodings = self.tokenizer.encode_batch(sentences)
        for start in range(0, len(encodings), batch_size):
            chunk = encodings[start:start + batch_size]
            rows = _pow2(len(chunk), 1, batch_size)
            seq = _pow2(max(len(e.ids) for e in chunk), 8, self.max_len)
            ids = np.zeros((rows, seq), np.int32)
            types = np.zeros((rows, seq), np.int32)
            mask = np.zeros((rows, seq), bool)
            for i, e in enumerate(chunk):
                n = len(e.ids)
                ids[i, :n], types[i, :n], mask[i, :n] = e.ids, e.type_ids, True
            out.append(self._exec(ids, mask, types).numpy()[:len(chunk)])
        vecs = np.concatenate(out) if out else np.zeros((0, self.model.config.dim), np.float32)
        if normalize:
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float32)


__all__ = ["SentenceEmbedder"]
