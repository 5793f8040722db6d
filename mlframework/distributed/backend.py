"""`MeshBackend`: the xla backend compiling each graph as one SPMD program over a `Mesh`.

It runs the graphs of `ContextExec` (what a `Trainer` compiles), whose
arguments are `(variables, *batch)` and results `(outputs, updates)`:

* a variable comes in and goes out with the sharding the mesh's rule gives it
  (by name and shape), so an updated variable stays where it was;
* every other argument is batch-major: split on its first dimension across the
  data axis (a scalar argument is replicated);
* the outputs (loss, metrics, predictions) come out replicated.

Host (NumPy) arguments are placed on the mesh when a step runs: a batch as the
global batch (each process keeps its rows of it), a variable by its rule. A
batch that each process reads only its part of comes as a global array from
`distributed.GlobalBatches`.
"""
from __future__ import annotations

from typing import TypeGuard

import jax
import numpy as np

from mlframework.backends.base import Executable
from mlframework.backends.xla.backend import XlaBackend, interpreter
from mlframework.core.pytree import LEAF, TreeDef
from mlframework.core.shapes import Shape
from mlframework.graph.graph import Graph


class MeshExecutable(Executable):
    """A graph as one `jax.jit` function with explicit input and output shardings."""

    def __init__(self, graph: Graph, donate: tuple[int, ...], in_shardings: list,
                 out_shardings: list):
        self.graph, self.in_shardings, self.out_shardings = graph, in_shardings, out_shardings
        self._fn = jax.jit(interpreter(graph), in_shardings=in_shardings,
                           out_shardings=out_shardings, donate_argnums=donate)
        self._multiprocess = jax.process_count() > 1

    def run(self, buffers: list) -> list:
        return self._fn(*[self._place(b, s) if type(b) is np.ndarray else b
                          for b, s in zip(buffers, self.in_shardings)])

    def _place(self, array: np.ndarray, sharding):
        if self._multiprocess:  # every process holds the whole array and keeps its shards
            return jax.make_array_from_callback(array.shape, sharding, array.__getitem__)
        return jax.device_put(array, sharding)


class MeshBackend(XlaBackend):
    """The xla backend on a mesh (made by `Mesh.backend_for`)."""

    def __init__(self, mesh):
        self.mesh = mesh

    def compile(self, graph: Graph, donate: tuple[int, ...] = ()) -> MeshExecutable:
        """Compiles a `ContextExec` graph with its layout on the mesh.

        Raises:
            UnsupportedOpError: as the xla backend.
            ValueError: the graph does not take (variables, *batch) and return
                (outputs, updates); a batch whose first dimension the mesh's data
                axis does not divide; a sharding rule that does not fit a variable.
        """
        self.check_supported(graph)
        in_shardings, out_shardings = self._layout(graph)
        return MeshExecutable(graph, donate, in_shardings, out_shardings)

    def _layout(self, graph: Graph) -> tuple[list, list]:
        mesh, ins, outs = self.mesh, graph.in_tree, graph.out_tree
        if not (_is_tuple(ins) and ins.children and _is_names(ins.children[0])
                and _is_tuple(outs) and len(outs.children) == 2 and _is_names(outs.children[1])):
            raise ValueError(f"a mesh runs the graphs of ContextExec (a Trainer's), taking "
                             f"(variables, *batch) and returning (outputs, updates); graph "
                             f"{graph.name!r} takes {ins} and returns {outs}")
        names = ins.children[0].keys
        in_shardings = []
        for i, p in enumerate(graph.parameters):
            dims = p.spec.dims
            if i < len(names):
                in_shardings.append(mesh.variable_sharding(names[i], dims))
            elif not dims:
                in_shardings.append(mesh.replicated)
            elif dims[0] % mesh.size:
                raise ValueError(f"{graph.name} takes a batch argument of shape {list(dims)}: "
                                 f"its first dimension {dims[0]} is not divisible by the "
                                 f"{mesh.size} devices of the mesh's data axis; use a global "
                                 f"batch size that is a multiple of {mesh.size}")
            else:
                in_shardings.append(mesh.batch)
        updated = outs.children[1].keys
        first = len(graph.outputs) - len(updated)
        out_shardings = [mesh.replicated] * first + [
            mesh.variable_sharding(n, o.spec.dims) for n, o in zip(updated, graph.outputs[first:])]
        return in_shardings, out_shardings

    def to_device(self, array: np.ndarray, spec: Shape):
        """Host arrays stay on the host until a step places them (it knows where)."""
        return array

    def to_host(self, buffer, spec: Shape) -> np.ndarray:
        """The whole value on this process. A value split across processes is gathered
        from them: a collective, so every process must fetch it (checkpoints do)."""
        if isinstance(buffer, np.ndarray):
            return buffer
        if buffer.is_fully_addressable or buffer.is_fully_replicated:
            return np.asarray(buffer)
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(buffer, tiled=True))

    def __repr__(self) -> str:
        return f"<backend xla on {self.mesh!r}>"


def _is_tuple(tree: TreeDef | None) -> TypeGuard[TreeDef]:
    return tree is not None and tree.kind == "tuple"


def _is_names(tree: TreeDef) -> bool:
    return tree.kind == "dict" and all(c == LEAF for c in tree.children)


__all__ = ["MeshBackend", "MeshExecutable"]
