"""`aotc export --hf DIR --decode`: the tiny GPT-2 and LLaMA checkpoints as C libraries.
examples/c/generate.c generates greedily from them the ids transformers' `generate`
gives; the functions check their arguments; prefill and decode steps never allocate
and run clean under ASan and UBSan."""
from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_checkpoints as hc
import session_artifacts
from aot.tools.cli import main

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "aot"))
import export_support as es  # noqa: E402  the no-allocation and sanitizer tests' C helpers
MAX_SEQ, PREFILL = 56, 16
NEW = 32


def _exports(hf_root, names, storage: str) -> dict:
    """{checkpoint name: export folder} with --weight-storage `storage`: the first name
    through the command line, the others through export_decoder."""
    from aot.export.decoder import export_decoder
    out = {}
    for k, name in enumerate(names):
        path = hc.checkpoint(hf_root, name)

        def build(folder, first=k == 0, path=path):
            if first:
                assert main(["export", "--hf", str(path), "--decode", "--max-seq", str(MAX_SEQ),
                             "--prefill-len", str(PREFILL), "--weight-storage", storage,
                             "--name", "lm", "-o", str(folder)]) == 0
            else:
                export_decoder(path, folder, max_seq=MAX_SEQ, prefill_len=PREFILL, name="lm",
                               weight_storage=storage)
        suffix = "" if storage == "float32" else f"-{storage}"
        out[name] = session_artifacts.cached(hf_root, f"decoder-{name}{suffix}", build)
    return out


@pytest.fixture(scope="module")
def exported(hf_root):
    """GPT-2 and LLaMA (grouped key/value heads), float32."""
    return _exports(hf_root, ("gpt2", "llama-gqa"), "float32")


@pytest.fixture(scope="module")
def exported_bf16(hf_root):
    """GPT-2 and Qwen2 (qkv biases), both with tied heads, --weight-storage bfloat16."""
    return _exports(hf_root, ("gpt2", "qwen2-bias"), "bfloat16")


