"""Plots of a loop's history, saved as PNG with matplotlib."""
from __future__ import annotations

import os
from pathlib import Path

from mlframework.ml.train.loop import History, Loop


def plot_history(history: History, path: str | os.PathLike, title: str = "training") -> Path:
    """Writes the train loss per step and every evaluation score to `path` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted({k for _, scores in history.evals for k in scores} - {"loss"})
    fig, axes = plt.subplots(1, 1 + bool(names), figsize=(6 + 5 * bool(names), 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(history.steps, history.losses, label="train loss", lw=1)
    if history.evals:
        ax.plot([s for s, _ in history.evals], [e["loss"] for _, e in history.evals], "o-",
                label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    if names:
        ax = axes[0][1]
        for name in names:
            ax.plot([s for s, _ in history.evals], [e[name] for _, e in history.evals], "o-",
                    label=f"eval {name}")
        for name, values in history.metrics.items():
            ax.plot(history.steps[-len(values):], values, lw=0.5, alpha=0.6,
                    label=f"train {name}")
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class Plot:
    """A loop callback that saves `plot_history` to `path` at the end (and every
    `every` evaluations, if given)."""

    def __init__(self, path: str | os.PathLike, every: int | None = None, title: str = "training"):
        self.path, self.every, self.title, self._evals = Path(path), every, title, 0

    def on_eval(self, loop: Loop, step: int, scores: dict) -> None:
        self._evals += 1
        if self.every and self._evals % self.every == 0:
            plot_history(loop.history, self.path, self.title)

    def on_end(self, loop: Loop) -> None:
        plot_history(loop.history, self.path, self.title)


__all__ = ["Plot", "plot_history"]
