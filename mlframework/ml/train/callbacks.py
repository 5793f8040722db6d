"""Loop callbacks: progress bar, early stopping, periodic checkpoints."""
from __future__ import annotations

import math
import time
from typing import Any

from mlframework.ml.checkpoints import Checkpointer
from mlframework.ml.train.loop import Loop


class ProgressBar:
    """A tqdm bar showing the step, the (smoothed) loss and steps per second.

    Args:
        every: steps between refreshes of the loss shown.
    """

    def __init__(self, every: int = 1, **tqdm_kwargs: Any):
        self.every, self.kwargs = every, tqdm_kwargs
        self.bar: Any = None  # the tqdm bar, from on_start on

    def on_start(self, loop: Loop) -> None:
        from tqdm.auto import tqdm
        self.bar = tqdm(total=loop.total_steps, unit="step", dynamic_ncols=True, **self.kwargs)
        self._t0, self._done = time.perf_counter(), 0

    def on_step(self, loop: Loop, step: int, results: dict) -> None:
        self._done += loop.fetch_every
        self.bar.update(loop.fetch_every)
        if step % self.every == 0:
            rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
            self.bar.set_postfix(step=step, loss=f"{loop.loss_average.result():.4f}",
                                 steps_per_s=f"{rate:.1f}", refresh=False)

    def on_eval(self, loop: Loop, step: int, scores: dict) -> None:
        text = " ".join(f"{k}={v:.4f}" for k, v in scores.items())
        self.bar.write(f"step {step}: eval {text}", file=self.kwargs.get("file"))

    def on_end(self, loop: Loop) -> None:
        if self.bar is not None:
            self.bar.close()


class EarlyStopping:
    """Stops the loop when `monitor` (an eval score) has not improved by `min_delta`
    for `patience` evaluations. `best` and `best_step` record the best score."""

    def __init__(self, monitor: str = "loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping requires mode 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_step: int | None = None
        self.waited = 0
        self.stopped_at: int | None = None

    def on_eval(self, loop: Loop, step: int, scores: dict) -> None:
        if self.monitor not in scores:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, but the evaluation "
                           f"gives {', '.join(scores)}")
        value = scores[self.monitor]
        better = (value < self.best - self.min_delta if self.mode == "min"
                  else value > self.best + self.min_delta)
        if better:
            self.best, self.best_step, self.waited = value, step, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.stopped_at = step
            loop.stop()


class SaveCheckpoints:
    """Saves a checkpoint every `every` steps (if given), after each epoch and at the end.

    The checkpoint's `extra` holds the dataset position (`dataset` key) when the
    loop's dataset has `state()`, so training resumes on the next batch.
    """

    def __init__(self, checkpointer: Checkpointer, every: int | None = None,
                 each_epoch: bool = True, at_end: bool = True):
        self.checkpointer, self.every = checkpointer, every
        self.each_epoch, self.at_end = each_epoch, at_end
        self._last = None

    def _save(self, loop) -> None:
        if self._last == loop.step:
            return
        extra = {}
        if hasattr(loop.dataset, "state"):
            extra["dataset"] = loop.dataset.state()
        self.checkpointer.save(loop.trainer.ctx, loop.step, extra)
        self._last = loop.step

    def on_step(self, loop: Loop, step: int, results: dict) -> None:
        if self.every and step % self.every == 0:
            self._save(loop)

    def on_epoch(self, loop: Loop, epoch: int) -> None:
        if self.each_epoch:
            self._save(loop)

    def on_end(self, loop: Loop) -> None:
        if self.at_end:
            self._save(loop)


__all__ = ["EarlyStopping", "ProgressBar", "SaveCheckpoints"]
