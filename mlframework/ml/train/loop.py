"""`Loop`: runs train steps over a dataset, with evaluation and callbacks.

    loop = train.Loop(trainer, eval_dataset=test, callbacks=[train.ProgressBar()])
    history = loop.run_epochs(train_ds, 10)

Callbacks are objects with any of `on_start(loop)`, `on_step(loop, step,
results)`, `on_eval(loop, step, scores)`, `on_epoch(loop, epoch)` and
`on_end(loop)`; `loop.stop()` ends the run after the current step.
`loop.history` holds the per-step train losses and every evaluation.
"""
from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any

from mlframework.ml.train.metrics import Mean, MovingAverage
from mlframework.ml.train.trainer import Trainer


class History:
    """What a loop recorded: `steps`/`losses` per train step, `evals` as (step, scores)."""

    def __init__(self):
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.metrics: dict[str, list[float]] = {}
        self.evals: list[tuple[int, dict]] = []


class Loop:
    """Drives a `Trainer`.

    Args:
        trainer: the Trainer.
        eval_dataset: evaluated after every epoch and every `eval_every` steps.
        eval_every: steps between evaluations (None: only at epoch ends).
        callbacks: see the module docstring.
        fetch_every: steps between copies of the loss to the host (1: every
            step; larger values let the backend run ahead).
    """

    def __init__(self, trainer: Trainer, *, eval_dataset: Iterable[Any] | None = None,
                 eval_every: int | None = None, callbacks: Iterable[Any] = (),
                 fetch_every: int = 1):
        self.trainer, self.eval_dataset, self.eval_every = trainer, eval_dataset, eval_every
        self.callbacks = list(callbacks)
        self.fetch_every = max(1, fetch_every)
        self.history = History()
        self.dataset: Iterable[Any] | None = None
        self.total_steps: int | None = None
        self.loss_average = MovingAverage(0.9)
        self.epoch_loss = Mean()
        self._stop = False
        self._step = trainer.step

    def stop(self) -> None:
        """Ends the run after the current step (early stopping uses this)."""
        self._stop = True

    @property
    def step(self) -> int:
        """Steps done so far (the trainer's global step)."""
        return self._step

    def _emit(self, event: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self, *args)

    def _start(self, dataset: Iterable[Any], total: int | None) -> None:
        self.dataset, self.total_steps, self._stop = dataset, total, False
        self._step = self.trainer.step
        self._emit("on_start")

    def _train_one(self, batch) -> None:
        inputs, labels = batch
        results = self.trainer.train_step(inputs, labels)
        self._step += 1
        if self._step % self.fetch_every == 0 or self._stop:
            values = {k: float(v.numpy()) for k, v in results.items()}
            self.history.steps.append(self._step)
            self.history.losses.append(values["loss"])
            for k, v in values.items():
                if k != "loss":
                    self.history.metrics.setdefault(k, []).append(v)
            self.loss_average.update(values["loss"])
            self.epoch_loss.update(values["loss"])
            self._emit("on_step", self._step, values)
        if self.eval_every and self._step % self.eval_every == 0:
            self.evaluate()

    def evaluate(self) -> dict | None:
        """Evaluates on eval_dataset (if any), records and reports the scores."""
        if self.eval_dataset is None:
            return None
        scores = self.trainer.evaluate(self.eval_dataset)
        self.history.evals.append((self._step, scores))
        self._emit("on_eval", self._step, scores)
        return scores

    def run_epochs(self, dataset: Iterable[Any], epochs: int) -> History:
        """`epochs` passes over `dataset` (each `iter(dataset)` is one epoch, or the
        rest of the current one after a restore), evaluating after each."""
        self._start(dataset, epochs * len(dataset) if isinstance(dataset, Sized) else None)
        for epoch in range(epochs):
            self.epoch_loss.reset()
            for batch in dataset:
                self._train_one(batch)
                if self._stop:
                    break
            if not self.eval_every:
                self.evaluate()
            self._emit("on_epoch", epoch)
            if self._stop:
                break
        self._emit("on_end")
        return self.history

    def run_steps(self, dataset: Iterable[Any], steps: int) -> History:
        """`steps` train steps, iterating `dataset` again at each epoch's end."""
        self._start(dataset, steps)
        done = 0
        while done < steps and not self._stop:
            progressed = False
            for batch in dataset:
                self._train_one(batch)
                done += 1
                progressed = True
                if done >= steps or self._stop:
                    break
            if not progressed:
                raise ValueError("run_steps requires a dataset that yields batches")
        self._emit("on_end")
        return self.history


__all__ = ["History", "Loop"]
