"""Training: `Trainer` (one compiled step), `Loop` (epochs, evaluation, callbacks),
metrics, progress bar, plots, early stopping and periodic checkpoints.

Gradient checkpointing: wrap blocks of the model in `remat.checkpoint`
(re-exported here as `recompute`); the Trainer's gradients recompute them.
"""
from mlframework.ml.remat import checkpoint as recompute
from mlframework.ml.train.callbacks import EarlyStopping, ProgressBar, SaveCheckpoints
from mlframework.ml.train.loop import History, Loop
from mlframework.ml.train.metrics import Mean, MovingAverage, accuracy, binary_accuracy
from mlframework.ml.train.plot import Plot, plot_history
from mlframework.ml.train.trainer import Trainer

__all__ = ["EarlyStopping", "History", "Loop", "Mean", "MovingAverage", "Plot", "ProgressBar",
           "SaveCheckpoints", "Trainer", "accuracy", "binary_accuracy", "plot_history",
           "recompute"]
