"""`calibrate`: the activation scales of `aotc export --quantize int8 --calibration FILE.npz`.

    scales = calibrate(program, input_specs, "calib.npz", variables)
    # {"hidden1/dense/weights": 0.126, ...}: s_x of each quantized product's input

FILE.npz holds one array per model input, named after the input, batch first: [S, ...]
with the input's other dimensions (np.savez("calib.npz", x=images)). The float program
runs over it (in NumPy, `evaluate`) in batches of the exported batch size (a symbolic
batch: min(S, its maximum), `static_inputs`), the last one filled up by wrapping around
to the first samples; the largest |x| seen at the input of
each dense layer and convolution gives its scale (aot/passes/quantization.py).
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
    """The arrays of `path`, one per input in order, checked against the inputs' specs.

    Raises:
        UsageError: a file that is not an .npz, arrays missing or extra (both named),
            shapes that are not [S, *input.shape[1:]] or sample counts that differ.
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
        if not shape or a.ndim != len(shape) or tuple(a.shape[1:]) != shape[1:] or not len(a):
            raise UsageError(f"--calibration {path}: array {spec.name!r} must be [S, "
                             f"{', '.join(map(str, shape[1:]))}] (samples first, then the "
                             f"input's other dimensions of {list(shape)}), got {list(a.shape)}")
        out.append(np.asarray(a, spec.spec.dtype.numpy))
    if len({len(a) for a in out}) > 1:
        raise UsageError(f"--calibration {path}: the arrays hold different sample counts "
                         f"({', '.join(f'{s.name}: {len(a)}' for s, a in zip(inputs, out))})")
    return out


def static_inputs(inputs: list[InputSpec], path: str | os.PathLike,
                  maxima: dict[str, int]) -> list[InputSpec]:
    """`inputs` with a symbolic batch bound to a static size, for calibrating a symbolic
    export (`--input x:float32[N,64] --max N=256`): the float program runs over `path`'s
    samples in batches of min(S, maximum of N). The scales are the largest |x| over the
    samples, so they are those of a static export calibrated on the same file.

    Raises:
        UsageError: see `load_calibration`.
        NotImplementedError: a symbol in another dimension than the first (calibrating a
            symbolic sequence length is not built).
    """
    for i in inputs:
        later = symbolic.symbols_of(i.spec.dims[1:])
        if later:
            raise NotImplementedError(
                f"--quantize int8 --calibration with the symbolic dimension "
                f"{', '.join(sorted(later))} of {i.name} past the batch is not built: "
                "declare it static")
    batch = [d for d in (i.spec.dims[0] for i in inputs if i.spec.dims) if symbolic.is_symbolic(d)]
    if not batch:
        return inputs
    count = len(load_calibration(path, [dataclasses.replace(
        i, spec=dataclasses.replace(i.spec, dims=(1, *i.spec.dims[1:]))) for i in inputs])[0])
    size = min(count, symbolic.upper(batch[0], maxima))
    return [dataclasses.replace(i, spec=dataclasses.replace(
        i.spec, dims=(symbolic.evaluate(i.spec.dims[0], {s: size for s in
                                                           symbolic.symbols_of(batch[:1])})
                      if symbolic.is_symbolic(i.spec.dims[0]) else i.spec.dims[0],
                      *i.spec.dims[1:]))) for i in inputs]


def calibrate(program: Program, inputs: list[InputSpec], path: str | os.PathLike,
              variables=None) -> dict[str, float]:
    """{weight name: activation scale} for every product `quantize_int8` rewrites in
    `program` (a traced program; `variables`: only weights of these names).

    Raises:
        UsageError: see `load_calibration`; a model with no dense layer or convolution
            to quantize.
    """
    data = load_calibration(path, inputs)
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
    """`calibrate` for the model `fn` traced as `traced` for `inputs`; a symbolic batch
    (`maxima`) is calibrated on `fn` traced again with it bound (`static_inputs`).

    Raises:
        UsageError, NotImplementedError: see `static_inputs` and `calibrate`.
    """
    fixed = static_inputs(inputs, path, maxima) if maxima else inputs
    program = traced.program if fixed is inputs else trace_model(
        fn, fixed, name=name, checkpoint=checkpoint, ctx=ctx).program
    return calibrate(program, fixed, path, set(traced.variables))
