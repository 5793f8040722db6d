"""Generate text with a HuggingFace causal language model (GPT-2, LLaMA, Mistral, Qwen2)
read from its safetensors folder, printing the text as the tokens arrive.

    .venv/bin/python examples/transformer_generate.py --model path/to/folder \
        --prompt "Once upon a time" --max-new-tokens 32 --temperature 0.8 --top-k 40 \
        --top-p 0.95 --seed 0 --backend c

Greedy without --temperature/--top-k/--top-p. The folder needs config.json, the weights
(model.safetensors or a sharded index) and tokenizer.json.
"""
from __future__ import annotations

import argparse
import sys

from mlframework.models import hf


def run(model_dir, prompt: str, max_new_tokens: int = 32, temperature: float | None = None,
        top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
        backend: str | None = None, out=sys.stdout):
    """Generates from `prompt`, writing the text to `out` as it grows; returns the ids
    (prompt included) and the generated text."""
    model = hf.load(model_dir, backend=backend)
    prompt_ids = model.encode(prompt)
    new_ids: list[int] = []
    shown = ""
    out.write(prompt)

    def on_token(token):
        nonlocal shown
        new_ids.append(int(token[0]))
        text = model.decode(new_ids)  # whole-text decoding keeps multi-byte characters whole
        if text.startswith(shown):
            out.write(text[len(shown):])
            out.flush()
            shown = text

    ids = hf.generate(model, prompt_ids, max_new_tokens, temperature=temperature, top_k=top_k,
                      top_p=top_p, seed=seed, on_token=on_token)
    text = model.decode(new_ids)
    out.write(text[len(shown):] + "\n")
    return ids, text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="HuggingFace model folder")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--backend", default=None, help="xla or c (default: $MLF_BACKEND or xla)")
    a = p.parse_args(argv)
    run(a.model, a.prompt, a.max_new_tokens, a.temperature, a.top_k, a.top_p, a.seed,
        a.backend)


if __name__ == "__main__":
    main()
