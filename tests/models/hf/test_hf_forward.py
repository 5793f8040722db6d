"""hf.load against transformers' own forward pass on tiny random checkpoints of every
family (GPT-2, LLaMA, Mistral, Qwen2, BERT), float32/float16/bfloat16 storage, on both
backends: logits and hidden states to 1e-4."""
from __future__ import annotations

import mmap

import numpy as np
import pytest
import torch

import hf_checkpoints as hc
from mlframework.models import hf

TOL = dict(rtol=1e-4, atol=1e-4)


def _ids(batch=2, seq=9, seed=0):
    return np.random.default_rng(seed).integers(0, hc.VOCAB, (batch, seq))


@pytest.mark.parametrize("name", hc.DECODERS)
def test_decoder_logits_match_transformers(backend, hf_root, name):
    path = hc.checkpoint(hf_root, name)
    ids = _ids()
    model = hf.load(path, backend=backend)
    logits = model(ids).numpy()
    with torch.no_grad():
        ref = hc.reference(path)(torch.from_numpy(ids)).logits.numpy()
    assert logits.shape == (2, 9, hc.VOCAB)
    np.testing.assert_allclose(logits, ref, **TOL)
    _assert_reads_only_checkpoint_tensors(model)


def _assert_reads_only_checkpoint_tensors(model):
    """The trace created no variable of its own (a bias the checkpoint lacks, say Qwen2's
    output projection's, would have been created as zeros and gone unnoticed)."""
    names = {v.name for v in model.ctx.variables()}
    assert names == {p.variable for p in model.params}, names ^ {p.variable for p in model.params}


@pytest.mark.parametrize("name", ["bert", "bert-sharded-f16"])
def test_encoder_hidden_states_match_transformers(backend, hf_root, name):
    path = hc.checkpoint(hf_root, name)
    ids = _ids(seq=11)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0  # the second sentence is padded
    types = np.zeros_like(ids)
    types[:, 5:] = 1
    enc = hf.load(path, backend=backend)
    hidden = enc(ids, attention_mask=mask, token_type_ids=types).numpy()
    with torch.no_grad():
        ref = hc.reference(path)(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                 token_type_ids=torch.from_numpy(types))
    np.testing.assert_allclose(hidden, ref.last_hidden_state.numpy(), **TOL)
    _assert_reads_only_checkpoint_tensors(enc)
    if enc.config.pooler:
        pooled = enc.pooled(ids, attention_mask=mask, token_type_ids=types).numpy()
        np.testing.assert_allclose(pooled, ref.pooler_output.numpy(), **TOL)
    else:
        with pytest.raises(ValueError, match="no pooler"):
            enc.pooled(ids)


def test_checkpoints_cover_the_storage_dtypes_and_shards(hf_root):
    from mlframework.models.hf.weights import INDEX, Weights
    kinds = {}
    for name in hc.CHECKPOINTS:
        w = Weights(hc.checkpoint(hf_root, name))
        kinds[name] = {w.dtype_name(n) for n in w.names()}
    assert kinds["gpt2-untied-f16"] == {"F16"} and kinds["mistral-mqa-f16"] == {"F16"}
    assert kinds["llama-tied-bf16"] == {"BF16"} and kinds["gpt2"] == {"F32"}
    sharded = hc.checkpoint(hf_root, "bert-sharded-f16")
    assert (sharded / INDEX).exists() and len(Weights(sharded).files) > 1


def test_weights_are_memory_mapped_and_float32_views_not_copied(hf_root):
    path = hc.checkpoint(hf_root, "gpt2")
    model = hf.load(path, backend="c")  # the c backend reads host arrays in place
    table = model.ctx.at_root().get_variable("wte/embedding/table").numpy()
    base = table
    while getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)  # the file's map
    query = model.ctx.at_root().get_variable("h/0/attention/query/dense/weights").numpy()
    assert query.flags.c_contiguous and query.shape == (32, 32)  # one copy of a split slice
