"""Learning-rate schedules: `schedule(step) -> learning rate`, with `step` the
int32 count of updates done so far (a node in the train graph).

    opt = optimizers.Adam(schedules.warmup_cosine(1e-3, warmup_steps=100, decay_steps=1000))
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlframework import graph as G

Schedule = Callable[[G.Node], G.Node]
"""A learning rate by step: the int32 step node in, a float32 scalar node out."""


def _f(step):
    return G.convert(step, np.float32)


def constant(value: float) -> Schedule:
    """The same rate at every step."""
    return lambda step: G.const(np.float32(value))


def linear_warmup(value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """init_value + (value - init_value) * min(step / warmup_steps, 1)."""
    def schedule(step):
        frac = G.min(_f(step) / float(max(warmup_steps, 1)), 1.0)
        return init_value + (value - init_value) * frac
    return schedule


def cosine_decay(value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """value * ((1 - alpha) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2 + alpha)."""
    def schedule(step):
        frac = G.min(_f(step), float(decay_steps)) / float(decay_steps)
        return value * ((1 - alpha) * 0.5 * (1 + G.cos(math.pi * frac)) + alpha)
    return schedule


def exponential_decay(value: float, decay_rate: float, decay_steps: int,
                      staircase: bool = False) -> Schedule:
    """value * decay_rate ** (step / decay_steps) (the exponent floored with `staircase`)."""
    def schedule(step):
        exponent = _f(step) / float(decay_steps)
        if staircase:
            exponent = G.floor(exponent)
        return value * G.exp(exponent * math.log(decay_rate))
    return schedule


def warmup_cosine(value: float, warmup_steps: int, decay_steps: int, alpha: float = 0.0,
                  init_value: float = 0.0) -> Schedule:
    """Linear warm-up for `warmup_steps`, then cosine decay over `decay_steps`."""
    warm = linear_warmup(value, warmup_steps, init_value)
    decay = cosine_decay(value, decay_steps, alpha)
    return lambda step: G.where(step < warmup_steps, warm(step), decay(step - warmup_steps))


__all__ = ["constant", "cosine_decay", "exponential_decay", "linear_warmup", "warmup_cosine"]
