"""`aotc verify`: an exported library against the XLA backend on random inputs.

    lib = ExportedLibrary("build/mlp")         # libmlp.so through cffi (ABI mode)
    y, = lib.run(x)                             # NumPy in, NumPy out
    report = verify("build/mlp", tolerance=1e-5)
    report.ok, report.max_diff                  # {"output": 3.1e-07}

The reference is the model function named in manifest.json, traced again
and run on the "xla" backend (a context model with the variables of the
checkpoint it was exported from, as the export stores them: `rounded_weights`
in manifest.json rounded to bfloat16, `float16_weights` to float16,
`quantized_weights` quantized to int8 and back). A full int8 export
(`--quantize int8`) is compared with `quantized_reference` instead: its program,
int8 activations and weights, evaluated in NumPy with exact integer sums; so is the export of
a QDQ ONNX model whose products run on the int8 kernels (`qdq_products`,
aot/passes/qdq.py), whose distance from ONNX Runtime is shown unchecked (its fused
integer kernels requantize each sum in one step). Of a quantized export the report also
shows, unchecked, how far the library is from the float model.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from aot.export.evaluation import evaluate
from aot.export.onnx_model import (OnnxFunction, is_onnx, load_model_function,
                                   onnxruntime_outputs)
from aot.export.signature import InputSpec, UsageError, load_function
from aot.passes.qdq import map_qdq
from aot.passes.quantization import quantize_int8
from aot.passes.simplify import simplify
from aot.passes.weight_packing import dequantized
from mlframework.core import shapes
from mlframework.core.dtypes import DType, as_dtype
from mlframework.graph.gen_optypes import Op

if TYPE_CHECKING:
    from mlframework.ml.context import Context

_CTYPES = {"bool": "uint8_t", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
           "int64": "int64_t", "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t",
           "uint64": "uint64_t", "float16": "uint16_t", "bfloat16": "uint16_t",
           "float32": "float", "float64": "double"}


def _aligned(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + max(nbytes, 1)]


class ExportedLibrary:
    """libNAME.so of an export folder, callable from Python with NumPy arrays.

    Each instance owns its workspace, so instances may run in different threads.
    """

    def __init__(self, out_dir: str | os.PathLike, library: str | None = None):
        import cffi
        self.out_dir = Path(out_dir)
        manifest_path = self.out_dir / "manifest.json"
        if not manifest_path.is_file():
            raise UsageError(f"{self.out_dir} has no manifest.json: not an aotc export folder")
        self.manifest = m = json.loads(manifest_path.read_text())
        if m.get("format") == "aotc-decoder":
            raise UsageError(f"{self.out_dir} holds a language model exported with --hf "
                             "--decode: see aot.tools.verify_decoder")
        self.name = n = m["name"]
        self.symbols: dict[str, int] = dict(m.get("symbols") or {})
        self.ffi = cffi.FFI()
        sized = ["int64_t"] * len(self.symbols)  # the size arguments come first
        args = sized + [f"const {_CTYPES[i['dtype']]}*" for i in m["inputs"]]
        args += [f"{_CTYPES[o['dtype']]}*" for o in m["outputs"]]
        cdef = f"int {n}_run({', '.join(args + ['void*'])});\nconst char* {n}_strerror(int);\n"
        if m["weights"] == "file":
            cdef += f"int {n}_load_weights(const char* path);\n"
        if "train" in m:
            targs = sized + [f"const {_CTYPES[i['dtype']]}*"
                             for i in m["inputs"] + m["train"]["labels"]]
            cdef += (f"int {n}_train_init(void*);\n"
                     f"int {n}_train_step(void*, {', '.join(targs)}, float*, void*);\n"
                     f"int {n}_run_state(const void*, {', '.join(args + ['void*'])});\n")
        self.ffi.cdef(cdef)
        path = Path(library) if library else self.out_dir / f"lib{n}.so"
        if not path.is_file():
            raise UsageError(f"{path} does not exist: build it with `make -C {self.out_dir}`")
        self.lib = self.ffi.dlopen(str(path.resolve()))
        self._run = getattr(self.lib, f"{n}_run")
        self.workspace = _aligned(m["arena_bytes"])
        if m["weights"] == "file":
            self.check(getattr(self.lib, f"{n}_load_weights")(
                str(self.out_dir / f"{n}_weights.bin").encode()))

    def check(self, status: int) -> None:
        if status != 0:
            text = self.ffi.string(getattr(self.lib, f"{self.name}_strerror")(status)).decode()
            raise RuntimeError(f"{text} (status {status})")

    def _ptr(self, array: np.ndarray):
        return self.ffi.cast("void*", array.ctypes.data)

    def inputs_like(self, seed: int = 0, sizes: dict[str, int] | None = None
                    ) -> list[np.ndarray]:
        """Random inputs of the exported shapes (normal floats, small integers); a
        symbolic export's at `sizes` (default: the maxima)."""
        sizes = self._sizes(sizes)
        return random_inputs([dict(i, shape=shape_at(i["shape"], sizes))
                              for i in self.manifest["inputs"]], seed)

    def _sizes(self, sizes: dict[str, int] | None) -> dict[str, int]:
        return dict(self.symbols if sizes is None else sizes)

    def size_sets(self) -> list[dict[str, int]]:
        """The sizes `verify` checks a symbolic export at: every symbol at 1, at 7 (or its
        maximum, if smaller) and at its maximum ([{}] for a static export)."""
        if not self.symbols:
            return [{}]
        picks = [{s: v(top) for s, top in self.symbols.items()}
                 for v in (lambda t: 1, lambda t: min(7, t), lambda t: t)]
        return [dict(p) for p in {tuple(p.items()): p for p in picks}.values()]

    def _arrays(self, inputs, specs, sizes: dict[str, int]) -> list[np.ndarray]:
        return [np.ascontiguousarray(np.asarray(x, as_dtype(i["dtype"]).numpy).reshape(
            shape_at(i["shape"], sizes))) for x, i in zip(inputs, specs, strict=True)]

    def sizes_of(self, inputs: Sequence[ArrayLike],
                 specs: Sequence[dict[str, Any]]) -> dict[str, int]:
        """The symbols' values that the inputs' shapes give (each bare symbol's axis)."""
        found: dict[str, int] = {}
        for x, i in zip(inputs, specs):
            for d, n in zip(i["shape"], np.shape(x)):
                if isinstance(d, str) and d.isidentifier():
                    found.setdefault(d, int(n))
        return found

    def run(self, *inputs: ArrayLike) -> list[np.ndarray]:
        """NAME_run on `inputs`; a symbolic export passes the sizes their shapes give."""
        specs = self.manifest["inputs"]
        sizes = self.sizes_of(inputs, specs)
        arrays = self._arrays(inputs, specs, sizes)
        outs = [np.empty(shape_at(o["shape"], sizes), as_dtype(o["dtype"]).numpy)
                for o in self.manifest["outputs"]]
        self.check(self._run(*[sizes[s] for s in self.symbols],
                             *[self._ptr(a) for a in arrays + outs], self._ptr(self.workspace)))
        return outs

    # ---- training ----

    def train_state(self) -> np.ndarray:
        """A fresh state buffer holding the exported training state."""
        state = _aligned(self.manifest["train"]["state_bytes"])
        self.check(getattr(self.lib, f"{self.name}_train_init")(self._ptr(state)))
        return state

    def train_step(self, state: np.ndarray, *inputs: ArrayLike) -> float:
        specs = self.manifest["inputs"] + self.manifest["train"]["labels"]
        sizes = self.sizes_of(inputs, specs)
        arrays = self._arrays(inputs, specs, sizes)
        if not hasattr(self, "_train_ws"):
            self._train_ws = _aligned(self.manifest["train"]["arena_bytes"])
        loss = np.zeros(1, np.float32)
        self.check(getattr(self.lib, f"{self.name}_train_step")(
            self._ptr(state), *[sizes[s] for s in self.symbols],
            *[self._ptr(a) for a in arrays], self._ptr(loss),
            self._ptr(self._train_ws)))
        return float(loss[0])

    def run_state(self, state: np.ndarray, *inputs: ArrayLike) -> list[np.ndarray]:
        """NAME_run_state: the model on the variables in `state` (see `train_state`)."""
        specs = self.manifest["inputs"]
        sizes = self.sizes_of(inputs, specs)
        arrays = self._arrays(inputs, specs, sizes)
        outs = [np.empty(shape_at(o["shape"], sizes), as_dtype(o["dtype"]).numpy)
                for o in self.manifest["outputs"]]
        if not hasattr(self, "_state_ws"):
            self._state_ws = _aligned(self.manifest["train"]["run_state_arena_bytes"])
        self.check(getattr(self.lib, f"{self.name}_run_state")(
            self._ptr(state), *[sizes[s] for s in self.symbols],
            *[self._ptr(a) for a in arrays + outs], self._ptr(self._state_ws)))
        return outs


