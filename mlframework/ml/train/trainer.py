"""`Trainer`: one compiled graph per train step, variables kept on the backend.

    trainer = train.Trainer(backend, ctx, model, losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(1e-3), metrics={"accuracy": train.accuracy})
    results = trainer.train_step(inputs, labels)     # {"loss": Tensor, "accuracy": Tensor}
    scores = trainer.evaluate(test_dataset)          # {"loss": float, "accuracy": float}

The train step is one graph: the model's forward pass, the loss, the
gradients (`remat.grad`, so blocks wrapped in `remat.checkpoint` are
recomputed) and the optimizer update. Every variable of the context (weights,
optimizer state, step counter, RNG state) is an input and an output of that
graph; their buffers are donated, so the backend may update them in place,
and they stay on the backend between steps.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from mlframework import graph as G
from mlframework.core import pytree
from mlframework.graph.exec import Compiler
from mlframework.ml import remat
from mlframework.ml.context import GLOBAL_STEP, Context
from mlframework.ml.context_exec import ContextExec
from mlframework.ml.optimizers import Optimizer

if TYPE_CHECKING:
    from mlframework.distributed.mesh import Mesh


def _accepts_mask(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "mask" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Trainer:
    """Compiles and runs train, eval and predict graphs for `model(ctx, inputs)`.

    Args:
        backend: from `mlf.backends.new()`; None traces only (what `aotc` exports).
        ctx: holds the variables; created on the first step.
        model: `model(ctx, inputs) -> outputs` (inputs: a node or pytree).
        loss: `loss(labels, outputs) -> scalar node` (accepting `mask=` lets
            `evaluate` pad the last batch instead of compiling another graph).
        optimizer: from `optimizers`.
        metrics: name -> `metric(labels, outputs, mask=None)` (see `train.metrics`).
        mesh: a `distributed.Mesh`: every step runs as one SPMD program on its
            devices, batches split on the `data` axis, variables and optimizer state
            replicated or sharded by the mesh's rule (docs/distributed.md). Batch
            sizes must be multiples of the mesh's size. Only the "xla" backend
            takes one (`distributed.MeshNotSupportedError` otherwise).
    """

    def __init__(self, backend: Compiler | None, ctx: Context, model: Callable[..., Any],
                 loss: Callable[..., G.Node], optimizer: Optimizer, *,
                 metrics: dict[str, Callable[..., G.Node]] | None = None, mesh: Mesh | None = None):
        if mesh is not None:
            backend = mesh.backend_for(backend)
        self.mesh = mesh
        self.backend, self.ctx, self.model = backend, ctx, model
        self.loss, self.optimizer = loss, optimizer
        self.metrics = dict(metrics or {})
        self._train = ContextExec(backend, ctx, self.build_train_step, training=True,
                                  donate_variables=True, name="train_step")
        self._eval = ContextExec(backend, ctx, self._eval_step, name="eval_step")
        self._predict = ContextExec(backend, ctx, lambda c, x: model(c, x), name="predict")

    # ---- graphs ----

    def build_train_step(self, ctx: Context, inputs: Any, labels: Any) -> dict:
        """Builds one train step's nodes while tracing: forward, loss, gradients and
        the optimizer update (assigned into ctx's variables). Returns
        {"loss": node, metric: node}. `aotc export --train` traces this too."""
        outputs = self.model(ctx, inputs)
        loss = self.loss(labels, outputs)
        root = ctx.at_root()
        names = [v.name for v in root.trainable_variables()]
        params = {n: root.value(n) for n in names}
        grads = remat.grad(loss, [params[n] for n in names])
        self.optimizer.apply(ctx, params, dict(zip(names, grads)))
        results = {"loss": loss}
        for name, metric in self.metrics.items():
            results[name] = G.stop_gradient(metric(labels, outputs))
        return results

    def _eval_step(self, ctx, inputs, labels, mask=None):
        outputs = self.model(ctx, inputs)
        kw = {} if mask is None else {"mask": mask}
        first = pytree.flatten(labels)[0][0]  # the batch may be symbolic: counted at run time
        count = G.dim_value(G.const(first).shape[0], np.float32) if mask is None else \
            G.reduce_sum(G.convert(mask, np.float32))
        sums = {"loss": self.loss(labels, outputs, **kw) * count}
        for name, metric in self.metrics.items():
            sums[name] = metric(labels, outputs, **kw) * count
        return sums, count

    # ---- running ----

    def train_step(self, inputs: Any, labels: Any) -> dict:
        """Runs one step; returns {"loss": Tensor, metric: Tensor} (still on the backend)."""
        return self._train(inputs, labels)

    @property
    def step(self) -> int:
        """The number of steps done (the context's global_step; 0 before the first)."""
        try:
            return int(self.ctx.at_root().get_variable(GLOBAL_STEP).numpy())
        except KeyError:
            return 0

    def predict(self, inputs: Any) -> Any:
        """The model's outputs in inference mode (a Tensor or pytree of Tensors)."""
        return self._predict(inputs)

    def evaluate(self, dataset: Iterable[tuple[Any, Any]]) -> dict[str, float]:
        """Loss and metrics over one pass of `dataset` (batches of (inputs, labels)),
        weighted by batch size. A short last batch is padded and masked when the
        loss and metrics accept `mask=`, so one graph serves every batch."""
        maskable = _accepts_mask(self.loss) and all(map(_accepts_mask, self.metrics.values()))
        totals: dict[str, float] = {}
        count, size = 0.0, None
        for inputs, labels in dataset:
            n = labels_count(labels)
            size = size or n
            if maskable:
                mask = np.arange(size) < n
                inputs, labels = _pad(inputs, size), _pad(labels, size)
                sums, c = self._eval(inputs, labels, mask)
            else:
                sums, c = self._eval(inputs, labels)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v.numpy())
            count += float(c.numpy())
        if not count:
            raise ValueError("evaluate requires a dataset with at least one batch")
        return {k: v / count for k, v in totals.items()}


def labels_count(labels: Any) -> int:
    """The batch size: the first dimension of the (first) labels array."""
    leaves, _ = pytree.flatten(labels)
    first = leaves[0]
    return int(first.shape[0] if hasattr(first, "shape") else np.shape(first)[0])


def _pad(tree, size: int):
    leaves, treedef = pytree.flatten(tree)
    padded = []
    for a in leaves:
        a = np.asarray(a)
        if a.shape[0] < size:
            a = np.concatenate([a, np.zeros((size - a.shape[0], *a.shape[1:]), a.dtype)])
        padded.append(a)
    return pytree.unflatten(treedef, padded)


__all__ = ["Trainer", "labels_count"]
