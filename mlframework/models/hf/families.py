"""What every model family shares: its config errors, activations, and the family record.

A family module (gpt2, bert, llama) exposes a `FAMILY`: the `model_type` names it
reads, whether it is a causal decoder or an encoder, `read_config(raw, weights)`
building its config, `params(cfg)` listing the tensors it needs, and
`forward(cfg, ctx, ids, positions, ...)` tracing the model over graph nodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mlframework import graph as G


class UnsupportedModelError(ValueError):
    """A config names a model type or an option this importer does not implement."""


# HuggingFace `hidden_act` / `activation_function` names -> graph functions
ACTIVATIONS = {
    "gelu": G.gelu,
    "gelu_new": lambda x: G.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: G.gelu(x, approximate=True),
    "relu": G.relu,
    "silu": G.silu,
    "swish": G.silu,
}


def activation(name: str, key: str):
    """The graph function of HF activation `name` (read from config key `key`)."""
    if name not in ACTIVATIONS:
        raise UnsupportedModelError(f"config {key}={name!r} is not supported; supported: "
                                    f"{', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def refuse(raw: dict, key: str, allowed, what: str) -> None:
    """Raises UnsupportedModelError when config `key` is set to a value not in `allowed`."""
    if key in raw and raw[key] not in allowed:
        raise UnsupportedModelError(f"config {key}={raw[key]!r} ({what}) is not supported")


def base_prefix(weights, probe: str, prefixes: tuple[str, ...]) -> str:
    """The prefix (e.g. "transformer.", "model.", "") under which `probe` is stored."""
    for prefix in prefixes:
        if prefix + probe in weights:
            return prefix
    names = weights.names()
    raise UnsupportedModelError(
        f"the checkpoint has no tensor {probe!r} under any of the prefixes "
        f"{', '.join(repr(p) for p in prefixes)}; its first tensors: {', '.join(names[:5])}")


def select_position(x, last):
    """x[:, last] for x [batch, seq, dim] and an int32 scalar node `last`: [batch, dim]."""
    b, _, d = x.shape
    zero = G.const(np.zeros((), np.int32))
    return G.reshape(G.dynamic_slice(x, [zero, last, zero], [b, 1, d]), (b, d))


@dataclass(frozen=True)
class Family:
    """One model family: see the module docstring."""

    name: str
    model_types: tuple[str, ...]
    causal: bool
    read_config: Callable
    params: Callable
    forward: Callable


__all__ = ["ACTIVATIONS", "Family", "UnsupportedModelError", "activation", "base_prefix",
           "refuse", "select_position"]
