"""HuggingFace transformers from safetensors: GPT-2, BERT, LLaMA, Mistral, Qwen2.

    from mlframework.models import hf
    model = hf.load("path/to/folder")                  # backend= keyword, else $MLF_BACKEND
    logits = model(input_ids)                          # [batch, seq] -> [batch, seq, vocab]
    ids = hf.generate(model, prompt_ids, max_new_tokens=32)
    enc = hf.load("path/to/all-MiniLM-L6-v2")
    hidden = enc(input_ids, attention_mask=mask)       # last hidden states
    vecs = enc.embed_sentences(["a sentence", "another"])

See docs/models.md for the configurations read and what is not supported.
"""
from mlframework.models.generation import generate
from mlframework.models.hf.families import UnsupportedModelError
from mlframework.models.hf.model import Model, load, supported_model_types
from mlframework.models.hf.weights import WeightsError

__all__ = ["Model", "UnsupportedModelError", "WeightsError", "generate", "load",
           "supported_model_types"]
