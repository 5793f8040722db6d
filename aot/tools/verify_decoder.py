"""`aotc verify` of a language model exported with `aotc export --hf DIR --decode`.

    lib = DecoderLibrary("build/lm")             # liblm.so through ctypes
    logits = lib.prefill(ids)                     # int ids [n] -> float32 [vocab]
    logits = lib.decode_step(token, position)
    report = verify_decoder("build/lm", tolerance=1e-5)

Each trial runs a random prompt through NAME_prefill (trial 0 longer than its one
pass when the cache allows: the rest goes through decode steps inside it), then up to
8 NAME_decode_step calls on random tokens. The reference is the same HuggingFace model
(the folder manifest.json names) on the "xla" backend, run over the whole sequence at
once (one length for every trial, so it compiles once), with the weights as the
export stores them (`stored_context`, the matrices in `bfloat16_weights` rounded to
bfloat16); a bfloat16 export's distance to the float32 model is shown too, unchecked.
"""
from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np

from aot.export.signature import UsageError
from aot.tools.verify import Report, compare

STEPS = 8  # decode steps per trial, fewer when the cache is full


class DecoderLibrary:
    """libNAME.so of a decoder export folder, with its own cache and workspace."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.manifest = m = json.loads((self.out_dir / "manifest.json").read_text())
        self.name = m["name"]
        path = self.out_dir / f"lib{self.name}.so"
        if not path.is_file():
            raise UsageError(f"{path} does not exist: build it with `make -C {self.out_dir}`")
        self.lib = ctypes.CDLL(str(path.resolve()))
        getattr(self.lib, f"{self.name}_strerror").restype = ctypes.c_char_p
        self.cache = _aligned(m["kv_cache_bytes"])
        self.workspace = _aligned(m["workspace_bytes"])
        self.logits = np.zeros(m["vocab_size"], np.float32)
        if m["weights"] == "file":
            self._check(getattr(self.lib, f"{self.name}_load_weights")(
                str(self.out_dir / f"{self.name}_weights.bin").encode()))

    def _check(self, status: int) -> None:
        if status != 0:
            text = getattr(self.lib, f"{self.name}_strerror")(status).decode()
            raise RuntimeError(f"{text} (status {status})")

    def _buffers(self):
        return [ctypes.c_void_p(a.ctypes.data) for a in (self.logits, self.cache,
                                                         self.workspace)]

    def prefill(self, ids) -> np.ndarray:
        """The logits [vocab] after the prompt `ids` [n] (a copy)."""
        ids = np.ascontiguousarray(ids, np.int32).reshape(-1)
        self._check(getattr(self.lib, f"{self.name}_prefill")(
            ctypes.c_void_p(ids.ctypes.data), ids.size, *self._buffers()))
        return self.logits.copy()

    def decode_step(self, token: int, position: int) -> np.ndarray:
        """The logits [vocab] after `token` at `position` (a copy)."""
        self._check(getattr(self.lib, f"{self.name}_decode_step")(
            int(token), int(position), *self._buffers()))
        return self.logits.copy()


def _aligned(nbytes: int) -> np.ndarray:
    raw = np.zeros(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def is_decoder(out_dir: str | os.PathLike) -> bool:
    """Whether `out_dir` holds an `aotc export --hf DIR --decode` artifact."""
    manifest = Path(out_dir) / "manifest.json"
    return manifest.is_file() and \
        json.loads(manifest.read_text()).get("format") == "aotc-decoder"


def verify_decoder(out_dir: str | os.PathLike, *, tolerance: float = 1e-5, seed: int = 0,
                   trials: int = 2) -> Report:
    """The largest difference (relative to max(1, |reference|)) of the prefill's and the
    decode steps' logits from the reference's, over `trials` random sequences.

    Raises:
        UsageError: the model folder named in manifest.json no longer loads.
    """
    lib = DecoderLibrary(out_dir)
    m = lib.manifest
    reference, floats = _references(m)
    worst = {"prefill logits": 0.0, "decode logits": 0.0}
    unchecked = {k + " vs float model": 0.0 for k in worst} if floats else {}
    rng = np.random.default_rng(seed)
    length = min(m["max_seq"], m["prefill_len"] + 2 + STEPS)  # one reference shape
    for t in range(trials):
        n = max(1, min(m["max_seq"] - 1, m["prefill_len"] + 2)) if t == 0 else \
            int(rng.integers(1, m["prefill_len"] + 1))
        steps = min(STEPS, length - n)
        ids = rng.integers(0, m["vocab_size"], length).astype(np.int32)
        got = [lib.prefill(ids[:n])] + [lib.decode_step(ids[p], p) for p in range(n, n + steps)]
        for ref, into in ((reference, worst), (floats, unchecked)):
            if ref is None:
                continue
            want = ref(ids)[n - 1:n + steps]  # causal: the later tokens change nothing here
            suffix = "" if ref is reference else " vs float model"
            for key, a, b in (("prefill logits", got[:1], want[:1]),
                              ("decode logits", got[1:], want[1:])):
                if len(a):
                    d = compare([np.stack(a)], [b], [key])[key]
                    into[key + suffix] = max(into[key + suffix], d)
    return Report(worst, tolerance, unchecked)


def _references(manifest: dict):
    """(logits of ids [n] -> [n, vocab] with the weights as stored, the same with the
    float32 weights or None for a float32 export), on the "xla" backend."""
    from aot.export.decoder import stored_context
    from mlframework import graph as G
    from mlframework.core.dtypes import DType
    from mlframework.core.tensors import Tensor
    from mlframework.ml import ContextExec
    from mlframework.models import hf
    try:
        model = hf.load(manifest["model"], backend="xla")
    except (FileNotFoundError, hf.UnsupportedModelError, hf.WeightsError) as e:
        raise UsageError(f"the exported model {manifest['model']}: {e}") from None

    def runner(storage: str, rounded: list[str]):
        cfg, ctx = stored_context(model, storage)
        for n in rounded:
            var = ctx.at_root().get_variable(n)
            var.value = Tensor(var.value.numpy().astype(DType.BFLOAT16.numpy).astype(np.float32))

        def forward(c, ids):
            return model.family.forward(cfg, c, ids, G.iota(np.int32, ids.shape, 1))
        exe = ContextExec(model.backend, ctx, forward, name="decoder_reference")
        return lambda ids: exe(np.asarray(ids, np.int32)[None]).numpy()[0]

    rounded = manifest.get("bfloat16_weights", [])
    stored = runner(manifest.get("weight_storage", "float32"), rounded)
    return stored, (runner("float32", []) if rounded else None)


__all__ = ["DecoderLibrary", "is_decoder", "verify_decoder"]
