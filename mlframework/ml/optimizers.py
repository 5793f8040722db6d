"""Optimizers: SGD (momentum, Nesterov), Adam, AdamW, RMSProp, Adagrad, Lion.

An optimizer builds the update inside the train graph:
`optimizer.apply(ctx, params, grads)` assigns each parameter's new value and
advances the context's `global_step`. Its state (moments, accumulators)
lives in the context as non-trainable variables named
`optimizer/<name>/<slot>/<variable>`, so checkpoints carry it.

Every optimizer takes `learning_rate` (a float, a schedule from
`schedules`, or None to read the `learning_rate` hyperparameter from the
context), `clip_norm` (clip gradients by their global norm first) and
`weight_decay`. Update rules follow PyTorch's `torch.optim` (weight decay added
to the gradient for SGD, Adam, RMSProp and Adagrad; decoupled for AdamW and
Lion).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mlframework import graph as G
from mlframework.ml import initializers as inits
from mlframework.ml.context import GLOBAL_STEP, OPTIMIZER_SCOPE, Context
from mlframework.ml.schedules import Schedule


def global_norm(grads: Iterable[G.Node]) -> G.Node:
    """sqrt of the sum of squares of every gradient."""
    return G.sqrt(sum(G.reduce_sum(G.square(g)) for g in grads))


def clip_by_global_norm(grads: dict, max_norm: float) -> dict:
    """Scales all gradients by max_norm / max(global_norm, max_norm)."""
    norm = global_norm(list(grads.values()))
    scale = max_norm / G.max(norm, max_norm)
    return {k: g * G.convert(scale, g.dtype) for k, g in grads.items()}


class Optimizer:
    """Base class: subclasses define `name`, `default_learning_rate` and `update`."""

    name = "optimizer"
    default_learning_rate = 1e-3

    def __init__(self, learning_rate: float | Schedule | None = None, *,
                 clip_norm: float | None = None, weight_decay: float = 0.0):
        self._learning_rate = learning_rate
        self.clip_norm, self.weight_decay = clip_norm, weight_decay

    def learning_rate(self, ctx: Context, step: G.Node) -> G.Node:
        """The rate at `step` (int32 node): a schedule, a float, or the context's hyperparameter."""
        lr = self._learning_rate
        if lr is None:
            lr = ctx.get_param("learning_rate", self.default_learning_rate)
        rate = lr(step) if callable(lr) else G.const(np.float32(lr))
        return G.convert(rate, np.float32)

    def apply(self, ctx: Context, params: dict, grads: dict) -> None:
        """Assigns every parameter (name -> node) its updated value; advances global_step."""
        root = ctx.at_root()
        step = root.global_step()
        lr = self.learning_rate(root, step)
        if self.clip_norm is not None:
            grads = clip_by_global_norm(grads, self.clip_norm)
        t = G.convert(step + 1, np.float32)
        state = root / OPTIMIZER_SCOPE / self.name
        for name in sorted(params):
            p, g = params[name], grads[name]
            new = self.update(_Slots(state, name, p), p, g, G.convert(lr, p.dtype), t)
            root.assign(name, new)
        root.assign(GLOBAL_STEP, step + 1)

    def update(self, slots: _Slots, p: G.Node, g: G.Node, lr: G.Node, t: G.Node) -> G.Node:
        """The new value of parameter p given its gradient g, at update number t (1-based).

        Each optimizer overrides this; the base class has no update rule of its own.
        """
        raise NotImplementedError(f"{type(self).__name__} must define update()")


class _Slots:
    """The optimizer state of one parameter: slots created as zeros (or `init`)."""

    def __init__(self, ctx, name: str, like):
        self.ctx, self.name, self.like = ctx, name, like

    def get(self, slot: str, init=None):
        return (self.ctx / slot).node(self.name, self.like.shape, self.like.dtype,
                                      init or inits.zeros(), trainable=False)

    def set(self, slot: str, value) -> None:
        (self.ctx / slot).assign(self.name, value)


