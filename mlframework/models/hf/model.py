"""`load`: a HuggingFace model folder as a callable model over a context of its weights.

    model = hf.load("path/to/folder")          # backend= a name or Backend, else $MLF_BACKEND
    logits = model(input_ids)                  # causal LMs: Tensor [batch, seq, vocab]
    hidden = enc(input_ids, attention_mask=m)  # encoders: Tensor [batch, seq, dim]
    vecs = enc.embed_sentences(["a sentence"]) # sentence-transformers pooling, normalized
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

import mlframework as mlf
from mlframework import graph as G
from mlframework.graph.exec import Compiler
from mlframework.ml import Context, ContextExec
from mlframework.models.hf import bert, gpt2, llama
from mlframework.models.hf.decoding import Decoder
from mlframework.models.hf.families import UnsupportedModelError
from mlframework.models.hf.params import load_params
from mlframework.models.hf.sentences import SentenceEmbedder
from mlframework.models.hf.weights import Weights

FAMILIES = {t: f.FAMILY for f in (gpt2, bert, llama) for t in f.FAMILY.model_types}
TOKENIZER = "tokenizer.json"


def supported_model_types() -> list[str]:
    return sorted(FAMILIES)


def _ids(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{name} must be an integer array [batch, seq], got "
                         f"{a.dtype}{list(a.shape)}")
    return a.astype(np.int32)


def _positions(ids):
    return G.iota(np.int32, ids.shape, 1)


class Model:
    """A loaded HuggingFace model: `config` (the family's), `raw_config` (config.json),
    `ctx` (its weights as trainable float32 variables), `backend`, `tokenizer` (a
    `tokenizers.Tokenizer` with padding off, or None without tokenizer.json), `folder`,
    and `function`: `function(ctx, input_ids)` traces the model (logits for causal LMs,
    last hidden states for encoders), for `Trainer` or `ContextExec`."""

    def __init__(self, folder: Path, raw: dict, family: ModuleType, config: Any, ctx: Context,
                 backend: Compiler, params: int, tokenizer: Any):
        self.folder, self.raw_config, self.family, self.config = folder, raw, family, config
        self.ctx, self.backend, self.params, self.tokenizer = ctx, backend, params, tokenizer
        self.causal = family.causal
        self._forward = ContextExec(backend, ctx, self._traced, name=f"{family.name}_forward")
        self._decoder = Decoder(self) if self.causal else None
        self._embed: SentenceEmbedder | None = None

    # ---- forward ----

    def function(self, ctx: Context, input_ids: G.Node) -> Any:
        out = self.family.forward(self.config, ctx, input_ids, _positions(input_ids))
        return out if self.causal else out[0]

    def _traced(self, ctx, ids, mask, types):
        kw = {} if self.causal else {"token_types": types}
        out = self.family.forward(self.config, ctx, ids, _positions(ids), mask=mask, **kw)
        return out if self.causal else {"hidden": out[0], "pooled": out[1]}

    def _run(self, input_ids, attention_mask, token_type_ids):
        ids = _ids(input_ids, "input_ids")
        mask = np.ones(ids.shape, bool) if attention_mask is None else \
            _ids(attention_mask, "attention_mask").astype(bool)
        types = np.zeros(ids.shape, np.int32) if token_type_ids is None else \
            _ids(token_type_ids, "token_type_ids")
        if mask.shape != ids.shape or types.shape != ids.shape:
            raise ValueError(f"attention_mask {list(mask.shape)} and token_type_ids "
                             f"{list(types.shape)} must have input_ids' shape "
                             f"{list(ids.shape)}")
        if self.causal and token_type_ids is not None:
            raise ValueError(f"{self.family.name} takes no token_type_ids")
        return self._forward(ids, mask, types)

    def __call__(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                 token_type_ids: ArrayLike | None = None) -> np.ndarray:
        """Logits [batch, seq, vocab] (causal LMs) or last hidden states [batch, seq, dim]
        (encoders) of int input_ids [batch, seq]; attention_mask: 1 for real tokens."""
        out = self._run(input_ids, attention_mask, token_type_ids)
        return out if self.causal else out["hidden"]

    def pooled(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
               token_type_ids: ArrayLike | None = None) -> np.ndarray:
        """BERT's pooler output [batch, dim]: tanh(dense(hidden state of the first token)).

        Raises:
            ValueError: when the checkpoint has no pooler, or the model is not an encoder.
        """
        if self.causal or not self.config.pooler:
            raise ValueError(f"{self.folder} has no pooler")
        return self._run(input_ids, attention_mask, token_type_ids)["pooled"]

    # ---- text ----

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError(f"{self.folder} has no {TOKENIZER}")
        return self.tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (with the tokenizer's special tokens)."""
        return self._require_tokenizer().encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._require_tokenizer().decode([int(i) for i in ids])

    def embed_sentences(self, sentences: Iterable[str], *, batch_size: int = 32,
                        normalize: bool = True) -> np.ndarray:
        """float32 [len(sentences), dim]: sentence-transformers pooling of the last hidden
        states (mean over real tokens, or the first token when 1_Pooling/config.json
        says so), L2-normalized. Inputs are truncated to sentence_bert_config.json's
        max_seq_length (else the position count); batches are padded to powers of two
        so that few graphs compile."""
        if self.causal:
            raise ValueError("embed_sentences requires an encoder (BERT) model")
        if self._embed is None:
            self._embed = SentenceEmbedder(self)
        return self._embed(list(sentences), batch_size, normalize)

    # ---- generation ----

    @property
    def eos_token_ids(self) -> list[int]:
        eos = self.raw_config.get("eos_token_id")
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        return [e for e in eos if 0 <= e < self.config.vocab_size]

    @property
    def max_positions(self) -> int:
        return getattr(self.config, "positions", None) or self.config.max_positions

    def _require_decoder(self) -> Decoder:
        if self._decoder is None:
            raise ValueError(f"{self.family.name} is an encoder: it does not generate")
        return self._decoder

    def prefill(self, ids: ArrayLike, cache_size: int, padded_len: int) -> np.ndarray:
        """See `Decoder.prefill`."""
        return self._require_decoder().prefill(_ids(ids, "ids"), cache_size, padded_len)

    def decode_step(self, ids: np.ndarray) -> np.ndarray:
        """See `Decoder.step`."""
        return self._require_decoder().step(ids)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Writes config.json, model.safetensors (float32) and the tokenizer files to folder,
        in HuggingFace's layout, so that `transformers` loads them back."""
        from mlframework.models.hf.saving import save_pretrained
        return save_pretrained(self, folder)

    def __repr__(self) -> str:
        return f"<hf.Model {self.family.name} from {self.folder}>"


def load(folder: str | os.PathLike, *, backend: str | Compiler | None = None) -> Model:
    """Loads a HuggingFace model folder (config.json, model.safetensors or its sharded
    index, optional tokenizer.json) onto `backend` (a name or a Backend; default
    `$MLF_BACKEND`, else "xla"). Weights are memory-mapped and become float32 variables.

    Raises:
        FileNotFoundError: without config.json.
        UnsupportedModelError: for a model_type not in `supported_model_types()` (the
            message lists them) or a config option that is not implemented.
        WeightsError: naming a missing or mis-shaped tensor (with both shapes), or one
            stored in a dtype other than float32, float16 or bfloat16.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{folder} has no config.json")
    raw = json.loads(config_path.read_text())
    kind = raw.get("model_type")
    if kind not in FAMILIES:
        raise UnsupportedModelError(f"model_type {kind!r} is not supported; supported: "
                                    f"{', '.join(supported_model_types())}")
    family = FAMILIES[kind]
    weights = Weights(folder)
    config = family.read_config(raw, weights)
    backend = backend if backend is not None and not isinstance(backend, str) else \
        mlf.backends.new(backend)
    ctx = Context(seed=0)
    params = family.params(config)
    load_params(weights, params, ctx, backend)
    tokenizer = None
    if (folder / TOKENIZER).exists():
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        tokenizer.no_padding()  # a file's fixed padding (MiniLM's: 128) would pad prompts
    return Model(folder, raw, family, config, ctx, backend, params, tokenizer)


__all__ = ["FAMILIES", "Model", "load", "supported_model_types"]
