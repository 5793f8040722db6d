"""Losses: `loss(labels, predictions, *, weights=None, mask=None) -> scalar node`.

Each loss computes a per-example value (elementwise for regression losses;
with the class axis reduced for cross-entropies) and returns its mean:

    sum(loss * weights * mask) / sum(mask)      (sum(mask) is the element count without a mask)

`weights` and `mask` broadcast against the per-example losses, aligned on the
leading axes (a [batch] mask applies to [batch, features] losses). A batch
whose mask is all false gives 0.
"""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph import Node
from mlframework.graph.graph import Operand


def _align(x, like):
    x = G.convert(G.const(x) if not isinstance(x, G.Node) else x, like.dtype)
    if x.ndim < like.ndim:
        x = G.reshape(x, (*x.shape, *(1,) * (like.ndim - x.ndim)))
    return G.broadcast_to(x, like.shape)


def reduce_loss(per_example: Node, weights: Operand | None = None,
                mask: Operand | None = None) -> Node:
    """The weighted, masked mean of per-example losses (see the module docstring)."""
    loss = per_example
    if weights is not None:
        loss = loss * _align(weights, loss)
    if mask is None:
        return G.mean(loss)
    m = _align(mask, loss)
    return G.reduce_sum(loss * m) / G.max(G.reduce_sum(m), 1.0)


def mean_squared_error(labels: Operand, predictions: Node, *, weights: Operand | None = None,
                       mask: Operand | None = None) -> Node:
    """mean((predictions - labels) ** 2)."""
    return reduce_loss(G.square(predictions - labels), weights, mask)


def mean_absolute_error(labels: Operand, predictions: Node, *, weights: Operand | None = None,
                        mask: Operand | None = None) -> Node:
    """mean(|predictions - labels|)."""
    return reduce_loss(G.abs(predictions - labels), weights, mask)


def huber(labels: Operand, predictions: Node, *, delta: float = 1.0, weights: Operand | None = None,
          mask: Operand | None = None) -> Node:
    """0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta); e = predictions - labels."""
    e = G.abs(predictions - labels)
    quad = G.min(e, delta)
    return reduce_loss(0.5 * quad * quad + delta * (e - quad), weights, mask)


def binary_cross_entropy(labels: Operand, probabilities: Node, *, weights: Operand | None = None,
                         mask: Operand | None = None) -> Node:
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 (as PyTorch's BCELoss)."""
    p, y = probabilities, G.const(labels)
    log_p, log_q = G.max(G.log(p), -100.0), G.max(G.log1p(-p), -100.0)
    return reduce_loss(-(y * log_p + (1 - y) * log_q), weights, mask)


def binary_cross_entropy_logits(labels: Operand, logits: Node, *, weights: Operand | None = None,
                                mask: Operand | None = None) -> Node:
    """Binary cross-entropy of sigmoid(logits), computed stably."""
    x = logits
    per = G.max(x, 0.0) - x * labels + G.log1p(G.exp(-G.abs(x)))
    return reduce_loss(per, weights, mask)


def categorical_cross_entropy_logits(labels: Operand, logits: Node, *, axis: int = -1,
                                     weights: Operand | None = None,
                                     mask: Operand | None = None) -> Node:
    """-sum(labels * log_softmax(logits)) along `axis`; labels are distributions."""
    per = -G.reduce_sum(labels * G.log_softmax(logits, axis=axis), axis)
    return reduce_loss(per, weights, mask)


def categorical_cross_entropy(labels: Operand, probabilities: Node, *, axis: int = -1,
                              epsilon: float = 1e-7, weights: Operand | None = None,
                              mask: Operand | None = None) -> Node:
    """-sum(labels * log(max(probabilities, epsilon))) along `axis`."""
    per = -G.reduce_sum(labels * G.log(G.max(probabilities, epsilon)), axis)
    return reduce_loss(per, weights, mask)


def sparse_categorical_cross_entropy_logits(labels: Operand, logits: Node, *,
                                            weights: Operand | None = None,
                                            mask: Operand | None = None) -> Node:
    """Cross-entropy of integer class `labels` [...] against `logits` [..., classes]."""
    onehot = G.one_hot(labels, logits.shape[-1], logits.dtype)
    per = -G.reduce_sum(onehot * G.log_softmax(logits, axis=-1), -1)
    return reduce_loss(per, weights, mask)


def sparse_categorical_cross_entropy(labels: Operand, probabilities: Node, *, epsilon: float = 1e-7,
                                     weights: Operand | None = None,
                                     mask: Operand | None = None) -> Node:
    """Cross-entropy of integer class `labels` against `probabilities` [..., classes]."""
    onehot = G.one_hot(labels, probabilities.shape[-1], probabilities.dtype)
    per = -G.reduce_sum(onehot * G.log(G.max(probabilities, epsilon)), -1)
    return reduce_loss(per, weights, mask)


mse, mae = mean_squared_error, mean_absolute_error

__all__ = ["binary_cross_entropy", "binary_cross_entropy_logits", "categorical_cross_entropy",
           "categorical_cross_entropy_logits", "huber", "mae", "mean_absolute_error",
           "mean_squared_error", "mse", "reduce_loss", "sparse_categorical_cross_entropy",
           "sparse_categorical_cross_entropy_logits"]