def shape_at(shape: list, sizes: dict[str, int]) -> list[int]:
    """A manifest shape (["N", 64], ["2*N + 1"]: a symbolic dim as `Dim` prints it) at
    concrete `sizes`.

    Raises:
        ValueError: a dim that is not a polynomial of symbols with a size.
    """
    out = []
    for d in shape:
        if isinstance(d, int):
            out.append(d)
            continue
        total = 0
        for sign, term in re.findall(r"([+-]?)\s*([^\s+-]+)", d):
            value = 1
            for factor in term.split("*"):
                if not factor.isdigit() and factor not in sizes:
                    raise ValueError(f"manifest dim {d!r}: {factor!r} is neither a number nor "
                                     f"a symbol with a size (sizes: {sizes})")
                value *= int(factor) if factor.isdigit() else sizes[factor]
            total += -value if sign == "-" else value
        out.append(total)
    return out


def random_inputs(specs: list[dict], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        dtype = as_dtype(s["dtype"])
        if dtype.is_float:
            a = rng.standard_normal(s["shape"]).astype(dtype.numpy)
        elif s["dtype"] == "bool":
            a = rng.integers(0, 2, s["shape"]).astype(np.bool_)
        else:
            a = rng.integers(0, 10, s["shape"]).astype(dtype.numpy)
        out.append(a)
    return out


def reference_outputs(manifest: dict, inputs: list[np.ndarray],
                      fn: Callable[..., Any] | None = None, ctx: Context | None = None,
                      backend: str = "xla", as_stored: bool = True) -> list[np.ndarray]:
    """The exported function's outputs on `backend` for `inputs`, with the weights as the
    export stores them (as_stored) or as the checkpoint holds them.

    Raises:
        UsageError: the function cannot be imported, its checkpoint not restored, or it
            raises (named, with the user's line).
    """
    import mlframework as mlf
    from mlframework import graph as G
    from mlframework.core import pytree

    from aot.export.trace import guarded, is_context_model, load_context
    if fn is None:
        fn = OnnxFunction(manifest["function"]) if is_onnx(manifest["function"]) \
            else load_function(manifest["function"])
    specs = [input_spec(dict(i, shape=list(np.shape(x)))) for i, x in zip(manifest["inputs"],
                                                                            inputs)]
    be = mlf.backends.new(backend)
    if is_context_model(fn):
        from mlframework.ml import ContextExec
        if ctx is None:
            if not manifest.get("checkpoint"):
                raise UsageError("the export's manifest names no checkpoint; pass ctx=")
            ctx = load_context(manifest["checkpoint"])
        exe = ContextExec(be, ctx, lambda c, *xs: fn(c, xs[0] if len(xs) == 1 else xs),
                          name=getattr(fn, "__name__", "model"))
        with _stored(ctx, manifest) if as_stored else contextlib.nullcontext():
            result = guarded(lambda: exe(*inputs), fn, specs)
    else:
        result = guarded(lambda: G.Exec(be, fn)(*inputs), fn, specs)
    return [np.asarray(t.numpy()) for t in pytree.flatten(result)[0]]


def quantized_reference(manifest: dict, inputs: list[np.ndarray],
                        fn: Callable[..., Any] | None = None,
                        ctx: Context | None = None) -> list[np.ndarray]:
    """What a `--quantize int8` export or one of a QDQ model computes, evaluated in NumPy:
    the model traced again, its QDQ products mapped onto int8 ones (aot/passes/qdq.py),
    its products rewritten with the manifest's `activation_scales`
    (aot/passes/quantization.py: the same int8 activations and weights), weight-only
    int8 tables (`quantized_weights` not in them) as Q * scale, the int8 products summed
    exactly (aot/export/evaluation.py).

    Raises:
        UsageError: the function cannot be imported or its checkpoint not restored.
    """
    from aot.export.trace import trace_model
    function, specs = load_model_function(fn or manifest["function"], [  # sizes bound
        input_spec(dict(i, shape=list(np.shape(x)))) for i, x in zip(manifest["inputs"], inputs)])
    checkpoint = manifest.get("checkpoint") if ctx is None else None
    traced = trace_model(function, specs, name=manifest["name"], checkpoint=checkpoint, ctx=ctx)
    scales = manifest.get("activation_scales") or {}
    program, _ = map_qdq(simplify(traced.program))
    program = quantize_int8(simplify(program), scales) if scales else program
    mapped = {v.scope for v in program.values.values()  # a QDQ model's int8 weights
              if v.op is Op.CONSTANT and v.dtype is DType.INT8}
    only_weights = {n: a for n, a in manifest.get("quantized_weights", {}).items()
                    if n not in scales and n not in mapped}
    for v in program.values.values():
        if v.scope in only_weights and v.dtype is DType.FLOAT32 and "value" in v.attrs:
            v.attrs = dict(v.attrs, value=dequantized(v.attrs["value"], only_weights[v.scope]))
    return evaluate(program, inputs)


def rounded_weights(manifest: dict) -> list[str]:
    """The variables an export stores rounded to bfloat16: `rounded_weights` in its
    manifest. Manifests written before that key had it implied: every packed weight of a
    `--weight-storage bfloat16` export, none of a float32 one (whose packed panels hold
    the float32 values)."""
    if "rounded_weights" in manifest:
        return list(manifest["rounded_weights"])
    if manifest.get("weight_storage") == "bfloat16":
        return list(manifest.get("packed_weights", []))
    return []


@contextlib.contextmanager
def _stored(ctx, manifest: dict):
    """The variables as the export stores them, for the duration of the block: rounded
    to bfloat16 or float16 (`--weight-storage`) or quantized to int8 and back
    (`--quantize int8-weights`)."""
    from mlframework.core.tensors import Tensor
    rounded, halves = rounded_weights(manifest), manifest.get("float16_weights", [])
    quantized = manifest.get("quantized_weights", {})
    saved = {n: ctx.get_variable(n).value for n in [*rounded, *halves, *quantized]}
    try:
        for names, half in ((rounded, DType.BFLOAT16.numpy), (halves, np.float16)):
            for n in names:
                value = saved[n].numpy().astype(half).astype(np.float32)
                ctx.get_variable(n).value = Tensor(value)
        for n, axis in quantized.items():
            ctx.get_variable(n).value = Tensor(dequantized(saved[n].numpy(), axis))
        yield
    finally:
        for n, value in saved.items():
            ctx.get_variable(n).value = value


@dataclass
class Report:
    """`max_diff`: checked against `tolerance`; `unchecked`: shown only (a quantized
    export against the float model, keys "NAME vs float model")."""
    max_diff: dict
    tolerance: float
    unchecked: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(d <= self.tolerance for d in self.max_diff.values())

    def __str__(self) -> str:
        lines = []
        for key, d in self.max_diff.items():
            name, _, ref = key.partition(" vs ")
            lines.append(f"  {name:<24} max |c - {ref or 'xla'}| = {d:.3g}   "
                         f"{'ok' if d <= self.tolerance else 'FAIL'}")
        for key, d in self.unchecked.items():
            name, _, ref = key.partition(" vs ")
            why = "its int8 requantization rounds apart" if ref == "onnxruntime" else \
                "the quantization's error"
            lines.append(f"  {name:<24} max |c - {ref}| = {d:.3g}   ({why}, not checked)")
        verdict = "ok" if self.ok else "FAILED"
        return "\n".join(lines + [f"{verdict} (tolerance {self.tolerance:g}, relative to "
                                  "max(1, |xla|))"])


def compare(outputs, expected, names) -> dict:
    diffs = {}
    for name, a, b in zip(names, outputs, expected, strict=True):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64).reshape(np.shape(a))
        if a64.size == 0:
            diffs[name] = 0.0
            continue
        err = np.abs(a64 - b64) / np.maximum(1.0, np.abs(b64))
        same_nonfinite = ~np.isfinite(b64) & (a64 == b64) | np.isnan(a64) & np.isnan(b64)
        err = np.where(same_nonfinite, 0.0, err)
        diffs[name] = float(np.nanmax(np.where(np.isnan(err), math.inf, err)))
    return diffs


