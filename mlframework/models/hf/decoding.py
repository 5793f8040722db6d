"""Step-by-step decoding of a causal model with a key/value cache per cache-size bucket.

Each (batch, cache size) bucket has its own context, whose variables are the model's
weights (the same Tensors, no copy) and the attention layers' caches
`.../attention/cache/{key,value,position}`, and its own compiled graphs: a prefill of
a padded prompt and a one-token decode step, each compiled once per bucket.
"""
from __future__ import annotations

import numpy as np

from mlframework.core.tensors import Tensor
from mlframework.ml import Context, ContextExec, layers

CACHE = "/attention/cache/"


def share_weights(model, ctx: Context) -> None:
    """Points ctx's weight variables at `model`'s current values, creating them on first
    use (after fine-tuning too; optimizer state and step counters stay out of the decode
    graphs). The Tensors are shared, not copied."""
    source, root = model.ctx.at_root(), ctx.at_root()
    for name in dict.fromkeys(p.variable for p in model.params):
        value = source.get_variable(name).value
        try:
            root.get_variable(name).value = value
        except KeyError:
            root.create_variable(name, value, trainable=False)


class _Bucket:
    def __init__(self, model, size: int):
        self.size = size
        self.ctx = Context(seed=0)
        family, cfg = model.family, model.config

        def step(ctx, ids, positions, last):
            return family.forward(cfg, ctx, ids, positions, cache_size=size, last=last)

        self.exec = ContextExec(model.backend, self.ctx, step, name=f"decode_{size}")

    def share_weights(self, model) -> None:
        share_weights(model, self.ctx)

    def set_position(self, position: int) -> None:
        for var in self.ctx.variables():
            if var.name.endswith(CACHE + "position"):
                var.value = Tensor(np.asarray(position, np.int32))


class Decoder:
    """Prefill and decode steps of `model` (an `hf.Model` of a causal family)."""

    def __init__(self, model):
        self.model = model
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._active: _Bucket | None = None
        self._position = 0

    def prefill(self, ids: np.ndarray, cache_size: int, padded_len: int) -> np.ndarray:
        """Starts a sequence: runs int ids [batch, n] padded to `padded_len` tokens into a
        fresh cache of `cache_size` positions; returns the logits [batch, vocab] after the
        last of the n tokens."""
        batch, n = ids.shape
        if not n <= padded_len <= cache_size:
            raise ValueError(f"prefill requires prompt length {n} <= padded length "
                             f"{padded_len} <= cache size {cache_size}")
        key = (batch, cache_size)
        if key not in self._buckets:
            self._buckets[key] = _Bucket(self.model, cache_size)
        bucket = self._active = self._buckets[key]
        bucket.share_weights(self.model)
        layers.reset_cache(bucket.ctx)
        padded = np.zeros((batch, padded_len), np.int32)
        padded[:, :n] = ids
        positions = np.broadcast_to(np.arange(padded_len, dtype=np.int32), padded.shape)
        logits = bucket.exec(padded, np.ascontiguousarray(positions), np.int32(n - 1))
        bucket.set_position(n)  # the padding's keys are overwritten by the next steps
        self._position = n
        return logits.numpy()

    def step(self, ids: np.ndarray) -> np.ndarray:
        """Appends one token per row (int [batch]); returns the next logits [batch, vocab]."""
        bucket = self._active
        if bucket is None:
            raise RuntimeError("decode step requires a prefill first")
        if self._position >= bucket.size:
            raise ValueError(f"the key/value cache of {bucket.size} positions is full")
        ids = np.asarray(ids, np.int32).reshape(-1, 1)
        positions = np.full(ids.shape, self._position, np.int32)
        logits = bucket.exec(ids, positions, np.int32(0))
        self._position += 1
        return logits.numpy()


__all__ = ["CACHE", "Decoder", "share_weights"]
