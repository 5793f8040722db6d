"""Shared helpers for the training-stack tests."""
from __future__ import annotations

import numpy as np

from mlframework.core import pytree
from mlframework.ml import Context, ContextExec


def run_ctx(backend, fn, *args, ctx: Context | None = None, training: bool = False):
    """Runs fn(ctx, *args) once on `backend`; returns (NumPy outputs, ctx)."""
    ctx = ctx or Context(seed=0)
    out = ContextExec(backend, ctx, fn, training=training)(*args)
    return pytree.tree_map(lambda t: t.numpy(), out), ctx


def var(ctx: Context, name: str) -> np.ndarray:
    return ctx.at_root().get_variable(name).numpy()
