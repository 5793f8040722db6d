"""The training stack: context, layers, losses, optimizers, train loop, checkpoints, datasets.

    from mlframework import ml
    from mlframework.ml import layers, losses, optimizers, train

    def model(ctx, x):
        x = layers.dense(ctx / "hidden", x, 64, activation="relu")
        return layers.dense(ctx / "logits", x, 10)

    ctx = ml.Context(seed=0)
    trainer = train.Trainer(backend, ctx, model, losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(1e-3), metrics={"accuracy": train.accuracy})
"""
from mlframework.ml import (checkpoints, datasets, initializers, layers, losses, optimizers,
                            remat, schedules, train)
from mlframework.ml.context import Context, Variable, VariableError
from mlframework.ml.context_exec import ContextExec

__all__ = ["Context", "ContextExec", "Variable", "VariableError", "checkpoints", "datasets",
           "initializers", "layers", "losses", "optimizers", "remat", "schedules", "train"]
