"""The backend contract: what every backend (xla, c, ...) provides.

A backend compiles a `Graph` into an `Executable`, and moves arrays between
the host (NumPy) and its own buffers. `supported_ops` lists the primitives it
implements; compiling a graph with any other op raises `UnsupportedOpError`.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from mlframework.core.shapes import Shape
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Graph


class UnsupportedOpError(NotImplementedError):
    """A graph uses ops that a backend does not implement."""


class Executable(abc.ABC):
    """A compiled graph. `run` takes and returns flat lists, in graph order."""

    @abc.abstractmethod
    def run(self, inputs: list) -> list:
        """Runs the graph and returns output buffers of this backend.

        `inputs` has one entry per parameter: a buffer of this backend or a
        NumPy array of the parameter's shape (the backend copies it in).
        """


class Backend(abc.ABC):
    """Compiles graphs and owns buffers. Subclasses set `name`."""

    name: str = ""

    @abc.abstractmethod
    def supported_ops(self) -> frozenset[Op]:
        """The primitives this backend can compile."""

    @abc.abstractmethod
    def compile(self, graph: Graph, donate: tuple[int, ...] = ()) -> Executable:
        """Compiles `graph`; parameters listed in `donate` may be overwritten by the run.

        Raises:
            UnsupportedOpError: naming every op of the graph this backend lacks.
        """

    @abc.abstractmethod
    def to_device(self, array: np.ndarray, spec: Shape) -> Any:
        """Copies a host array into a buffer of this backend."""

    @abc.abstractmethod
    def to_host(self, buffer: Any, spec: Shape) -> np.ndarray:
        """Copies a buffer of this backend into a host array."""

    def check_supported(self, graph: Graph) -> None:
        """Raises UnsupportedOpError if `graph` uses an op this backend lacks."""
        supported = {o.value for o in self.supported_ops()}
        missing = sorted({n.op.value for n in graph.nodes} - supported)
        if missing:
            raise UnsupportedOpError(f"backend {self.name!r} does not implement "
                                     f"{', '.join(missing)} (used by graph {graph.name!r}); "
                                     "see docs/ops.md for each backend's ops")

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
