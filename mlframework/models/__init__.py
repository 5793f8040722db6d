"""Importers and model families: `onnx` (ONNX models), `hf` (HuggingFace transformers from
safetensors), and `generate`, autoregressive decoding for any causal model with a
key/value cache.

    from mlframework.models import hf, generate
    model = hf.load("path/to/folder")
    ids = generate(model, prompt_ids, max_new_tokens=32)
"""
from mlframework.models.generation import generate

__all__ = ["generate"]
