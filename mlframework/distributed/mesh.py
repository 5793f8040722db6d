"""`Mesh`: the devices a Trainer runs one SPMD train step on, and how variables lie on them.

    mesh = distributed.Mesh()                                   # every device of every process
    mesh = distributed.Mesh(jax.devices()[:2], variables=distributed.fsdp(min_size=0))
    trainer = train.Trainer(backends.new("xla"), ctx, model, loss, opt, mesh=mesh)

The devices form one axis, `data`: every batch is split on its first
dimension across it, each variable (and its optimizer state) is replicated
or split on one dimension as the `variables` rule says (see
`distributed.sharding`). The train step stays one `jax.jit` program;
XLA's SPMD partitioner inserts the collectives (the gradient all-reduce,
the gathers of sharded variables), so the project has none of its own.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from mlframework.distributed.sharding import DATA, Rule, check_spec, fsdp
from mlframework.graph.exec import Compiler

if TYPE_CHECKING:
    from mlframework.distributed.backend import MeshBackend


class MeshNotSupportedError(ValueError):
    """A backend other than "xla" was given a mesh."""


class Mesh:
    """A one-axis ("data") device mesh with a per-variable sharding rule.

    Args:
        devices: the devices, in mesh order (default: `jax.devices()`, every
            process's, so after `distributed.initialize()` the mesh spans the job).
        variables: `rule(name, shape, axis_size) -> spec` (see `distributed.sharding`);
            default `fsdp()`: variables of 2**18 elements or more are sharded,
            smaller ones replicated.
    """

    def __init__(self, devices: Sequence[Any] | None = None, *, variables: Rule | None = None):
        devices = list(jax.devices() if devices is None else devices)
        if not devices:
            raise ValueError("Mesh requires at least one device")
        self.devices = devices
        self.jax_mesh = jax.sharding.Mesh(np.array(devices, dtype=object), (DATA,))
        self.rule = variables or fsdp()
        self.replicated = NamedSharding(self.jax_mesh, PartitionSpec())
        self.batch = NamedSharding(self.jax_mesh, PartitionSpec(DATA))
        self._variables: dict[tuple, NamedSharding] = {}
        self._backend: MeshBackend | None = None

    @property
    def size(self) -> int:
        """The number of devices on the data axis."""
        return len(self.devices)

    def variable_sharding(self, name: str, shape: tuple[int, ...]) -> NamedSharding:
        """Where variable `name` of `shape` lives (the rule's choice, checked).

        Raises:
            ValueError: the rule's spec does not fit the variable (see `check_spec`).
        """
        key = (name, tuple(shape))
        sharding = self._variables.get(key)
        if sharding is None:
            spec = check_spec(name, key[1], self.rule(name, key[1], self.size), self.size)
            sharding = self._variables[key] = NamedSharding(self.jax_mesh, PartitionSpec(*spec))
        return sharding

    def backend_for(self, backend: Compiler | None) -> MeshBackend:
        """The mesh's backend for `backend` (one per mesh: Tensors it made stay valid).

        Raises:
            MeshNotSupportedError: for any backend but "xla"; the c backend runs one
                graph on this machine's CPU threads and cannot split it across devices.
        """
        from mlframework.backends.xla.backend import XlaBackend
        if not isinstance(backend, XlaBackend):
            name = getattr(backend, "name", type(backend).__name__)
            raise MeshNotSupportedError(
                f"the {name!r} backend cannot take a mesh: it runs each graph on this "
                "machine's CPU threads, one device only. Train on several devices or "
                "processes with the 'xla' backend (mlf.backends.new('xla')), or leave out "
                "mesh= to train on one device (docs/distributed.md)")
        if self._backend is None:
            from mlframework.distributed.backend import MeshBackend
            self._backend = MeshBackend(self)
        return self._backend

    def __repr__(self) -> str:
        kinds = sorted({d.platform for d in self.devices})
        return f"<Mesh data={self.size} ({', '.join(kinds)}) variables={self.rule.__name__}>"


__all__ = ["Mesh", "MeshNotSupportedError"]
