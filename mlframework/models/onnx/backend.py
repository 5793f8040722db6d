"""mlframework as an `onnx.backend.base.Backend`, the interface ONNX's own backend
test suite (`onnx.backend.test`) drives.

    from mlframework.models.onnx import backend
    rep = backend.prepare(model, "CPU", backend="c")   # else $MLF_BACKEND, else "xla"
    outputs = rep.run([x])                             # a tuple of NumPy arrays

A model of an opset below 13 is first converted to opset 13 by
`onnx.version_converter`. The model is imported when it is run, with the shapes
of the given inputs fixing its dynamic dimensions, and compiled once per input
signature. An input that an operator needs at import time (a Reshape's shape fed
as a graph input) is bound to its value: the model is then imported again with
that input as a constant (`load_model(..., constant_inputs=...)`), and compiled
per value.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

import mlframework as mlf
from mlframework import graph as G
from mlframework.models.onnx.importer import MIN_OPSET, ImportedModel, opset_of, read_model
from mlframework.models.onnx.node import ImportTimeValueError


class MlframeworkRep(BackendRep):
    """A prepared model: `run(inputs)` imports, compiles (cached) and runs it."""

    def __init__(self, proto: onnx.ModelProto, backend_name: str | None):
        self.proto = _upgraded(proto)
        self.backend = mlf.backends.new(backend_name)
        initializers = {t.name for t in proto.graph.initializer}
        self.input_names = [i.name for i in proto.graph.input if i.name not in initializers]
        self._cache: dict = {}

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            inputs = [inputs[n] for n in self.input_names]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        arrays = [np.asarray(x) for x in inputs]
        if len(arrays) != len(self.input_names):
            raise ValueError(f"the model takes {len(self.input_names)} inputs "
                             f"{self.input_names}, got {len(arrays)}")
        key = tuple((a.dtype.str, a.shape) for a in arrays)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._compile(arrays)
        exe, bound = entry
        if bound:
            bound_key = key + tuple(arrays[i].tobytes() for i in bound)
            exe = self._cache.get(bound_key)
            if exe is None:
                exe = self._cache[bound_key] = self._compile_bound(arrays, bound)
        runtime = [a for i, a in enumerate(arrays) if i not in bound]
        outs = exe(*runtime)
        outs = outs if isinstance(outs, tuple) else (outs,)
        return tuple(o.numpy() for o in outs)

    def _compile(self, arrays):
        """(executable, []) when the inputs can all be run-time values, else (None, the
        positions of the inputs to bind): those named by ImportTimeValueErrors, or,
        when a needed value is computed from inputs, every integer input."""
        bound: list[int] = []
        while True:
            try:
                model = self._import(arrays, bound)
            except ImportTimeValueError as e:
                if e.value_name in self.input_names and \
                        self.input_names.index(e.value_name) not in bound:
                    bound.append(self.input_names.index(e.value_name))
                    continue
                ints = [i for i, a in enumerate(arrays) if a.dtype.kind in "iub"]
                if set(ints) <= set(bound):
                    raise
                bound = sorted(set(bound) | set(ints))
                continue
            if bound:
                return None, sorted(bound)
            return G.Exec(self.backend, model, name=_name(self.proto)), []

    def _import(self, arrays, bound) -> ImportedModel:
        constants = {self.input_names[i]: arrays[i] for i in bound}
        shapes = {n: a.shape for n, a in zip(self.input_names, arrays) if n not in constants}
        return ImportedModel(self.proto, shapes, constants)

    def _compile_bound(self, arrays, bound):
        return G.Exec(self.backend, self._import(arrays, bound), name=_name(self.proto))


def _upgraded(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A model of an opset below MIN_OPSET converted to MIN_OPSET by onnx's version
    converter (as the importer's error suggests); the model itself when it fails."""
    if opset_of(proto) >= MIN_OPSET:
        return proto
    try:
        return onnx.version_converter.convert_version(proto, MIN_OPSET)
    except Exception:  # noqa: BLE001 - the converter raises many kinds; import then explains
        return proto


def _name(proto) -> str:
    return "".join(c if c.isalnum() else "_" for c in (proto.graph.name or "onnx"))


class MlframeworkBackend(Backend):
    """The ONNX backend interface over mlframework's backends ("xla", "c")."""

    @classmethod
    def prepare(cls, model, device: str = "CPU", backend: str | None = None, **kwargs):
        """A representation of `model` (ModelProto, path or bytes) to run on `backend`
        (a mlframework backend name; default $MLF_BACKEND, else "xla").

        Raises:
            ValueError: for a device other than CPU.
        """
        if not cls.supports_device(device):
            raise ValueError(f"mlframework runs ONNX models on CPU, got device {device!r}")
        return MlframeworkRep(read_model(model), backend)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", backend: str | None = None,
                  **kwargs):
        return cls.prepare(model, device, backend).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU",  # type: ignore[override]
                 outputs_info=None, backend: str | None = None, **kwargs):
        # (onnx types **kwargs as dict[str, Any] values, which no extra keyword matches)
        """Runs one NodeProto on `inputs` (NumPy arrays, in the node's input order)."""
        from onnx import helper

        from mlframework.models.onnx import dtypes
        from mlframework.models.onnx.importer import MAX_OPSET

        present = [n for n in node.input if n]
        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [helper.make_tensor_value_info(n, dtypes.to_onnx(a.dtype), a.shape)
                        for n, a in zip(present, arrays)]
        graph = helper.make_graph([node], "node", graph_inputs,
                                  [helper.make_empty_tensor_value_info(o) for o in node.output
                                   if o])
        opset = kwargs.get("opset_version", MAX_OPSET)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        return cls.run_model(model, arrays, device, backend)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().startswith("CPU")


def on(name: str) -> type[MlframeworkBackend]:
    """The Backend class running on mlframework backend `name` ("xla", "c") whatever
    `backend=` its callers pass: what `onnx.backend.test.BackendTest` takes."""
    class Bound(MlframeworkBackend):
        @classmethod
        def prepare(cls, model, device: str = "CPU", backend=None, **kwargs):
            return super().prepare(model, device, name)
    Bound.__name__ = Bound.__qualname__ = f"MlframeworkBackend_{name}"
    return Bound


prepare = MlframeworkBackend.prepare
run_model = MlframeworkBackend.run_model
run_node = MlframeworkBackend.run_node
supports_device = MlframeworkBackend.supports_device