def verify(out_dir: str | os.PathLike, *, tolerance: float = 1e-5, seed: int = 0, trials: int = 2,
           fn: Callable[..., Any] | None = None, ctx: Context | None = None) -> Report:
    """Runs the library and the XLA backend on `trials` random input sets; the
    largest difference per output (relative to max(1, |reference|)). An export of an
    ONNX file is compared with ONNX Runtime too (keys "NAME vs onnxruntime"; unchecked
    for a QDQ model on the int8 kernels, which is checked against `quantized_reference`
    instead: keys "NAME vs int8 numpy"). A decoder
    (`aotc export --hf DIR --decode`) has its own, `aot.tools.verify_decoder`. A
    symbolic export is checked at several sizes (`ExportedLibrary.size_sets`), `trials`
    each."""
    lib = ExportedLibrary(out_dir)
    names = [o["name"] for o in lib.manifest["outputs"]]
    onnx_file = lib.manifest["function"] if is_onnx(lib.manifest["function"]) else None
    qdq = any(p["path"] == "int8" for p in lib.manifest.get("qdq_products", []))
    full_int8 = lib.manifest.get("quantize") == "int8" or qdq
    checked = [f"{n} vs int8 numpy" for n in names] if full_int8 else names
    ort_keys = [f"{n} vs onnxruntime" for n in names] if onnx_file else []
    worst = dict.fromkeys(checked + ([] if qdq else ort_keys), 0.0)
    quantized = bool(lib.manifest.get("quantized_weights"))
    unchecked = dict.fromkeys(([f"{n} vs float model" for n in names] if quantized else [])
                              + (ort_keys if qdq else []), 0.0)
    runs = [(t, sizes) for sizes in lib.size_sets() for t in range(trials)]
    for t, sizes in runs:
        inputs = lib.inputs_like(seed + t, sizes or None)
        got = lib.run(*inputs)
        expected = quantized_reference(lib.manifest, inputs, fn, ctx) if full_int8 else \
            reference_outputs(lib.manifest, inputs, fn, ctx)
        found = compare(got, expected, checked)
        if onnx_file:
            ort = compare(got, onnxruntime_outputs(onnx_file, inputs), names)
            found.update({f"{k} vs onnxruntime": d for k, d in ort.items()})
        for k, d in found.items():
            into = unchecked if k in unchecked else worst
            into[k] = max(into[k], d)
        if quantized:
            exact = reference_outputs(lib.manifest, inputs, fn, ctx, as_stored=False)
            for k, d in compare(got, exact, names).items():
                unchecked[f"{k} vs float model"] = max(unchecked[f"{k} vs float model"], d)
    return Report(worst, tolerance, unchecked)


def input_spec(entry: dict) -> InputSpec:
    return InputSpec(entry["name"], shapes.make(as_dtype(entry["dtype"]), *entry["shape"]))