def _generate_program(folder: Path) -> Path:
    exe = folder.parent / f"{folder.name}-generate"
    cmd = ["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{folder}",
           str(ROOT / "examples/c/generate.c"), str(folder / "liblm.a"), "-lm", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def _hf_greedy(path, prompt, new):
    with torch.no_grad():
        return hc.reference(path).generate(torch.from_numpy(prompt[None]), max_new_tokens=new,
                                           min_new_tokens=new, do_sample=False).numpy()[0]


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_example_program_generates_as_transformers(exported, hf_root, name):
    """32 new tokens after a 6-token prompt, and after a 20-token one (longer than the
    one-pass prefill of 16: its last 4 tokens go through decode steps)."""
    exe = _generate_program(exported[name])
    generated = set()
    for n, seed in ((6, 1), (20, 2)):
        prompt = np.random.default_rng(seed).integers(0, hc.VOCAB, n)
        result = subprocess.run([str(exe), str(NEW), *map(str, prompt)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        ids = np.array(result.stdout.split(), np.int64)
        ref = _hf_greedy(hc.checkpoint(hf_root, name), prompt, NEW)
        np.testing.assert_array_equal(ids, ref)
        generated.update(ref[n:].tolist())
    assert len(generated) >= 3, generated  # the tiny model does not just repeat one token


class _Library:
    """ctypes view of an exported decoder, with aligned cache and workspace arrays."""

    def __init__(self, folder: Path):
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.lib = ctypes.CDLL(str(folder / "liblm.so"))
        self.lib.lm_strerror.restype = ctypes.c_char_p
        self.cache = _aligned(self.manifest["kv_cache_bytes"])
        self.ws = _aligned(self.manifest["workspace_bytes"])
        self.logits = np.zeros(self.manifest["vocab_size"], np.float32)

    def prefill(self, tokens, n=None, logits="", cache="", ws=""):
        logits = self.logits if isinstance(logits, str) else logits
        cache = self.cache if isinstance(cache, str) else cache
        ws = self.ws if isinstance(ws, str) else ws
        n = len(tokens) if n is None and tokens is not None else n
        return self.lib.lm_prefill(_p(tokens), n, _p(logits), _p(cache), _p(ws))

    def step(self, token, position, logits="", cache="", ws=""):
        logits = self.logits if isinstance(logits, str) else logits
        cache = self.cache if isinstance(cache, str) else cache
        ws = self.ws if isinstance(ws, str) else ws
        return self.lib.lm_decode_step(token, position, _p(logits), _p(cache), _p(ws))


def _p(a):
    """A pointer: an array's data, an int address as is, None as NULL."""
    if a is None:
        return None
    return ctypes.c_void_p(a if isinstance(a, int) else a.ctypes.data)


def _aligned(nbytes: int) -> np.ndarray:
    raw = np.zeros(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def _rounded_reference(path):
    """transformers' float32 model with what a bfloat16 export stores as bfloat16 rounded
    to it (to nearest even, by torch): every 2-d weight but the embedding tables, and the
    output projection, untied from the table first, which stays float32."""
    model = hc.reference(path)
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    with torch.no_grad():
        head = model.get_output_embeddings()
        if id(head.weight) in tables:
            head.weight = torch.nn.Parameter(head.weight.clone())
            model.config.tie_word_embeddings = False
        for p in model.parameters():
            if p.ndim == 2 and id(p) not in tables:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model


BF16_MATRICES = {"gpt2": 2 * 6 + 1, "qwen2-bias": 2 * 7 + 1}  # per layer q, k, v, o, MLP; head


@pytest.mark.parametrize("name", ["gpt2", "qwen2-bias"])
def test_bfloat16_weights_compute_the_rounded_model(exported_bf16, hf_root, name):
    """Logits of a 20-token prompt (16 in one pass, 4 decode steps) and 12 more decode
    steps match transformers' model with the same weights rounded to bfloat16 as float32
    arithmetic allows (1e-5; measured 8e-7), and stand clearly apart from the float32
    model's (the rounding moves them by 5e-3 to 9e-3: a matrix left unrounded would
    fail); greedy generation gives the rounded model's `generate` ids."""
    path, folder = hc.checkpoint(hf_root, name), exported_bf16[name]
    lib = _Library(folder)
    assert lib.manifest["weight_storage"] == "bfloat16"
    assert len(lib.manifest["bfloat16_weights"]) == BF16_MATRICES[name]
    assert any("lm_head" in n for n in lib.manifest["bfloat16_weights"])
    ids = np.random.default_rng(3).integers(0, hc.VOCAB, 32).astype(np.int32)
    got = np.zeros((len(ids) - 19, hc.VOCAB), np.float32)
    assert lib.prefill(ids[:20]) == 0
    got[0] = lib.logits
    for p in range(20, len(ids)):
        assert lib.step(int(ids[p]), p) == 0
        got[p - 19] = lib.logits
    model = _rounded_reference(path)
    with torch.no_grad():
        want = model(torch.from_numpy(ids[None].astype(np.int64))).logits[0, 19:].numpy()
        floats = hc.reference(path)(torch.from_numpy(ids[None].astype(np.int64))).logits[0, 19:]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(got - floats.numpy()).max() > 20 * np.abs(got - want).max() + 1e-3
    exe = _generate_program(folder)
    prompt = ids[:6]
    result = subprocess.run([str(exe), str(NEW), *map(str, prompt)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        ref = model.generate(torch.from_numpy(prompt[None].astype(np.int64)), max_new_tokens=NEW,
                             min_new_tokens=NEW, do_sample=False).numpy()[0]
    np.testing.assert_array_equal(np.array(result.stdout.split(), np.int64), ref)


def test_bad_arguments_return_error_codes(exported):
    lib = _Library(exported["llama-gqa"])
    vocab = lib.manifest["vocab_size"]
    tokens = np.arange(5, dtype=np.int32)
    assert lib.prefill(tokens) == 0
    good_cache = lib.cache.copy()
    assert lib.step(7, 5) == 0
    step_logits, step_cache = lib.logits.copy(), lib.cache.copy()
    lib.cache[:] = good_cache
    assert lib.step(7, 5, ws=None) == 0  # the static workspace: the same results
    np.testing.assert_array_equal(lib.logits, step_logits)
    np.testing.assert_array_equal(lib.cache, step_cache)
    lib.logits[:] = -1
    before = lib.cache.copy()
    odd = lib.ws.ctypes.data + 1
    calls = {  # (call, expected status)
        "NULL tokens": (lambda: lib.prefill(None, 5), 1),
        "NULL logits": (lambda: lib.prefill(tokens, logits=None), 1),
        "NULL cache": (lambda: lib.prefill(tokens, cache=None), 1),
        "step NULL logits": (lambda: lib.step(1, 5, logits=None), 1),
        "step NULL cache": (lambda: lib.step(1, 5, cache=None), 1),
        "misaligned cache": (lambda: lib.prefill(tokens, cache=lib.cache.ctypes.data + 8), 2),
        "misaligned workspace": (lambda: lib.step(1, 5, ws=lib.ws.ctypes.data + 16), 2),
        "misaligned logits": (lambda: lib.step(1, 5, logits=odd), 2),
        "empty prompt": (lambda: lib.prefill(tokens, 0), 5),
        "negative length": (lambda: lib.prefill(tokens, -3), 5),
        "prompt longer than max_seq": (lambda: lib.prefill(np.zeros(MAX_SEQ + 1, np.int32)), 5),
        "token -1 in the prompt": (lambda: lib.prefill(np.array([3, -1], np.int32)), 4),
        "token = vocab in the prompt": (lambda: lib.prefill(np.array([vocab], np.int32)), 4),
        "step token -1": (lambda: lib.step(-1, 5), 4),
        "step token = vocab": (lambda: lib.step(vocab, 5), 4),
        "step token 2**31-1": (lambda: lib.step(2**31 - 1, 5), 4),
        "position = max_seq": (lambda: lib.step(1, MAX_SEQ), 5),
        "position -1": (lambda: lib.step(1, -1), 5),
    }
    for what, (call, code) in calls.items():
        assert call() == code, what
    np.testing.assert_array_equal(lib.cache, before)  # no failed call wrote anything
    assert (lib.logits == -1).all()
    assert "token id" in lib.lib.lm_strerror(4).decode()
    assert "position" in lib.lib.lm_strerror(5).decode()
    assert lib.prefill(np.full(MAX_SEQ, 3, np.int32)) == 0  # the longest prompt
    assert lib.step(1, MAX_SEQ - 1) == 0  # the last position


COUNT = r"""
#include <stdio.h>
#include "lm.h"
""" + es.COUNTING_ALLOCATOR + r"""

static unsigned char cache[LM_KV_CACHE_BYTES] __attribute__((aligned(LM_WORKSPACE_ALIGN)));
static unsigned char ws[LM_WORKSPACE_BYTES] __attribute__((aligned(LM_WORKSPACE_ALIGN)));
static float logits[LM_VOCAB_SIZE];
static int32_t ids[LM_MAX_SEQ];

int main(void) {
  for (int i = 0; i < 20; i++) ids[i] = (i * 7 + 3) % LM_VOCAB_SIZE;  /* longer than one pass */
  counting = 1;
  void* volatile probe = malloc(16);  /* proves that the counting allocator is in place */
  free(probe);
  counting = 0;
  printf("probe %ld\n", calls);
  calls = 0;
  counting = 1;
  int status = lm_prefill(ids, 20, logits, cache, ws);
  for (int p = 20; status == 0 && p < LM_MAX_SEQ; p++) {
    int32_t best = 0;
    for (int32_t v = 1; v < LM_VOCAB_SIZE; v++) if (logits[v] > logits[best]) best = v;
    ids[p] = best;
    status = lm_decode_step(best, p, logits, cache, NULL);
  }
  int bad = lm_decode_step(-1, 0, logits, cache, ws) + lm_prefill(NULL, 1, logits, cache, ws);
  counting = 0;
  printf("status %d bad %d inside %ld\nids", status, bad, calls);
  for (int p = 0; p < LM_MAX_SEQ; p++) printf(" %d", (int)ids[p]);
  printf("\n");
  return status;
}
"""


@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_decoder_sources_compile_without_warnings(exported, exported_bf16, storage, tmp_path):
    """Real compiles (code generation: gcc's middle-end warnings) at -O3, where GPT-2's
    attention shapes meet the runtime's blocked loops."""
    folder = (exported if storage == "float32" else exported_bf16)["gpt2"]
    for source in ("lm_prefill.c", "lm_decode.c", "lm_weights.c"):
        proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "x.o"), "-std=gnu99", "-O3",
                               "-Wall", "-Wextra", "-Werror", "-fopenmp",
                               f"-I{folder}", f"-I{folder / 'runtime'}",
                               str(folder / source)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{source}: {proc.stderr}"


def test_decoder_never_allocates_and_runs_clean_under_sanitizers(exported, tmp_path):
    """The same program counting every allocator call (linked to liblm.so), then built
    from the sources with ASan and UBSan: a prefill longer than one pass, every decode
    step up to max_seq (on the caller's and the static workspace), two bad calls."""
    folder = exported["gpt2"]
    src = tmp_path / "count.c"
    src.write_text(COUNT)
    counted = tmp_path / "count"
    subprocess.run(["gcc", "-O1", "-std=gnu99", "-Wall", "-Wextra", "-Werror", f"-I{folder}",
                    str(src), f"-L{folder}", "-llm", f"-Wl,-rpath,{folder}", "-lm", "-o",
                    str(counted)], check=True, capture_output=True, text=True)
    result = subprocess.run([str(counted)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "probe 2" in result.stdout and "inside 0" in result.stdout, result.stdout
    assert "bad 5" in result.stdout  # ERR_TOKEN + ERR_NULL
    sanitized = tmp_path / "asan"
    clean = es.run_sanitized(src, folder, ["lm_prefill.c", "lm_decode.c", "lm_weights.c"],
                             sanitized)
    ids = lambda out: out.split("ids")[1].split()  # noqa: E731
    assert ids(clean) == ids(result.stdout)


@pytest.mark.parametrize("args, message", [
    (["--decode", "--max-seq", "8"], "--hf and --decode go together"),
    (["HF", "--max-seq", "8"], "--hf and --decode go together"),
    (["HF", "--decode"], "--max-seq"),
    (["HF", "--decode", "--max-seq", "65"], "64 positions"),
    (["HF", "--decode", "--max-seq", "8", "--prefill-len", "9"], "--prefill-len 9"),
    (["HF", "--decode", "--max-seq", "8", "--input", "x:int32[1,8]"], "takes no --input"),
    ([str(ROOT / "examples/digits_mlp.py:model"), "--input", "x:float32[1,64]", "--max-seq",
      "8"], "only used with --hf"),
])
def test_usage_errors(hf_root, args, message, capsys, tmp_path):
    path = hc.checkpoint(hf_root, "gpt2")  # 64 positions
    args = [a for x in args for a in (["--hf", str(path)] if x == "HF" else [x])]
    assert main(["export", *args, "-o", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_verify_runs_decoders_against_xla(exported, exported_bf16, capsys):
    """aotc verify of a decoder export: prefill and decode-step logits against the xla
    backend's forward of the same model, with the weights as stored; a bfloat16 export
    also shows, unchecked, its distance to the float32 model."""
    assert main(["verify", str(exported["llama-gqa"])]) == 0
    out = capsys.readouterr().out
    assert "prefill logits" in out and "decode logits" in out and "float model" not in out
    assert main(["verify", str(exported_bf16["gpt2"]), "--trials", "1"]) == 0
    out = capsys.readouterr().out
    assert "max |c - float model|" in out and "ok (tolerance 1e-05" in out, out
    assert main(["verify", str(exported_bf16["gpt2"]), "--trials", "1", "--tolerance",
                 "1e-9"]) == 1  # the differences are measured, not zero


def test_float16_storage_is_not_built(hf_root, capsys, tmp_path):
    path = hc.checkpoint(hf_root, "gpt2")
    assert main(["export", "--hf", str(path), "--decode", "--max-seq", "8", "--weight-storage",
                 "float16", "-o", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "not implemented" in err and "bfloat16" in err, err


def test_inspect_shows_the_decoder_programs(hf_root, capsys):
    """aotc inspect --hf DIR --decode: the decode step (its GEMVs reading bfloat16 pair
    panels under --weight-storage bfloat16) or the prefill, as the export compiles them."""
    path = str(hc.checkpoint(hf_root, "gpt2"))
    assert main(["inspect", "--hf", path, "--decode", "--max-seq", "16", "--weight-storage",
                 "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "decode, bfloat16 weights" in out and "mlf_sgemm_bf16p(1, " in out
    assert main(["inspect", "--hf", path, "--decode", "--max-seq", "16", "--prefill-len", "8",
                 "--step", "prefill"]) == 0
    out = capsys.readouterr().out
    assert "--prefill-len 8: prefill, float32 weights" in out and "int32[1, 8]" in out
    assert "mlf_sgemm_bf16p" not in out
    assert main(["inspect", "--hf", path, "--decode"]) == 2
    assert "--max-seq" in capsys.readouterr().err


def test_an_encoder_is_refused(hf_root, capsys, tmp_path):
    path = hc.checkpoint(hf_root, "bert")
    assert main(["export", "--hf", str(path), "--decode", "--max-seq", "8", "-o",
                 str(tmp_path / "never")]) == 2
    assert "is an encoder" in capsys.readouterr().err

