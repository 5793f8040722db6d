"""Embedding lookup."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.core.dtypes import DTypeSpec
from mlframework.graph import Node
from mlframework.ml import initializers as inits
from mlframework.ml.context import Context
from mlframework.ml.initializers import Initializer
from mlframework.ml.layers.arguments import check_context, check_node, check_size


def embedding(ctx: Context, ids: Node, vocab_size: int, dim: int, *, dtype: DTypeSpec = "float32",
              initializer: Initializer | None = None) -> Node:
    """Rows of `embedding/table` [vocab_size, dim] at integer `ids`: [*ids.shape, dim].

    The table starts Normal(0, 0.02); out-of-range ids are clamped.

    Raises:
        TypeError: ctx is not a Context, ids not an integer node, sizes not ints.
        ValueError: vocab_size or dim < 1.
    """
    check_context("embedding", ctx)
    check_node("embedding", "ids", ids)
    vocab_size = check_size("embedding", "vocab_size", vocab_size)
    dim = check_size("embedding", "dim", dim)
    if not ids.dtype.is_int:
        raise TypeError(f"embedding requires integer ids, got {ids.spec}")
    table = (ctx / "embedding").node("table", (vocab_size, dim), dtype,
                                    initializer or inits.random_normal(0.02))
    return G.take(table, ids, axis=0)


__all__ = ["embedding"]
