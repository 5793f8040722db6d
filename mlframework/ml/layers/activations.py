"""Activation functions by name, for layers that take `activation="relu"`."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph import Node

ACTIVATIONS = {
    "relu": G.relu,
    "leaky_relu": G.leaky_relu,
    "gelu": G.gelu,
    "gelu_tanh": lambda x: G.gelu(x, approximate=True),
    "silu": G.silu,
    "swish": G.silu,
    "sigmoid": G.sigmoid,
    "tanh": G.tanh,
    "softplus": G.softplus,
    "softmax": lambda x: G.softmax(x, axis=-1),
}


def activation(name: str | None, x: Node) -> Node:
    """Applies the activation called `name` to x (None or "linear": x itself).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name is None or name in ("linear", "none", "identity"):
        return x
    fn = ACTIVATIONS.get(name)
    if fn is None:
        raise ValueError(f"activation requires one of {', '.join(sorted(ACTIVATIONS))}, "
                         f"got {name!r}")
    return fn(x)


relu, leaky_relu, gelu, silu, sigmoid, tanh, softplus, softmax = (
    G.relu, G.leaky_relu, G.gelu, G.silu, G.sigmoid, G.tanh, G.softplus, G.softmax)

__all__ = ["ACTIVATIONS", "activation", "gelu", "leaky_relu", "relu", "sigmoid", "silu",
           "softmax", "softplus", "tanh"]
