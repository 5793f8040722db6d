"""hf.generate against transformers' generate on the tiny GPT-2 and LLaMA checkpoints, on
both backends: greedy ids equal for 32 new tokens; one decode step per token; the
prefill and the step compile once per cache bucket; seeds, stop tokens, streaming."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_checkpoints as hc
from mlframework.models import generate, hf


def _prompt(batch=1, n=6, seed=1):
    return np.random.default_rng(seed).integers(0, hc.VOCAB, (batch, n))


def _hf_greedy(path, prompt, new):
    with torch.no_grad():
        return hc.reference(path).generate(torch.from_numpy(prompt), max_new_tokens=new,
                                           min_new_tokens=new, do_sample=False).numpy()


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_greedy_equals_transformers_generate(backend, hf_root, name):
    path = hc.checkpoint(hf_root, name)
    model = hf.load(path, backend=backend)
    prompt = _prompt(batch=2)
    ids = hf.generate(model, prompt, max_new_tokens=32)
    ref = _hf_greedy(path, prompt, 32)
    assert ids.shape == (2, 6 + 32)
    assert len(np.unique(ids[:, 6:])) > 3  # the tiny model does not just repeat one token
    np.testing.assert_array_equal(ids, ref)
    one = generate(model, prompt[1], max_new_tokens=32)  # a 1-D prompt gives 1-D ids
    np.testing.assert_array_equal(one, ref[1])


def test_one_decode_step_per_token_and_one_compile_per_bucket(backend, hf_root, monkeypatch):
    model = hf.load(hc.checkpoint(hf_root, "llama-gqa"), backend=backend)
    compiled, steps = [], []
    compile_ = backend.compile
    monkeypatch.setattr(backend, "compile", lambda *a, **k: compiled.append(1) or
                        compile_(*a, **k))
    step = model.decode_step
    monkeypatch.setattr(model, "decode_step", lambda ids: steps.append(1) or step(ids))
    generate(model, _prompt(n=5), max_new_tokens=20)
    assert (len(compiled), len(steps)) == (2, 19)  # prefill + step; the first token is
    generate(model, _prompt(n=7, seed=2), max_new_tokens=24)  # the prefill's
    assert (len(compiled), len(steps)) == (2, 19 + 23)  # same buckets: nothing compiles
    generate(model, _prompt(n=7), max_new_tokens=60)  # a cache of 128 positions
    assert len(compiled) == 4


def test_sampling_is_reproducible_with_a_seed(backend, hf_root):
    model = hf.load(hc.checkpoint(hf_root, "gpt2"), backend=backend)
    prompt = _prompt()
    kw = dict(max_new_tokens=16, temperature=0.8, top_k=40, top_p=0.95)
    a = hf.generate(model, prompt, seed=0, **kw)
    np.testing.assert_array_equal(hf.generate(model, prompt, seed=0, **kw), a)
    assert not np.array_equal(hf.generate(model, prompt, seed=1, **kw), a)
    greedy = hf.generate(model, prompt, max_new_tokens=16)
    np.testing.assert_array_equal(hf.generate(model, prompt, top_k=1, seed=3,
                                              max_new_tokens=16), greedy)
    np.testing.assert_array_equal(hf.generate(model, prompt, temperature=0,
                                              max_new_tokens=16), greedy)


def test_stop_tokens_and_streaming(hf_root):
    model = hf.load(hc.checkpoint(hf_root, "llama-gqa"), backend="xla")
    prompt = _prompt(batch=2)
    full = hf.generate(model, prompt, max_new_tokens=12)[:, 6:]
    stop = int(full[0, 4])  # row 0's fifth new token
    expected = []  # each row as generated without stops, up to its first stop, then stops
    for row in full:
        k = int(np.argmax(row == stop)) if stop in row else len(row)
        expected.append(np.concatenate([row[:k + 1], np.full(max(0, len(row) - k - 1), stop)]))
    ends = [int(np.argmax(r == stop)) + 1 if stop in r else 12 for r in full]
    expected = np.stack(expected)[:, :max(ends)]  # generation ends once both rows stopped
    streamed = []
    ids = hf.generate(model, prompt, max_new_tokens=12, stop_tokens=[stop],
                      on_token=lambda t: streamed.append(t.copy()))
    np.testing.assert_array_equal(ids[:, 6:], expected)
    np.testing.assert_array_equal(ids[:, :6], prompt)
    np.testing.assert_array_equal(np.stack(streamed, 1), expected)
    assert model.eos_token_ids == []  # the tiny configs have no eos token
    with pytest.raises(ValueError, match="exceeds the model's 128 positions"):
        hf.generate(model, prompt, max_new_tokens=123)


def test_encoders_do_not_generate(hf_root):
    enc = hf.load(hc.checkpoint(hf_root, "bert"), backend="xla")
    with pytest.raises(ValueError, match="encoder"):
        hf.generate(enc, _prompt(), max_new_tokens=2)
