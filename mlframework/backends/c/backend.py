"""CBackend: compiles a Graph through the aot passes into a cffi library.

Buffers of this backend are NumPy arrays (to_device/to_host pass them
through). The compiled executable keeps its education hooks: `source` (the
generated C), `fusion_groups` (which graph nodes each kernel holds and why) and
`memory_plan` (buffers, offsets, arena size).
"""
from __future__ import annotations

import os
import threading

import numpy as np

from aot import emit_ops
from aot.loops import FUSIBLE
from aot.pipeline import compile_program
from aot.program import from_graph
from mlframework.backends.base import Backend, Executable
from mlframework.core.shapes import Shape
from mlframework.graph.gen_optypes import Op, OpGroup

SUPPORTED = frozenset(FUSIBLE | OpGroup.REDUCE | emit_ops.SUPPORTED |
                      {Op.DOT_GENERAL, Op.CONV_GENERAL, Op.PARAMETER, Op.CONSTANT, Op.IOTA})


class CExecutable(Executable):
    """A graph compiled to C. `run` takes NumPy arrays and returns NumPy arrays."""

    def __init__(self, graph, compiled):
        import cffi
        self._ffi = cffi.FFI()
        self.graph = graph
        self.compiled = compiled
        self.source: str = compiled.source
        self.memory_plan = compiled.plan
        self.fusion_groups = [
            {"kernel": f"k{t}_{k.name}", "kind": k.kind, "nodes": list(k.nodes),
             "outputs": list(k.outputs), "reason": k.reason}
            for t, k in enumerate(compiled.kernels)]
        prog = compiled.program
        self._params = [prog.values[p] for p in prog.params]
        self._outputs = [prog.values[o] for o in prog.outputs]
        self._consts = np.zeros(max(compiled.plan.const_bytes, 1), np.uint8)
        for vid, b in compiled.plan.buffers.items():
            if b.kind == "const":
                raw = np.ascontiguousarray(prog.values[vid].attrs["value"]).view(np.uint8).reshape(-1)
                self._consts[b.offset:b.offset + raw.size] = raw
        self._arena = _aligned(compiled.plan.arena_bytes)
        self._lock = threading.Lock()
        threads = os.environ.get("MLF_NUM_THREADS")
        if threads and compiled.lib is not None:
            compiled.lib.mlf_run_set_threads(int(threads))

    def run(self, inputs: list) -> list:
        ffi = self._ffi
        arrays = []
        for p, x in zip(self._params, inputs):
            a = np.asarray(x)
            if a.dtype != p.dtype.numpy or a.shape != p.shape:
                a = a.astype(p.dtype.numpy).reshape(p.shape)
            arrays.append(a if a.flags.c_contiguous else np.ascontiguousarray(a))
        plan, outs, first = self.compiled.plan, [], {}
        for o in self._outputs:
            if o.id in first:
                outs.append(None)
                continue
            first[o.id] = len(outs)
            outs.append(np.empty(o.shape, o.dtype.numpy))
        in_ptrs = ffi.new("void*[]", [ffi.cast("void*", a.ctypes.data) for a in arrays] or [ffi.NULL])
        out_ptrs = ffi.new("void*[]", [ffi.cast("void*", a.ctypes.data) if a is not None else ffi.NULL
                                       for a in outs] or [ffi.NULL])
        with self._lock:
            status = self.compiled.lib.mlf_run(in_ptrs, out_ptrs,
                                               ffi.cast("char*", self._arena.ctypes.data),
                                               ffi.cast("char*", self._consts.ctypes.data))
        if status != 0:
            raise RuntimeError(f"generated code for {self.graph.name!r} returned status {status}")
        for k, o in enumerate(self._outputs):
            b = plan.buffers.get(o.id)
            if outs[k] is None:
                outs[k] = outs[first[o.id]].copy()
            elif b is None or b.kind in ("input", "const"):
                if o.op is Op.PARAMETER:
                    outs[k] = arrays[self.compiled.program.params.index(o.id)].copy()
                else:
                    outs[k] = np.array(o.attrs["value"], o.dtype.numpy).reshape(o.shape)
        return outs


def _aligned(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + max(nbytes, 1)]


class CBackend(Backend):
    name = "c"

    def supported_ops(self) -> frozenset[Op]:
        return SUPPORTED

    def compile(self, graph, donate: tuple[int, ...] = ()) -> CExecutable:
        self.check_supported(graph)
        return CExecutable(graph, compile_program(from_graph(graph)))

    def to_device(self, array: np.ndarray, spec: Shape):
        array = np.asarray(array)
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def to_host(self, buffer, spec: Shape) -> np.ndarray:
        return np.asarray(buffer)
