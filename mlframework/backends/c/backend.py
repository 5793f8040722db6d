"""CBackend: compiles a Graph through the aot passes into a cffi library.

Buffers of this backend are NumPy arrays (to_device/to_host pass them
through). The compiled executable keeps its education hooks: `source` (the
generated C), `fusion_groups` (which graph nodes each kernel holds and why) and
`memory_plan` (buffers, offsets, arena size).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np

from aot.build.compiler import library_ffi
from aot.build.pipeline import compile_program
from aot.codegen import single_ops
from aot.program.program import from_graph
from aot.program.walk import FUSIBLE
from mlframework.backends.base import Backend, Executable
from mlframework.core import symbolic
from mlframework.core.shapes import Shape
from mlframework.graph.gen_optypes import Op, OpGroup

# libgomp spins ~300K iterations (milliseconds) at every barrier by default. On shared or
# oversubscribed CPUs (this project's 2-vCPU VM while other jobs run) a spinning thread holds
# the core its descheduled partner needs: a 2.3 ms MLP train step measured 112 ms. Passive
# waiting costs a futex wake-up per parallel region, 20-45 us on this VM. A bounded spin of
# 1000 iterations (~30 us) keeps back-to-back regions cheap (0.6 us) and wastes at most that
# much per wait under load (measured: MLP step no slower than passive with two busy loops).
# It must be set before libgomp loads (with the first compiled library); a user's own
# setting wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

# Holders of a donated input array, other than `run` itself, that still let it be updated
# in place: the caller's (its Tensor, or its own name for it) and the list it came in
# (Exec's inputs, or the caller's). A user who also kept the array (`tensor.numpy()`, a
# second name) makes three: then the output goes to another array.
_IN_PLACE_HOLDERS = 2
PROBE_MIN_S = 100e-6  # calls shorter than this keep their thread count (no probing)
SUPPORTED = frozenset(FUSIBLE | OpGroup.REDUCE | single_ops.SUPPORTED | OpGroup.CONTROL |
                      {Op.DOT_GENERAL, Op.CONV_GENERAL, Op.PARAMETER, Op.CONSTANT, Op.IOTA})


class CExecutable(Executable):
    """A graph compiled to C. `run` takes NumPy arrays and returns NumPy arrays.

    `donate`: parameter positions whose arrays the caller gives up. An output of the same
    dtype and shape then takes the array donated in the previous call, once nobody else
    holds it, instead of a fresh one (a train step's new weights land in the last step's
    old ones: no allocation and no page faults per step).
    """

    def __init__(self, graph, compiled, donate: tuple[int, ...] = ()):
        self._ffi = library_ffi(compiled.lib)
        if self._ffi is None:  # no library, or one built elsewhere (the kernel profiler's)
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
                raw = np.ascontiguousarray(prog.values[vid].attrs["value"])
                raw = raw.view(np.uint8).reshape(-1)
                self._consts[b.offset:b.offset + raw.size] = raw
        self._arena = _aligned(compiled.plan.arena_bytes)
        self._lock = threading.Lock()
        threads = os.environ.get("MLF_NUM_THREADS")
        if threads and compiled.lib is not None:
            compiled.lib.mlf_run_set_threads(int(threads))
        self._governor = None if threads or compiled.lib is None else \
            _ThreadGovernor(compiled.lib.mlf_run_set_threads)
        # The run path, prepared once: expected (dtype, shape) of every input, one
        # pointer array each way (filled per call under the lock), arena/constant pointers.
        ffi = self._ffi
        self._in_specs = [(np.dtype(p.dtype.numpy), tuple(p.shape)) for p in self._params]
        # A symbolic graph: one library for every size up to the maxima; each call reads
        # the symbols' values from its inputs' shapes and passes them to C (`sizes`).
        self._symbols = dict(prog.symbols)
        self._sizes = ffi.new("int64_t[]", max(len(self._symbols), 1))
        self._in_ptrs = ffi.new("void*[]", max(len(self._params), 1))
        self._out_ptrs = ffi.new("void*[]", max(len(self._outputs), 1))
        self._arena_ptr = ffi.cast("char*", ffi.from_buffer(self._arena))
        self._consts_ptr = ffi.cast("char*", ffi.from_buffer(self._consts))
        first: dict[int, int] = {}
        self._out_plan: list[tuple[str, Any]] = []
        for k, o in enumerate(self._outputs):
            b = compiled.plan.buffers.get(o.id)
            if o.id in first:
                self._out_plan.append(("copy", first[o.id]))
            elif b is None or b.kind in ("input", "const"):
                self._out_plan.append(("param", prog.params.index(o.id)) if o.op is Op.PARAMETER
                                      else ("const", np.array(o.attrs["value"], o.dtype.numpy)
                                            .reshape(o.shape)))
            else:
                first[o.id] = k
                self._out_plan.append(("new", (tuple(o.shape), np.dtype(o.dtype.numpy))))
        # Outputs reuse the previous call's array once nobody else holds it (a fresh 64 MiB
        # array costs a page fault per 4 KiB on first touch; a small one, its allocation
        # and pointer). The last call's inputs stay referenced, so their pointers, set
        # once, stay valid for a call with the same arrays.
        self._recycled: list = [None] * len(self._outputs)
        self._held: list = [None] * len(self._params)
        self._donor = _donors(self._out_plan, self._in_specs, donate)
        # Outputs written over the donated input they update (`aot.passes.donation`): when
        # that input is the array this output was last time, held by nobody else.
        self._aliases: dict[int, int] = dict(getattr(compiled, "aliases", {}))
        self._donated_inputs = sorted({i for i in self._donor if i is not None})

    def run(self, inputs: list) -> list:
        from_buffer = self._ffi.from_buffer
        in_ptrs, out_ptrs, specs, held = self._in_ptrs, self._out_ptrs, self._in_specs, self._held
        keep = list(inputs)
        out_plan, sizes = self._out_plan, None
        if self._symbols:
            sizes, specs, out_plan = self._bound(keep)
        with self._lock:
            if sizes is not None:
                for i, n in enumerate(sizes):
                    self._sizes[i] = n
            donated = {i: held[i] for i in self._donated_inputs if held[i] is not None}
            for i, x in enumerate(keep):
                dtype, shape = specs[i]
                # dtype identity: NumPy's built-in dtypes are singletons; others take the slow path
                if type(x) is not np.ndarray or x.dtype is not dtype or x.shape != shape \
                        or not x.flags.c_contiguous:
                    x = keep[i] = np.ascontiguousarray(
                        np.asarray(x).astype(dtype, copy=False).reshape(shape))
                if x is not held[i]:
                    in_ptrs[i] = from_buffer(x)
                    held[i] = x
            outs: list = []
            recycled, donor, aliases = self._recycled, self._donor, self._aliases
            for k, (how, arg) in enumerate(out_plan):
                if how != "new":
                    outs.append(None)
                    continue
                src = aliases.get(k)
                if src is not None and keep[src] is recycled[k] and \
                        _holders(keep[src], donated.get(src)) <= _IN_PLACE_HOLDERS:
                    outs.append(keep[src])  # last call's result comes back donated: update it
                    out_ptrs[k] = in_ptrs[src]
                    continue
                a = recycled[k]
                if a is None or sys.getrefcount(a) > 3 or a.shape != arg[0] or src is not None:
                    a = donated.pop(donor[k], None)
                    if a is None or not _unshared(a) or a.shape != arg[0]:
                        a = np.empty(*arg)
                    recycled[k] = a
                    out_ptrs[k] = from_buffer(a)
                outs.append(a)
            args: tuple = (in_ptrs, out_ptrs, self._arena_ptr, self._consts_ptr)
            if self._symbols:
                args += (self._sizes,)
            governor = self._governor
            if governor is None:
                status = self.compiled.lib.mlf_run(*args)
            else:
                governor.before()
                t0 = time.perf_counter()
                status = self.compiled.lib.mlf_run(*args)
                governor.after(time.perf_counter() - t0)
        if status != 0:
            raise RuntimeError(f"generated code for {self.graph.name!r} returned status {status}")
        for k, (how, arg) in enumerate(out_plan):
            if how == "copy":
                outs[k] = outs[arg].copy()
            elif how == "param":
                outs[k] = keep[arg].copy()
            elif how == "const":
                outs[k] = arg.copy()
        return outs


    def _bound(self, inputs: list) -> tuple[list[int], list, list]:
        """(the symbols' values, input specs, output plan) for `inputs`, whose shapes give
        the values (`symbolic.match`: ValueError on a mismatch, a 0 or a value above its
        maximum)."""
        sizes = symbolic.match([shape for _, shape in self._in_specs],
                               [np.shape(x) for x in inputs], self._symbols,
                               [f"{self.graph.name} input {i} ({p.attrs.get('name', i)})"
                                for i, p in enumerate(self._params)])
        specs = [(dtype, tuple(symbolic.evaluate(d, sizes) for d in shape))
                 for dtype, shape in self._in_specs]
        plan = [(how, (tuple(symbolic.evaluate(d, sizes) for d in arg[0]), arg[1]))
                if how == "new" else (how, arg) for how, arg in self._out_plan]
        return [sizes[s] for s in self._symbols], specs, plan


class _ThreadGovernor:
    """Picks 1 thread or all of them per executable, by timing its own calls.

    A parallel region needs every thread of the team on a CPU at its barriers. On a
    shared machine (2 vCPUs and another busy process) each of the ~15 regions of a train
    step can wait a scheduler time slice for the descheduled partner, and a libgomp that
    spins (its default; the `GOMP_SPINCOUNT` set above is ignored when another
    library such as torch loaded libgomp first) makes it worse: a 2.6 ms MLP step
    measured 144 ms. Results do not depend on the thread count, so the governor may
    switch freely: every `interval` calls it runs `PROBE` calls with the other count and
    keeps whichever median is lower; a losing probe doubles the interval (up to 4096
    calls), so a quiet machine pays a few slower calls per thousands.
    """
    PROBE, FIRST, LAST = 3, 8, 4096

    def __init__(self, set_threads):
        self._set = set_threads
        self.most = max(1, set_threads(0))  # n <= 0 only reads the count
        self.threads = self.most
        self._interval, self._calls, self._recent, self._probe = self.FIRST, 0, [], None

    def before(self) -> None:
        if self.most == 1 or self._probe is not None:
            return
        self._calls += 1
        if self._calls >= self._interval and self._recent and \
                sorted(self._recent)[len(self._recent) // 2] >= PROBE_MIN_S:
            self._probe = []
            self._set(self.most + 1 - self.threads)

    def after(self, seconds: float) -> None:
        if self.most == 1:
            return
        if self._probe is None:
            self._recent = (self._recent + [seconds])[-5:]
            return
        self._probe.append(seconds)
        if len(self._probe) < self.PROBE:
            return
        probe, base = sorted(self._probe)[1], sorted(self._recent)[len(self._recent) // 2]
        if probe < 0.95 * base:  # the other count wins: switch, and check back soon
            self.threads = self.most + 1 - self.threads
            self._interval, self._recent = self.FIRST, [probe]
        else:
            self._set(self.threads)
            self._interval = min(2 * self._interval, self.LAST)
        self._calls, self._probe = 0, None


def _donors(out_plan: list, in_specs: list, donate: tuple[int, ...]) -> list:
    """For each output, the donated parameter whose array it may take (same dtype and
    shape, each parameter at most once), or None."""
    free = [i for i in sorted(set(donate)) if i < len(in_specs)]
    donors: list = []
    for how, arg in out_plan:
        match = next((i for i in free if how == "new" and in_specs[i] == (arg[1], arg[0])),
                     None)
        if match is not None:
            free.remove(match)
        donors.append(match)
    return donors


def _holders(a: np.ndarray, donated: np.ndarray | None) -> int:
    """References to `a`, a donated input being considered in `run`, from outside `run`:
    not counting `keep`, `held`, `recycled`, run's argument to this function, this
    function's `a` and getrefcount's argument (5), nor the `donated` entry and this
    function's `donated` when they are `a` (2 more)."""
    return sys.getrefcount(a) - 5 - 2 * (donated is a)


def _unshared(a: np.ndarray) -> bool:
    """Whether `a`, last call's donated input, is referenced only by the caller of this
    function (its frame and the argument) and owns writable memory: then no one can see
    it being overwritten. A view, a memory map or an array still held is left alone."""
    return sys.getrefcount(a) <= 3 and a.flags.owndata and a.flags.writeable


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
        return CExecutable(graph, compile_program(from_graph(graph),
                                                  timings={"trace": graph.trace_seconds},
                                                  donated=tuple(donate)),
                           donate)

    def to_device(self, array: np.ndarray, spec: Shape):
        array = np.asarray(array)
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def to_host(self, buffer, spec: Shape) -> np.ndarray:
        return np.asarray(buffer)
