"""`Checkpointer` for a job of several processes: process 0 writes, every process restores.

    ckpt = distributed.Checkpointer("runs/mlp", keep=3)
    info = ckpt.restore(ctx)                 # on every process; None if there is none
    ds.restore(info.extra["dataset"])        # this process's own extra
    loop = train.Loop(trainer, callbacks=[train.SaveCheckpoints(ckpt, every=100)])

`save` is collective: every process calls it at the same step (the Loop's
callbacks do). Each process's `extra` (its dataset position) is gathered to
process 0, variables split across processes are gathered, and process 0
writes the checkpoint atomically (`ml.checkpoints`: a checkpoint exists once
its JSON does); then every process waits at a barrier, so none runs ahead of
a checkpoint that is not yet on disk. The directory must be one that every
process sees (a shared filesystem on a cluster).

`restore` runs on every process: the processes agree on the checkpoint
(process 0's latest), each loads it strictly (`ml.checkpoints.restore`) and
gets back its own `extra`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from mlframework.distributed.runtime import barrier
from mlframework.ml import checkpoints
from mlframework.ml.checkpoints import CheckpointError, CheckpointInfo
from mlframework.ml.context import Context


class Checkpointer(checkpoints.Checkpointer):
    """`ml.checkpoints.Checkpointer` for every process of a job (one process works too)."""

    def save(self, ctx: Context, step: int | None = None, extra: dict | None = None) -> Path:
        """Saves ctx with each process's `extra`; returns the JSON's path (on every process).

        Raises:
            TypeError: `extra` is not JSON-serializable.
        """
        extras = _gather_json(extra or {})
        for v in ctx.at_root().variables():
            v.numpy()  # every process takes part in gathering a variable split across them
        path = None
        if jax.process_index() == 0:
            path = super().save(ctx, step, {"processes": extras})
        barrier(f"mlframework checkpoint {self.directory}")
        return path or self._path(ctx, step)

    def restore(self, ctx: Context, path: str | os.PathLike | None = None, *,
                strict: bool = True) -> CheckpointInfo | None:
        """Loads `path`, or process 0's latest checkpoint, on every process; None if none.

        `info.extra` is this process's own `extra`.

        Raises:
            CheckpointError: as `ml.checkpoints.restore`; the checkpoint was saved by a
                job with another number of processes; process 0 has a checkpoint that
                this process cannot see (the directory is not shared).
        """
        latest = path or self.latest()
        chosen = _gather_json(None if latest is None else str(latest))[0]
        if chosen is None:
            return None
        info = checkpoints.restore(ctx, chosen, strict=strict)
        extras = info.extra.get("processes")
        if not isinstance(extras, list) or len(extras) != jax.process_count():
            saved = len(extras) if isinstance(extras, list) else "an unknown number of"
            raise CheckpointError(f"checkpoint {info.path} was saved by {saved} processes, "
                                  f"this job has {jax.process_count()}; resume it with as "
                                  "many (or restore its variables with ml.checkpoints)")
        info.extra = extras[jax.process_index()]
        return info

    def _path(self, ctx, step):
        if step is None:
            from mlframework.ml.context import GLOBAL_STEP
            step = int(ctx.at_root().get_variable(GLOBAL_STEP).numpy())
        return self.directory / f"{self.prefix}-{step:08d}.json"


def _gather_json(value) -> list:
    """`value` (JSON-serializable) of every process, in rank order."""
    if jax.process_count() == 1:
        return [json.loads(json.dumps(value))]
    from jax.experimental import multihost_utils
    blob = np.frombuffer(json.dumps(value).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([blob.size], np.int64))
    padded = np.zeros(int(np.max(sizes)), np.uint8)
    padded[:blob.size] = blob
    blobs = multihost_utils.process_allgather(padded)
    return [json.loads(bytes(b[:int(n)]).decode()) for b, n in
            zip(np.asarray(blobs).reshape(len(sizes), -1), np.asarray(sizes).reshape(-1))]


__all__ = ["Checkpointer"]
