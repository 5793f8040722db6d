"""Dense (fully connected) layer."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.core import symbolic
from mlframework.graph import Node
from mlframework.ml import initializers as inits
from mlframework.ml.context import Context
from mlframework.ml.initializers import Initializer
from mlframework.ml.layers.activations import activation as _activation
from mlframework.ml.layers.arguments import check_context, check_node, check_size


def dense(ctx: Context, x: Node, units: int, *, use_bias: bool = True,
          activation: str | None = None, kernel_initializer: Initializer | None = None,
          bias_initializer: Initializer | None = None) -> Node:
    """x @ weights + biases over the last axis: [..., in] -> [..., units].

    Creates `dense/weights` [in, units] (Glorot uniform) and `dense/biases`
    [units] (zeros) under ctx's scope; `activation` names one of
    `layers.ACTIVATIONS`.

    Raises:
        TypeError: ctx is not a Context, x not a node or units not an int.
        ValueError: x is a scalar or units < 1.
    """
    check_context("dense", ctx)
    check_node("dense", "x", x, min_rank=1)
    units = check_size("dense", "units", units)
    ctx = ctx / "dense"
    features = symbolic.static(x.shape[-1], "dense's input features x.shape[-1]")
    w = ctx.node("weights", (features, units), x.dtype,
                 kernel_initializer or inits.glorot_uniform())
    y = G.dot_general(x, w, [x.ndim - 1], [0])
    if use_bias:
        y = y + ctx.node("biases", (units,), x.dtype, bias_initializer or inits.zeros())
    return _activation(activation, y)


__all__ = ["dense"]
