"""`generate`: autoregressive decoding with a key/value cache.

    ids = generate(model, prompt_ids, max_new_tokens=32)                     # greedy
    ids = generate(model, prompt_ids, 32, temperature=0.8, top_k=40, top_p=0.95, seed=0)

`model` is any causal language model with a key/value cache offering
`prefill(ids [batch, n], cache_size, padded_len) -> logits [batch, vocab]`,
`decode_step(ids [batch]) -> logits [batch, vocab]`, `max_positions` and
`eos_token_ids` (an `hf.load` decoder does). The prompt runs once (padded to a power
of two, so prompts of similar length share one compiled prefill), then every new
token costs one decode step. The cache holds the next power of two >= prompt +
new tokens (at least 32) positions, so the graphs compile once per such bucket.
"""
from __future__ import annotations

from typing import Callable, Iterable, Protocol

import numpy as np
from numpy.typing import ArrayLike

from mlframework.models.sampling import next_tokens

MIN_CACHE, MIN_PROMPT = 32, 8


def _pow2(n: int, least: int) -> int:
    return max(least, 1 << max(0, n - 1).bit_length())


def cache_buckets(prompt_len: int, max_new_tokens: int, max_positions: int) -> tuple[int, int]:
    """(cache size, padded prompt length) for a generation.

    Raises:
        ValueError: when prompt plus new tokens exceed the model's `max_positions`.
    """
    total = prompt_len + max_new_tokens
    if total > max_positions:
        raise ValueError(f"a prompt of {prompt_len} tokens plus {max_new_tokens} new ones "
                         f"exceeds the model's {max_positions} positions")
    size = min(_pow2(total, MIN_CACHE), max_positions)
    return size, min(_pow2(prompt_len, MIN_PROMPT), size)


class Decoding(Protocol):
    """What `generate` needs of a model (`models.hf.Model` is one): its end-of-sequence
    tokens, its position limit and the cached prefill and decode steps."""

    @property
    def eos_token_ids(self) -> list[int]: ...

    @property
    def max_positions(self) -> int: ...

    def prefill(self, ids: ArrayLike, cache_size: int, padded_len: int) -> np.ndarray: ...

    def decode_step(self, ids: np.ndarray) -> np.ndarray: ...


def generate(model: Decoding, prompt_ids: ArrayLike, max_new_tokens: int = 32, *,
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, stop_tokens: Iterable[int] | None = None,
             on_token: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """Extends int prompt_ids [n] or [batch, n] by up to `max_new_tokens` tokens.

    Greedy unless `temperature` (> 0), `top_k` or `top_p` is given; sampling draws from
    `np.random.default_rng(seed)`, so a seed reproduces the ids (temperature 0 is greedy).
    Generation ends when every row has produced a stop token (default: the model's
    `eos_token_ids`; pass `()` for none); a finished row repeats its stop token.
    `on_token(ids [batch])` is called with each new token as it is produced.

    Returns: int32 [n + generated] or [batch, n + generated], the prompt included.
    """
    prompt = np.asarray(prompt_ids)
    if prompt.ndim not in (1, 2) or prompt.shape[-1] == 0 or not \
            np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"generate requires non-empty integer prompt ids [n] or [batch, n], "
                         f"got {prompt.dtype}{list(prompt.shape)}")
    rows = prompt.reshape(-1, prompt.shape[-1]).astype(np.int32)
    stops = np.asarray(sorted(model.eos_token_ids if stop_tokens is None else stop_tokens),
                       np.int32)
    sampled = bool(temperature) or top_k is not None or top_p is not None
    rng = np.random.default_rng(seed) if sampled else None
    size, padded = cache_buckets(rows.shape[1], max_new_tokens, model.max_positions)
    out = [rows]
    if max_new_tokens > 0:
        logits = model.prefill(rows, size, padded)
        done = np.zeros(rows.shape[0], bool)
        for i in range(max_new_tokens):
            token = next_tokens(logits, rng, temperature, top_k, top_p)
            if stops.size:
                token = np.where(done, out[-1][:, -1], token)
                done |= np.isin(token, stops)
            out.append(token[:, None])
            if on_token is not None:
                on_token(token)
            if done.all() or i == max_new_tokens - 1:
                break
            logits = model.decode_step(token)
    ids = np.concatenate(out, axis=1)
    return ids[0] if prompt.ndim == 1 else ids


__all__ = ["cache_buckets", "generate"]
