"""Choosing the next token from logits: greedy, or sampled with temperature, top-k, top-p.

The order is that of HuggingFace's logits warpers: divide by the temperature, keep the
`top_k` largest logits, keep the smallest set of most likely tokens whose probabilities
sum to at least `top_p`, then draw from the softmax of what is left.
"""
from __future__ import annotations

import numpy as np


def sampling_probabilities(logits: np.ndarray, temperature: float = 1.0,
                           top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """The distribution [batch, vocab] (float64) that sampling draws from, for logits
    [batch, vocab].

    Raises:
        ValueError: for temperature <= 0, top_k < 1 or top_p outside (0, 1].
    """
    if temperature <= 0:
        raise ValueError(f"sampling requires temperature > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    z = np.asarray(logits, np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = -np.partition(-z, top_k - 1, axis=-1)[:, top_k - 1:top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p  # mass of the more likely tokens
        keep_sorted = before < top_p  # the first token is always kept
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    return p


def next_tokens(logits: np.ndarray, rng: np.random.Generator | None = None,
                temperature: float | None = None, top_k: int | None = None,
                top_p: float | None = None) -> np.ndarray:
    """int32 [batch]: the argmax of logits [batch, vocab] when `rng` is None (greedy),
    else one draw per row from `sampling_probabilities`."""
    if rng is None:
        return np.argmax(logits, axis=-1).astype(np.int32)
    p = sampling_probabilities(logits, 1.0 if temperature is None else temperature, top_k,
                               top_p)
    u = rng.random((p.shape[0], 1))
    cdf = np.cumsum(p, axis=-1)
    picks = (cdf < u * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(picks, p.shape[-1] - 1).astype(np.int32)


__all__ = ["next_tokens", "sampling_probabilities"]
