"""Metrics: in-graph functions of (labels, outputs) and host-side accumulators.

In-graph metrics have the signature of losses, `metric(labels, outputs, *,
mask=None) -> scalar node` (a mean over the batch), so the Trainer computes
them inside the train and eval graphs. `Mean` and `MovingAverage` accumulate
the values fetched from those graphs on the host.
"""
from __future__ import annotations

import numpy as np

from mlframework import graph as G
from mlframework.graph import Node
from mlframework.graph.graph import Operand
from mlframework.ml.losses import reduce_loss


def accuracy(labels: Operand, logits: Node, *, mask: Operand | None = None) -> Node:
    """Fraction of examples whose arg-max class equals the integer label (or the
    arg-max of one-hot labels of the logits' shape)."""
    predicted = G.argmax(logits, -1)
    labels = G.const(labels)
    if labels.shape == logits.shape:
        labels = G.argmax(labels, -1)
    correct = G.convert(G.eq(predicted, G.convert(labels, predicted.dtype)), np.float32)
    return reduce_loss(correct, mask=mask)


def binary_accuracy(labels: Operand, logits: Node, *, threshold: float = 0.0,
                    mask: Operand | None = None) -> Node:
    """Fraction of elements where (logits > threshold) equals labels > 0.5."""
    predicted = logits > threshold
    correct = G.convert(G.eq(G.convert(predicted, np.float32),
                             G.convert(G.const(labels) > 0.5, np.float32)), np.float32)
    return reduce_loss(correct, mask=mask)


class Mean:
    """The mean of the values added (optionally weighted)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.weight = 0.0, 0.0

    def update(self, value: float, weight: float = 1.0) -> None:
        self.total += float(value) * weight
        self.weight += weight

    def result(self) -> float:
        return self.total / self.weight if self.weight else float("nan")


class MovingAverage:
    """An exponential moving average with bias correction: decay in [0, 1)."""

    def __init__(self, decay: float = 0.95):
        self.decay = decay
        self.reset()

    def reset(self) -> None:
        self.value, self.count = 0.0, 0

    def update(self, value: float) -> None:
        self.count += 1
        self.value = self.decay * self.value + (1 - self.decay) * float(value)

    def result(self) -> float:
        if not self.count:
            return float("nan")
        return self.value / (1 - self.decay ** self.count)


__all__ = ["Mean", "MovingAverage", "accuracy", "binary_accuracy"]
