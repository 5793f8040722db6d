"""`GlobalBatches`: every process reads only its rows of each global batch.

    ds = datasets.InMemory((x, y), batch_size=64, shuffle=True, seed=0, drop_remainder=True)
    batches = distributed.GlobalBatches(ds, mesh)    # batch_size is the global batch
    train.Loop(trainer).run_steps(batches, 1000)

The stream of global batches is the dataset's (a pure function of its seed
and position, the same on every process); each process gathers only the rows
that the mesh's devices of this process hold, and
`jax.make_array_from_process_local_data` joins the parts into one global
array per leaf, split on the `data` axis. `state()`/`restore()` save and set
this process's position (with `distributed.Checkpointer`, each process's
state is saved and given back to it).
"""
from __future__ import annotations

from typing import Any

import jax

from mlframework.core import pytree
from mlframework.core.dtypes import as_dtype
from mlframework.core.shapes import make
from mlframework.core.tensors import Tensor
from mlframework.distributed.mesh import Mesh
from mlframework.ml.datasets import InMemory, Prefetch


class GlobalBatches:
    """The batches of `dataset` (an `InMemory`) as global arrays on `mesh`.

    Args:
        dataset: `datasets.InMemory`; its batch_size is the global batch size, a
            multiple of the mesh's size, with `drop_remainder=True` unless the
            batch size divides the dataset (every batch must split evenly).
        mesh: the `distributed.Mesh` of the Trainer.

    Raises:
        ValueError: the batch size does not split evenly across the mesh.
    """

    def __init__(self, dataset: InMemory, mesh: Mesh):
        size = dataset.batch_size
        if size % mesh.size or (not dataset.drop_remainder and dataset.size % size):
            raise ValueError(f"GlobalBatches requires every batch to split evenly over the "
                             f"{mesh.size} devices of the mesh: batch_size {size} must be a "
                             f"multiple of {mesh.size}, and drop_remainder=True unless it "
                             f"divides the {dataset.size} examples")
        self.dataset, self.mesh = dataset, mesh
        self.backend = mesh.backend_for(_xla())
        self.rows = _process_rows(mesh.batch, size)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def batches_per_epoch(self) -> int:
        return self.dataset.batches_per_epoch

    def prefetch(self, buffer: int = 2) -> Prefetch:
        """These batches read (and placed on the mesh) ahead by a background thread."""
        return Prefetch(self, buffer)

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def state(self) -> dict:
        """This process's position (JSON-serializable), with its rank and the job's size."""
        return dict(self.dataset.state(), process=jax.process_index(),
                    processes=jax.process_count())

    def restore(self, state: dict) -> None:
        """Moves to a position saved by `state()` on the process of the same rank.

        Raises:
            ValueError: the state was saved by a job of another size or another rank.
        """
        saved = (state.get("process", 0), state.get("processes", 1))
        if saved != (jax.process_index(), jax.process_count()):
            raise ValueError(f"GlobalBatches.restore got the state of process {saved[0]} of "
                             f"{saved[1]}, this is process {jax.process_index()} of "
                             f"{jax.process_count()}")
        self.dataset.restore(state)

    def __iter__(self):
        ds = self.dataset
        position = ds.state()["position"]
        end = None if ds.repeat else (ds.epoch + 1) * ds.batches_per_epoch
        while end is None or position < end:
            batch = self.batch(position)
            position += 1
            ds.restore({"position": position})
            yield batch

    def batch(self, position: int) -> Any:
        """The global batch at `position`: a pytree of Tensors holding global arrays."""
        local = self.dataset.batch(position, self.rows)
        leaves, tree = pytree.flatten(local)
        size = self.dataset.batch_size
        out = []
        for a in leaves:
            shape = (size, *a.shape[1:])
            array = jax.make_array_from_process_local_data(self.mesh.batch, a, shape)
            out.append(Tensor.on_backend(self.backend, array, make(as_dtype(a.dtype), *shape)))
        return pytree.unflatten(tree, out)


def _process_rows(sharding, size: int) -> slice:
    """The rows of a [size, ...] global batch that this process's devices hold."""
    spans = {idx[0].indices(size)[:2] for idx in
             sharding.addressable_devices_indices_map((size,)).values()}
    lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
    if sum(e - s for s, e in spans) != hi - lo:
        raise ValueError(f"this process's devices hold rows {sorted(spans)} of the batch, "
                         "which are not contiguous; order the mesh's devices by process")
    return slice(lo, hi)


def _xla():
    from mlframework import backends
    return backends.new("xla")


__all__ = ["GlobalBatches"]