class SGD(Optimizer):
    """p -= lr * d, with d = g (+ momentum buffer, Nesterov), as torch.optim.SGD."""

    name, default_learning_rate = "sgd", 1e-2

    def __init__(self, learning_rate: float | Schedule | None = None, *, momentum: float = 0.0,
                 nesterov: bool = False, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, slots: _Slots, p: G.Node, g: G.Node, lr: G.Node, t: G.Node) -> G.Node:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = self.momentum * slots.get("momentum") + g
            slots.set("momentum", buf)
            g = g + self.momentum * buf if self.nesterov else buf
        return p - lr * g


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam (weight decay added to g)."""

    name = "adam"

    def __init__(self, learning_rate: float | Schedule | None = None, *, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def _decay(self, p, g, lr):
        return p, g + self.weight_decay * p if self.weight_decay else g

    def update(self, slots: _Slots, p: G.Node, g: G.Node, lr: G.Node, t: G.Node) -> G.Node:
        p, g = self._decay(p, g, lr)
        m = self.beta1 * slots.get("m") + (1 - self.beta1) * g
        v = self.beta2 * slots.get("v") + (1 - self.beta2) * G.square(g)
        slots.set("m", m)
        slots.set("v", v)
        t = G.convert(t, p.dtype)
        correction1 = 1 - G.pow(G.const(self.beta1, p.dtype), t)
        correction2 = 1 - G.pow(G.const(self.beta2, p.dtype), t)
        denom = G.sqrt(v) / G.sqrt(correction2) + self.epsilon
        return p - (lr / correction1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay first), as torch.optim.AdamW."""

    name = "adamw"

    def __init__(self, learning_rate: float | Schedule | None = None, *, weight_decay: float = 0.01,
                 **kwargs: Any):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)

    def _decay(self, p, g, lr):
        return (p * (1 - lr * self.weight_decay) if self.weight_decay else p), g


class RMSProp(Optimizer):
    """v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps), as torch.optim.RMSprop
    (optionally centered and with momentum)."""

    name, default_learning_rate = "rmsprop", 1e-2

    def __init__(self, learning_rate: float | Schedule | None = None, *, alpha: float = 0.99,
                 epsilon: float = 1e-8, momentum: float = 0.0, centered: bool = False,
                 **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.alpha, self.epsilon, self.momentum, self.centered = alpha, epsilon, momentum, centered

    def update(self, slots: _Slots, p: G.Node, g: G.Node, lr: G.Node, t: G.Node) -> G.Node:
        if self.weight_decay:
            g = g + self.weight_decay * p
        v = self.alpha * slots.get("square_avg") + (1 - self.alpha) * G.square(g)
        slots.set("square_avg", v)
        if self.centered:
            mean = self.alpha * slots.get("grad_avg") + (1 - self.alpha) * g
            slots.set("grad_avg", mean)
            v = v - G.square(mean)
        step = g / (G.sqrt(v) + self.epsilon)
        if self.momentum:
            step = self.momentum * slots.get("momentum") + step
            slots.set("momentum", step)
        return p - lr * step


class Adagrad(Optimizer):
    """s += g^2; p -= lr g / (sqrt(s) + eps), as torch.optim.Adagrad."""

    name, default_learning_rate = "adagrad", 1e-2

    def __init__(self, learning_rate: float | Schedule | None = None, *, epsilon: float = 1e-10,
                 initial_accumulator_value: float = 0.0, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.epsilon, self.initial = epsilon, initial_accumulator_value

    def update(self, slots: _Slots, p: G.Node, g: G.Node, lr: G.Node, t: G.Node) -> G.Node:
        if self.weight_decay:
            g = g + self.weight_decay * p
        s = slots.get("sum", inits.constant(self.initial)) + G.square(g)
        slots.set("sum", s)
        return p - lr * g / (G.sqrt(s) + self.epsilon)


class Lion(Optimizer):
    """Lion (Chen et al. 2023): p -= lr (sign(b1 m + (1 - b1) g) + wd p); m = b2 m + (1 - b2) g."""

    name, default_learning_rate = "lion", 1e-4

    def __init__(self, learning_rate: float | Schedule | None = None, *, beta1: float = 0.9,
                 beta2: float = 0.99, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.beta1, self.beta2 = beta1, beta2

    def update(self, slots: _Slots, p: G.Node, g: G.Node, lr: G.Node, t: G.Node) -> G.Node:
        m = slots.get("m")
        direction = G.sign(self.beta1 * m + (1 - self.beta1) * g)
        slots.set("m", self.beta2 * m + (1 - self.beta2) * g)
        if self.weight_decay:
            p = p * (1 - lr * self.weight_decay)
        return p - lr * direction


__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Lion", "Optimizer", "RMSProp",
           "clip_by_global_norm", "global_norm"]
