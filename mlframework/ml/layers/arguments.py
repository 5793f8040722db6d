"""Checks of the arguments every layer takes: the context, the input node and sizes.

Each raises at the call, naming the layer, the argument and what it got, so that a
swapped or mistyped argument fails in the user's line rather than inside the graph.
"""
from __future__ import annotations

from mlframework.graph import Node
from mlframework.ml.context import Context


def check_context(layer: str, ctx) -> None:
    """Raises TypeError unless `ctx` is a Context (the first argument of every layer)."""
    if not isinstance(ctx, Context):
        raise TypeError(f"layers.{layer}(ctx, x, ...) requires a Context first, got "
                        f"{type(ctx).__name__}; pass the model's ctx (or ctx / 'name')")


def check_node(layer: str, name: str, x, min_rank: int = 0) -> None:
    """Raises TypeError unless `x` is a graph node, ValueError if its rank < `min_rank`."""
    if not isinstance(x, Node):
        raise TypeError(f"layers.{layer} requires {name} as a graph node (a traced value), got "
                        f"{type(x).__name__}; layers run inside a function traced by "
                        "ContextExec or Trainer")
    if x.ndim < min_rank:
        raise ValueError(f"layers.{layer} requires {name} of rank >= {min_rank}, got {x.spec}")


def check_size(layer: str, name: str, value) -> int:
    """`value` as an int; raises TypeError for a non-integer, ValueError for one below 1."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"layers.{layer} requires {name} as a positive int, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"layers.{layer} requires {name} >= 1, got {value}")
    return int(value)


def check_number(layer: str, name: str, value, low: float, high: float | None = None) -> float:
    """`value` as a float in [low, high] (high None: no upper bound); raises TypeError for
    a non-number, ValueError outside the range."""
    if isinstance(value, bool) or not isinstance(value, int | float) and \
            not hasattr(value, "__float__"):
        raise TypeError(f"layers.{layer} requires {name} as a number, got {value!r}")
    value = float(value)
    if not value >= low or (high is not None and not value <= high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"layers.{layer} requires {name} {bounds}, got {value}")
    return value


def check_sizes(layer: str, name: str, values):
    """`values`, an int or a sequence of ints, each checked by `check_size`: an int or a
    tuple of ints, as given."""
    if isinstance(values, tuple | list):
        return tuple(check_size(layer, name, v) for v in values)
    return check_size(layer, name, values)
