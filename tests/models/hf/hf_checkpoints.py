"""Tiny random-weight HuggingFace checkpoints, built once per test session with
`transformers` (PyTorch CPU) and `save_pretrained`, shared between pytest-xdist workers.

Every weight, bias and norm scale is perturbed with Normal(0, 0.1) noise after
transformers' initialization (which zeroes biases and sets norm scales to one), so
that a bias or scale read wrongly changes the logits, and random greedy generations do
not collapse to one repeated token.
"""
from __future__ import annotations

from pathlib import Path

import session_artifacts
from session_artifacts import cached

VOCAB = 96
GPT2 = dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
            bos_token_id=None, eos_token_id=None)
LLAMA = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
             bos_token_id=None, eos_token_id=None, pad_token_id=None)
BERT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)

# name -> (transformers model class, config class, config keywords, storage dtype,
#          save_pretrained keywords)
CHECKPOINTS = {
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", GPT2, "float32", {}),
    "gpt2-untied-f16": ("GPT2LMHeadModel", "GPT2Config",
                        {**GPT2, "n_head": 2, "n_inner": 48, "activation_function": "gelu",
                         "tie_word_embeddings": False}, "float16", {}),
    "llama-gqa": ("LlamaForCausalLM", "LlamaConfig", LLAMA, "float32", {}),
    "llama-tied-bf16": ("LlamaForCausalLM", "LlamaConfig",
                        {**LLAMA, "num_key_value_heads": 4, "head_dim": 16,
                         "tie_word_embeddings": True, "rope_theta": 500.0,
                         "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
                        "bfloat16", {}),
    "mistral-mqa-f16": ("MistralForCausalLM", "MistralConfig",
                        {**LLAMA, "num_key_value_heads": 1, "sliding_window": None},
                        "float16", {}),
    "qwen2-bias": ("Qwen2ForCausalLM", "Qwen2Config",
                   {**LLAMA, "tie_word_embeddings": True}, "float32", {}),
    "bert": ("BertModel", "BertConfig", BERT, "float32", {}),
    "bert-sharded-f16": ("BertModel", "BertConfig", {**BERT, "hidden_act": "gelu_new"},
                         "float16", {"max_shard_size": "40KB"}),
}
DECODERS = [k for k in CHECKPOINTS if not k.startswith("bert")]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def shared_root(tmp_path_factory) -> Path:
    return session_artifacts.shared_root(tmp_path_factory, "hf-checkpoints")


def build(name: str, path: Path) -> None:
    import torch
    import transformers
    model_class, config_class, kw, dtype, save_kw = CHECKPOINTS[name]
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**kw))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.to(getattr(torch, dtype)).save_pretrained(path, **save_kw)


def checkpoint(root: Path, name: str) -> Path:
    return cached(root, name, lambda p: build(name, p))


def reference(path: Path):
    """The checkpoint loaded by transformers in float32, in eval mode."""
    import json

    import torch
    import transformers
    model_class = json.loads((path / "config.json").read_text())["architectures"][0]
    return getattr(transformers, model_class).from_pretrained(path, dtype=torch.float32).eval()


def build_text_gpt2(path: Path) -> None:
    """A tiny GPT-2 with a byte-level BPE tokenizer.json trained on the fine-tuning
    example's text (its vocabulary is the model's)."""
    import sys

    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    sys.path.insert(0, str(EXAMPLES))
    from transformer_finetune import TEXT
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"], show_progress=False))
    tok.save(str(path / "tokenizer.json"))
    torch.manual_seed(0)
    config = transformers.GPT2Config(**{**GPT2, "vocab_size": tok.get_vocab_size(),
                                        "n_positions": 128})
    transformers.GPT2LMHeadModel(config).save_pretrained(path)


def text_gpt2(root: Path) -> Path:
    return cached(root, "gpt2-text", build_text_gpt2)
