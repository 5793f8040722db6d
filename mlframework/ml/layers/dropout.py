"""Dropout, drawing its mask from the context's random state."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph import Node
from mlframework.ml.context import Context


def dropout(ctx: Context, x: Node, rate: float) -> Node:
    """Zeroes each element with probability `rate` and scales the rest by 1 / (1 - rate),
    in training graphs only; elsewhere x is returned unchanged."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout requires 0 <= rate < 1, got {rate}")
    if not ctx.training or rate == 0:
        return x
    keep = G.uniform(ctx.random_key(), x.shape, x.dtype) >= rate
    return G.where(keep, x * (1 / (1 - rate)), G.zeros_like(x))


__all__ = ["dropout"]
