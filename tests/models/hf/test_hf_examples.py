"""examples/transformer_generate.py and examples/transformer_finetune.py on a tiny GPT-2
with a BPE tokenizer: the streamed text is the decoded greedy ids of transformers'
generate; fine-tuning lowers the loss and saves a folder transformers loads back."""
from __future__ import annotations

import io
import sys

import numpy as np
import torch

import hf_checkpoints as hc
from mlframework.models import hf

sys.path.insert(0, str(hc.EXAMPLES))
import transformer_finetune  # noqa: E402
import transformer_generate  # noqa: E402


def test_generate_example_streams_transformers_greedy_text(backend, hf_root):
    path = hc.text_gpt2(hf_root)
    out = io.StringIO()
    ids, text = transformer_generate.run(path, "Alice was", 20, backend=backend.name, out=out)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    prompt = tok.encode("Alice was").ids
    with torch.no_grad():
        ref = hc.reference(path).generate(torch.tensor([prompt]), max_new_tokens=20,
                                          min_new_tokens=20, do_sample=False)[0].numpy()
    np.testing.assert_array_equal(ids, ref)
    assert text == tok.decode(ref[len(prompt):].tolist())
    assert out.getvalue() == "Alice was" + text + "\n"


def test_finetune_example_lowers_loss_and_saves_for_transformers(backend, hf_root, tmp_path):
    path = hc.text_gpt2(hf_root)
    model, history = transformer_finetune.run(path, tmp_path, steps=80, backend=backend.name)
    assert np.mean(history[-10:]) < 0.75 * np.mean(history[:5]), history
    ids = np.asarray([model.encode("Alice was beginning to get very tired")])
    ours = model(ids).numpy()
    saved = hc.reference(tmp_path)
    with torch.no_grad():
        theirs = saved(torch.from_numpy(ids)).logits.numpy()
        before = hc.reference(path)(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
    assert np.abs(theirs - before).max() > 0.1  # the saved weights are the trained ones
    assert (tmp_path / "tokenizer.json").exists()
    reloaded = hf.load(tmp_path, backend=backend)(ids).numpy()
    np.testing.assert_allclose(reloaded, ours, rtol=1e-5, atol=1e-5)
