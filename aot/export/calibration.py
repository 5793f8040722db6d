"""`calibrate`: the activation scales of `aotc export --quantize int8 --calibration FILE.npz`.

    data = load_calibration("calib.npz", input_specs)
    scales = calibrate(program, input_specs, data, variables)
    # {"hidden1/dense/weights": 0.126, ...}: s_x of each quantized product's input

FILE.npz holds one array per model input, named after the input, samples first:
[S, ...] with the input's other dimensions (np.savez("calib.npz", x=images)). The float
program runs over it (in NumPy, `evaluate`) in batches of the exported batch size, the
last one filled up by wrapping around to the first samples; the largest |x| seen at the
input of each dense layer and convolution gives its scale (aot/passes/quantization.py).
A symbolic export is calibrated on its model traced again with every symbol bound
(`static_inputs`): a symbolic batch to min(S, its maximum), a symbol past the batch (a
sequence length) to the arrays' size on that axis.
"""
from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np

from aot.export.evaluation import evaluate
from aot.export.signature import InputSpec, UsageError
from aot.export.trace import Traced, trace_model
from aot.passes.quantization import activation_scale, calibration_points
from aot.passes.simplify import simplify
from aot.program.program import Program
from mlframework.core import symbolic


def load_calibration(path: str | os.PathLike, inputs: list[InputSpec]) -> list[np.ndarray]:
    """The arrays of `path`, one per input in order, checked against the inputs' specs:
    [samples, *input.shape[1:]], where a symbolic dimension takes any size (its value
    comes from the arrays, `static_inputs`).

    Raises:
        UsageError: a file that is not an .npz, arrays missing or extra (both named),
            shapes that are not [samples, *input.shape[1:]] or sample counts that differ.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UsageError(f"--calibration {path}: not a readable .npz file ({e}); write one "
                         "with np.savez(path, INPUT_NAME=array, ...)") from None
    names = [i.name for i in inputs]
    missing, extra = [n for n in names if n not in arrays], sorted(set(arrays) - set(names))
    if missing or extra:
        raise UsageError(f"--calibration {path} must hold one array per model input, named "
                         f"after it ({', '.join(names)}); it holds {', '.join(sorted(arrays))}"
                         + (f": {', '.join(missing)} missing" if missing else "")
                         + (f"; {', '.join(extra)} not inputs" if extra else ""))
    out = []
    for spec in inputs:
        shape, a = tuple(spec.spec.dims), arrays[spec.name]
        fits = a.ndim == len(shape) and all(symbolic.is_symbolic(d) or d == n
                                            for d, n in zip(shape[1:], a.shape[1:]))
        if not shape or not fits or not len(a):
            raise UsageError(f"--calibration {path}: array {spec.name!r} must be [samples, "
                             f"{', '.join(map(str, shape[1:]))}] (samples first, then the "
                             f"input's other dimensions of {list(shape)}), got {list(a.shape)}")
        out.append(np.asarray(a, spec.spec.dtype.numpy))
    if len({len(a) for a in out}) > 1:
        raise UsageError(f"--calibration {path}: the arrays hold different sample counts "
                         f"({', '.join(f'{s.name}: {len(a)}' for s, a in zip(inputs, out))})")
    return out


def static_inputs(inputs: list[InputSpec], data: list[np.ndarray],
                  maxima: dict[str, int]) -> list[InputSpec]:
    """`inputs` with every symbol bound to a size, for calibrating a symbolic export
    (`--input x:float32[N,S,64] --max N=256 --max S=128`) on `data` (`load_calibration`'s
    arrays, one per input). A symbol past the first axis of an input (a sequence length)
    is the size of that axis in the arrays (on a first axis too); a symbol only on first
    axes (a batch) is min(samples, the maxima of every such symbol, the static batch
    sizes), so inputs with different batch symbols share one batch. The scales are the
    largest |x| over the samples, so they are those of a static export calibrated on the
    same file. (A dim of an input is a size or a symbol, `parse_input`.)

    Raises:
        UsageError: inputs sharing a symbol past the batch whose arrays give it different
            sizes (the inputs and their shapes named), or such a size outside
            [1, its maximum].
    """
    seen: dict[str, list[tuple[InputSpec, np.ndarray, int]]] = {}
    for spec, a in zip(inputs, data):
        for d, n in zip(spec.spec.dims[1:], a.shape[1:]):
            if symbolic.is_symbolic(d):
                seen.setdefault(str(d), []).append((spec, a, n))
    sizes = {}
    for symbol, uses in seen.items():
        found = sorted({n for _, _, n in uses})
        if len(found) > 1:
            shapes = ", ".join(f"{s.name} {list(a.shape)} for {s.spec}" for s, a, _ in uses)
            raise UsageError(f"--calibration: the arrays must agree on the size of {symbol} "
                             f"(every axis of the inputs that holds it), got {shapes}")
        if not 1 <= found[0] <= maxima[symbol]:
            raise UsageError(f"--calibration: {symbol} = {found[0]} in the arrays of "
                             f"{', '.join(sorted({s.name for s, _, _ in uses}))}, outside "
                             f"[1, {maxima[symbol]}] (--max {symbol}={maxima[symbol]})")
        sizes[symbol] = found[0]
    firsts = [i.spec.dims[0] for i in inputs if i.spec.dims]
    batch = min([len(data[0]), *(maxima[str(d)] for d in firsts if symbolic.is_symbolic(d)),
                 *(int(d) for d in firsts if not symbolic.is_symbolic(d))])
    for d in firsts:
        if symbolic.is_symbolic(d):
            sizes.setdefault(str(d), batch)
    return [_bound(i, sizes) for i in inputs]


def _bound(spec: InputSpec, sizes: dict[str, int]) -> InputSpec:
    dims = tuple(symbolic.evaluate(d, sizes) for d in spec.spec.dims)
    return dataclasses.replace(spec, spec=dataclasses.replace(spec.spec, dims=dims))


def calibrate(program: Program, inputs: list[InputSpec], data: list[np.ndarray],
              variables=None) -> dict[str, float]:
    """{weight name: activation scale} for every product `quantize_int8` rewrites in
    `program` (a traced program of static `inputs`; `data`: `load_calibration`'s arrays;
    `variables`: only weights of these names).

    Raises:
        UsageError: a model with no dense layer or convolution to quantize, or inputs of
            different batch sizes.
    """
    program = simplify(program)
    points = calibration_points(program, variables)
    if not points:
        raise UsageError("--quantize int8 found no dense layer or 2-d convolution with "
                         "constant float32 weights to quantize")
    if len({i.spec.dims[0] for i in inputs}) > 1:
        raise UsageError("--calibration needs inputs of one batch size (the first dimension "
                         "of every --input), got " + ", ".join(
                             f"{i.name}: {i.spec.dims[0]}" for i in inputs))
    ids = sorted({i for readers in points.values() for i in readers})
    peaks = dict.fromkeys(ids, 0.0)
    batch = symbolic.static(inputs[0].spec.dims[0], "--calibration's batch (the first "
                            "dimension of --input)")
    count = len(data[0])
    for start in range(0, count, batch):
        rows = np.arange(start, start + batch) % count
        for i, x in zip(ids, evaluate(program, [a[rows] for a in data], ids)):
            peaks[i] = max(peaks[i], float(np.max(np.abs(x))) if x.size else 0.0)
    return {name: activation_scale(max(peaks[i] for i in readers))
            for name, readers in sorted(points.items())}


def traced_scales(fn, traced: Traced, inputs: list[InputSpec], path: str | os.PathLike,
                  maxima: dict[str, int], *, name: str, checkpoint=None,
                  ctx=None) -> dict[str, float]:
    """`calibrate` on `path` for the model `fn` traced as `traced` for `inputs`; inputs
    with symbols (`maxima`) are calibrated on `fn` traced again with them bound to the
    calibration arrays' sizes (`static_inputs`).

    Raises:
        UsageError: see `load_calibration`, `static_inputs` and `calibrate`.
    """
    data = load_calibration(path, inputs)
    fixed = static_inputs(inputs, data, maxima) if maxima else inputs
    program = traced.program if fixed is inputs else trace_model(
        fn, fixed, name=name, checkpoint=checkpoint, ctx=ctx).program
    return calibrate(program, fixed, data, set(traced.variables))
