"""Writing a loaded (and perhaps fine-tuned) model back as a HuggingFace folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import safetensors.numpy

from mlframework.models.hf.params import hf_tensors
from mlframework.models.hf.weights import SINGLE

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "vocab.json", "merges.txt", "generation_config.json")


def save_pretrained(model, folder) -> Path:
    """Writes `folder`/config.json (the loaded config, dtype float32), model.safetensors
    (every variable in HuggingFace's names and layouts, float32; tied embeddings stored
    once, as transformers does) and the tokenizer files the source folder had.

    Raises:
        KeyError: when the model's context lacks one of its weights.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = hf_tensors(model.params, model.ctx)
    safetensors.numpy.save_file(tensors, str(folder / SINGLE), metadata={"format": "pt"})
    raw = dict(model.raw_config)
    raw.pop("torch_dtype", None)
    raw["dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    if model.folder.resolve() != folder.resolve():
        for name in TOKENIZER_FILES:
            if (model.folder / name).exists():
                shutil.copyfile(model.folder / name, folder / name)
    return folder


__all__ = ["save_pretrained"]
