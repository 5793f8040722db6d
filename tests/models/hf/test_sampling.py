"""Next-token sampling against transformers' logits warpers (temperature, top-k, top-p)
and the empirical frequencies of many draws."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from mlframework.models.sampling import next_tokens, sampling_probabilities


def _hf(logits, temperature, top_k, top_p):
    scores = torch.from_numpy(logits.astype(np.float32))
    scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, -1).numpy()


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, None, None), (0.7, 5, None), (1.3, None, 0.8), (0.8, 40, 0.95), (1.0, 3, 0.5),
    (2.0, None, 0.05)])
def test_probabilities_match_transformers_warpers(temperature, top_k, top_p):
    logits = np.random.default_rng(0).normal(size=(3, 50)) * 3
    p = sampling_probabilities(logits, temperature, top_k, top_p)
    np.testing.assert_allclose(p, _hf(logits, temperature, top_k, top_p), atol=1e-6)


def test_draws_follow_the_probabilities():
    logits = np.random.default_rng(1).normal(size=(1, 12)) * 2
    p = sampling_probabilities(logits, 0.9, 8, 0.9)[0]
    rng = np.random.default_rng(0)
    draws = np.concatenate([next_tokens(np.repeat(logits, 500, 0), rng, 0.9, 8, 0.9)
                            for _ in range(40)])
    freq = np.bincount(draws, minlength=12) / draws.size
    np.testing.assert_allclose(freq, p, atol=0.01)
    assert (freq[p == 0] == 0).all()


def test_greedy_and_bad_parameters():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    np.testing.assert_array_equal(next_tokens(logits), [1, 0])
    for kw, match in [(dict(temperature=0.0), "temperature > 0"),
                      (dict(top_k=0), "top_k must be at least 1"),
                      (dict(top_p=1.5), r"top_p must be in \(0, 1\]")]:
        with pytest.raises(ValueError, match=match):
            sampling_probabilities(logits, **{"temperature": 1.0, **kw})
