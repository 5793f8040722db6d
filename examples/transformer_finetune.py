"""Fine-tune a small GPT-2-shaped HuggingFace checkpoint on a small text with the Trainer,
then save it as a HuggingFace folder (model.safetensors) that `transformers` loads back.

    .venv/bin/python examples/transformer_finetune.py --model path/to/gpt2-folder \
        --out runs/gpt2-finetuned --steps 300 [--text FILE] [--backend c]

The folder needs config.json, the weights and tokenizer.json. Without --text it trains on
the opening of Lewis Carroll's "Alice's Adventures in Wonderland" (public domain). Each
step is one batch of random windows of the tokenized text, next-token cross-entropy,
Adam; the imported model trains without dropout. A random GPT-2-shaped checkpoint to
start from can be made with transformers:

    GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4)).save_pretrained(DIR)

(plus a tokenizer.json whose vocabulary fits the config's vocab_size).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mlframework.ml import losses, optimizers, train
from mlframework.models import hf

TEXT = """Alice was beginning to get very tired of sitting by her sister on the bank, and of
having nothing to do: once or twice she had peeped into the book her sister was reading,
but it had no pictures or conversations in it, "and what is the use of a book," thought
Alice "without pictures or conversations?" So she was considering in her own mind (as well
as she could, for the hot day made her feel very sleepy and stupid), whether the pleasure
of making a daisy-chain would be worth the trouble of getting up and picking the daisies,
when suddenly a White Rabbit with pink eyes ran close by her. There was nothing so very
remarkable in that; nor did Alice think it so very much out of the way to hear the Rabbit
say to itself, "Oh dear! Oh dear! I shall be late!" (when she thought it over afterwards,
it occurred to her that she ought to have wondered at this, but at the time it all seemed
quite natural); but when the Rabbit actually took a watch out of its waistcoat-pocket, and
looked at it, and then hurried on, Alice started to her feet, for it flashed across her
mind that she had never before seen a rabbit with either a waistcoat-pocket, or a watch
to take out of it, and burning with curiosity, she ran across the field after it, and
fortunately was just in time to see it pop down a large rabbit-hole under the hedge.
"""


def batches(ids: np.ndarray, batch_size: int, seq_len: int, seed: int):
    """Endless (inputs, labels) int32 [batch, seq_len] pairs of random windows of ids;
    labels are the inputs shifted by one token."""
    rng = np.random.default_rng(seed)
    if len(ids) <= seq_len + 1:
        raise ValueError(f"the text has {len(ids)} tokens; windows of {seq_len} need more")
    while True:
        starts = rng.integers(0, len(ids) - seq_len - 1, batch_size)
        window = np.stack([ids[s:s + seq_len + 1] for s in starts]).astype(np.int32)
        yield window[:, :-1], window[:, 1:]


def run(model_dir, out_dir, steps: int = 300, batch_size: int = 8, seq_len: int = 32,
        learning_rate: float = 3e-3, text: str = TEXT, backend=None, seed: int = 0,
        log_every: int = 0):
    """Fine-tunes the model in model_dir and saves it to out_dir; returns (model, losses
    per step)."""
    model = hf.load(model_dir, backend=backend)
    ids = np.asarray(model.encode(text), np.int32)
    trainer = train.Trainer(model.backend, model.ctx, model.function,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(learning_rate))
    history = []
    for step, (x, y) in zip(range(steps), batches(ids, batch_size, seq_len, seed)):
        history.append(float(trainer.train_step(x, y)["loss"].numpy()))
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}: loss {np.mean(history[-log_every:]):.3f}")
    model.save_pretrained(out_dir)
    return model, history


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="HuggingFace GPT-2-shaped model folder")
    p.add_argument("--out", required=True, help="folder for the fine-tuned model")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--text", default=None, help="a UTF-8 text file (default: built in)")
    p.add_argument("--backend", default=None, help="xla or c (default: $MLF_BACKEND or xla)")
    a = p.parse_args(argv)
    text = Path(a.text).read_text(encoding="utf-8") if a.text else TEXT
    _, history = run(a.model, a.out, a.steps, a.batch_size, a.seq_len, a.learning_rate, text,
                     a.backend, log_every=50)
    print(f"loss {history[0]:.3f} -> {np.mean(history[-10:]):.3f}; saved {a.out}")


if __name__ == "__main__":
    main()
