"""`export_model`: a Python model function as a standalone C library (what
`aotc export` runs).

    from aot.export import export_model
    art = export_model("examples/digits_mlp.py:model", ["x:float32[1,64]"], "build/mlp",
                       checkpoint="runs/mlp", name="mlp")
    art.shared_library      # build/mlp/libmlp.so; also mlp.h, mlp.c, libmlp.a, Makefile...

OUTDIR receives NAME.h, NAME.c, NAME_weights.c (+ NAME_weights.S and .bin for
`blob`, NAME_weights.bin for `file`), NAME_train.c and NAME_run_state.c with `train=`, runtime/
(the headers the code includes), a Makefile, manifest.json, and, unless
`build=False`, libNAME.so and libNAME.a built by that Makefile.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlframework
from aot.build.compiler import RUNTIME
from aot.export import artifact
from aot.export.calibration import traced_scales
from aot.export.manifest import manifest_of
from aot.export.onnx_model import is_onnx, load_model_function
from aot.export.signature import InputSpec, UsageError, parse_input, symbol_maxima
from aot.export.targets import HOST, ZIG, Toolchain, toolchain
from aot.export.trace import (Traced, check_labels, check_names, load_context, trace_model,
                              trace_state_inference, trace_train_step)

if TYPE_CHECKING:
    from mlframework.ml.context import Context

WEIGHT_MODES = ("embed", "blob", "file")
EMBED_MAX_BYTES = 8 << 20  # "auto" embeds up to this; larger weights as text slow the C compiler
VERSION = mlframework.__version__
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# NAME.h sits in the folder a user compiles with -I: a name of a system header would hide
# it, from the export's own code and from the user's (C11's headers, and those the runtime
# and templates include: tests/aot/test_cli.py checks they are all here)
SYSTEM_HEADERS = frozenset("""
    assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal
    stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath
    threads time uchar wchar wctype omp pthread unistd emmintrin immintrin arm_neon
""".split())


class BuildError(RuntimeError):
    """The C compiler or `make` failed on exported code; the message names the folder."""


@dataclass
class TrainSpec:
    """What `--train` exports: the labels' specs, the loss and the optimizer.

    loss: a callable `loss(labels, outputs)` or a name in `mlframework.ml.losses`.
    optimizer: an optimizer object or "NAME:LEARNING_RATE" (sgd, adam, adamw...).
    """

    labels: list
    loss: object = "sparse_categorical_cross_entropy_logits"
    optimizer: object = "adam:0.001"


@dataclass
class Artifact:
    """What `export_model` wrote."""

    out_dir: Path
    name: str
    manifest: dict
    files: list[str] = field(default_factory=list)

    @property
    def header(self) -> Path:
        return self.out_dir / f"{self.name}.h"

    @property
    def shared_library(self) -> Path:
        return self.out_dir / f"lib{self.name}.so"

    @property
    def static_library(self) -> Path:
        return self.out_dir / f"lib{self.name}.a"


QUANTIZE = ("int8-weights", "int8")


def storage_of(weight_storage: str, quantize: str | None, calibration) -> str:
    """The pack_weights storage that `weight_storage` and `quantize` ask for."""
    if weight_storage not in ("float32", "bfloat16", "float16"):
        raise UsageError("--weight-storage must be float32, bfloat16 or float16, got "
                         f"{weight_storage!r}")
    if quantize is None:
        if calibration is not None:
            raise UsageError("--calibration is for --quantize int8 only")
        return weight_storage
    if quantize not in QUANTIZE:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if weight_storage != "float32":
        raise UsageError(f"--quantize {quantize} and --weight-storage {weight_storage} both set "
                         "how the weights are stored: choose one")
    if quantize == "int8":
        if calibration is None:
            raise UsageError("--quantize int8 needs --calibration FILE.npz: sample inputs (one "
                             "array per model input, named after it, batch first) from which "
                             "the int8 activations' scales are measured")
        return "int8"
    if calibration is not None:
        raise UsageError("--calibration is for --quantize int8 only; int8-weights needs no data")
    return "int8"


def export_model(fn: Callable[..., Any] | str, inputs: Sequence[InputSpec | str],
                 out_dir: str | os.PathLike, *, name: str = "model",
                 checkpoint: str | os.PathLike | None = None, ctx: Context | None = None,
                 weights: str = "auto", target: str | None = None, train: TrainSpec | None = None,
                 openmp: bool = False, native: bool = True, build: bool = True,
                 weight_storage: str = "float32", quantize: str | None = None,
                 calibration: str | os.PathLike | None = None,
                 maxima: dict[str, int] | None = None) -> Artifact:
    """Exports `fn` (a callable or "MODULE:FUNCTION") for `inputs` (InputSpecs or
    "NAME:DTYPE[DIMS]" strings) into `out_dir`.

    Args:
        checkpoint: directory or JSON of a checkpoint holding a context model's variables.
        ctx: a Context to take the variables from instead of a checkpoint.
        weights: "embed", "blob" or "file" (see NAME.h); "auto": embed up to
            EMBED_MAX_BYTES, else blob (file on wasm32, which has no .incbin).
        target: None/"host", or a triple such as "aarch64-linux-gnu", "wasm32-wasi".
        train: also export the training step (NAME_train_step).
        openmp: compile kernels with OpenMP (the library then needs libgomp).
        native: host builds use -march=native (the library then needs this CPU's ISA).
        build: run the Makefile (False: write the sources only).
        weight_storage: "float32"; "bfloat16": dense-layer weights rounded to bfloat16
            and stored at half the bytes (aot/passes/weight_packing.py); "float16":
            convolution weights rounded to float16, likewise. Arithmetic stays float32.
        quantize: None, or "int8-weights": post-training weight-only quantization of the
            dense-layer and convolution weights (symmetric int8, a scale per output column
            or channel; arithmetic stays float32; embedding tables a scale per row), or
            "int8": the same weights times int8 activations, int32 sums, float32 between
            layers (aot/passes/quantization.py), with activation scales calibrated on
            `calibration`, an .npz with one array per input, named after it, batch first
            (aot/export/calibration.py).
        maxima: the largest value of each symbol of the inputs' dims (`--max N=256` for
            `x:float32[N,64]`): one library serves every size from 1 to it; its functions
            take each symbol's value as an `int64_t` argument before the arrays (NAME.h).

    Raises:
        UsageError: bad arguments (an --input or --label that `parse_input`,
            `check_names` or `check_labels` rejects, an unknown target), a module
            that is missing, does not parse or raises at import, a missing function,
            a checkpoint that does not match the model, or a model raising while
            traced.
            A --calibration file that `load_calibration` or `static_inputs` rejects;
            quantize="int8" without one.
        BuildError: the C compiler failed.
    """
    storage = storage_of(weight_storage, quantize, calibration)
    reference = fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '?')}:" \
                                               f"{getattr(fn, '__name__', '?')}"
    if isinstance(fn, str) and is_onnx(fn):
        reference = str(Path(fn).resolve())
    elif isinstance(fn, str):
        module, _, function = reference.rpartition(":")
        if module.endswith(".py"):
            reference = f"{Path(module).resolve()}:{function}"
    fn, specs = load_model_function(fn, inputs)
    if not specs:
        raise UsageError("export requires at least one --input NAME:DTYPE[DIMS]")
    check_name(name)
    maxima = symbol_maxima(specs, maxima)
    check_names(list(maxima), "--input symbol", taken={i.name for i in specs})
    if len({s.upper() for s in maxima}) != len(maxima):
        raise UsageError(f"symbols {', '.join(maxima)}: NAME_MAX_<SYMBOL> macros need names "
                         "that differ in more than case")
    if weights not in WEIGHT_MODES + ("auto",):
        raise UsageError(f"--weights must be one of {', '.join(WEIGHT_MODES)}, got {weights!r}")
    tc = toolchain(target, native)
    if weights == "blob" and tc.target.startswith("wasm"):
        raise UsageError("--weights blob links through an ELF assembler .incbin; for wasm32 "
                         "use --weights embed or file")
    if train is not None:
        check_labels(specs, _labels(train))  # before the slow part: the traces
    if train is not None and ctx is None:
        if checkpoint is None:
            raise UsageError("--train needs --checkpoint (the starting weights and optimizer "
                             "state)")
        ctx = load_context(checkpoint)
    started = time.perf_counter()
    traced = trace_model(fn, specs, name=name, checkpoint=checkpoint if ctx is None else None,
                         ctx=ctx, maxima=maxima)
    scales = traced_scales(fn, traced, specs, calibration, maxima, name=name, ctx=ctx,
                           checkpoint=checkpoint if ctx is None else None) \
        if quantize == "int8" and calibration is not None else None
    stage = artifact.compile_stage(traced.program, entry=f"{name}_forward",
                                   weight_storage=storage, variables=set(traced.variables),
                                   activation_scales=scales)
    if weights == "auto":
        size = sum(b.nbytes for b in stage.plan.buffers.values() if b.kind == "const")
        weights = "embed" if size <= EMBED_MAX_BYTES else \
            ("file" if tc.target.startswith("wasm") else "blob")
    segment = artifact.Segment()
    options = {"weights": weights, "version": VERSION, "function": reference, "openmp": openmp,
               "weight_storage": weight_storage, "quantize": quantize,
               "activation_scales": scales}
    source, ins, outs = artifact.render_inference(name, traced.input_names, traced.output_names,
                                                  stage, segment, options)
    files: dict[str, str | bytes] = {f"{name}.c": source}
    train_info, train_stage = None, None
    if train is not None:
        traced_step = _trace_train(fn, specs, train, ctx, maxima)
        train_stage = artifact.compile_stage(traced_step.program, entry=f"{name}_train_forward")
        train_source, train_info = artifact.render_train(
            name, traced_step, train_stage, segment, _class_labels(train, traced_step, specs, outs))
        files[f"{name}_train.c"] = train_source
        traced_state = trace_state_inference(fn, specs, ctx=ctx, name=f"{name}_run_state",
                                             maxima=maxima)
        state_stage = artifact.compile_stage(traced_state.program, entry=f"{name}_state_forward")
        files[f"{name}_run_state.c"], train_info["run_state"] = artifact.render_run_state(
            name, traced_state, state_stage, segment, train_info)
    weight_files = artifact.render_weights(name, segment, weights, VERSION)
    blob = segment.tobytes() if weights != "embed" else b""
    src_hash = artifact.source_hash(*(f for f in files.values() if isinstance(f, str)))
    files[f"{name}.h"] = artifact.render_header(name, ins, outs, stage, segment, options,
                                                src_hash, train_info, artifact.crc32(blob))
    files.update(weight_files)
    objects = [f"{name}.o", f"{name}_weights.o"] + \
        ([f"{name}_train.o", f"{name}_run_state.o"] if train else [])
    if weights == "blob":
        objects.append(f"{name}_weights_blob.o")
    libs = [f"lib{name}.a"] + ([f"lib{name}.so"] if tc.shared else [])
    files["Makefile"] = artifact.render_makefile(name, VERSION, tc, openmp, objects, libs,
                                                 blob=weights == "blob")
    manifest = manifest_of(name, reference, checkpoint, traced, stage, ins, outs, segment, options,
                         tc, src_hash, artifact.crc32(blob), train_info, train_stage, train)
    manifest["export_seconds"] = round(time.perf_counter() - started, 3)
    return write_artifact(out_dir, name, files, manifest, tc, libs, build)


def check_name(name: str) -> None:
    """Raises UsageError unless `name` (--name, the prefix of every C symbol) is a C
    identifier that is not a system header's name (NAME.h would hide that header)."""
    if not _NAME.match(name):
        raise UsageError(f"--name must be a C identifier, got {name!r}")
    if name in SYSTEM_HEADERS:
        raise UsageError(f"--name {name}: {name}.h would hide the system header <{name}.h> "
                         f"from code compiled with -I on the export's folder; choose another "
                         f"name, e.g. --name {name}_model")


def _class_labels(train: TrainSpec, traced_step: Traced, specs, outs) -> dict[str, int]:
    """{label name: number of classes} for the labels of a sparse categorical loss
    (they index the last dimension of the model's one output), which NAME_train_step
    range-checks; {} for other losses."""
    loss = train.loss if isinstance(train.loss, str) else getattr(train.loss, "__name__", "")
    if not loss.startswith("sparse_categorical") or len(outs) != 1 or not outs[0]["shape"]:
        return {}
    return {n: outs[0]["shape"][-1] for n in traced_step.input_names[len(specs):]}


def _labels(train: TrainSpec) -> list[InputSpec]:
    labels = [parse_input(i, "--label") if isinstance(i, str) else i for i in train.labels]
    if not labels:
        raise UsageError("--train requires --label NAME:DTYPE[DIMS] (the training targets)")
    return labels


def _trace_train(fn, specs, train: TrainSpec, ctx, maxima: dict[str, int]) -> Traced:
    from mlframework.ml import losses, optimizers
    labels = _labels(train)
    loss = train.loss
    if isinstance(loss, str):
        loss = getattr(losses, loss, None)
        if not callable(loss):
            raise UsageError(f"--loss {train.loss!r} is not a function in mlframework.ml.losses")
    optimizer = train.optimizer
    if isinstance(optimizer, str):
        kind, _, rate = optimizer.partition(":")
        classes = {c.lower(): getattr(optimizers, c) for c in dir(optimizers)
                   if isinstance(getattr(optimizers, c), type)}
        if kind.lower() not in classes:
            raise UsageError(f"--optimizer {optimizer!r}: unknown optimizer {kind!r}; use e.g. "
                             "adam:0.001 or sgd:0.1")
        try:
            optimizer = classes[kind.lower()](float(rate)) if rate else classes[kind.lower()]()
        except ValueError:
            raise UsageError(f"--optimizer {optimizer!r}: the learning rate must be a "
                             "number") from None
    return trace_train_step(fn, specs, labels, ctx=ctx, loss=loss, optimizer=optimizer,
                            maxima=maxima)


def write_artifact(out_dir, name: str, files: dict, manifest: dict, tc: Toolchain,
                   libs: list[str], build: bool) -> Artifact:
    """Writes `files` ({filename: text or bytes}), runtime/ (the headers the code
    includes) and manifest.json into out_dir (created), then builds `libs` with the
    Makefile among `files` unless `build` is False.

    Raises:
        BuildError: the C compiler failed.
    """
    out_dir = Path(out_dir)
    _write(out_dir, files, manifest)
    art = Artifact(out_dir, name, manifest, sorted(files) + ["manifest.json", "runtime/"])
    if build:
        build_artifact(out_dir, tc)
        art.files = sorted(art.files + libs)
    return art


def _write(out_dir: Path, files: dict, manifest: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, content in files.items():
        path = out_dir / fname
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    runtime = out_dir / "runtime"
    runtime.mkdir(exist_ok=True)
    for h in RUNTIME.glob("*.h"):
        shutil.copyfile(h, runtime / h.name)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def build_artifact(out_dir: Path, tc: Toolchain | None = None, jobs: int = 2) -> None:
    """Runs the exported Makefile.

    Raises:
        BuildError: with the compiler's output.
    """
    make = shutil.which("make")
    if make is None:
        raise BuildError("`make` is not installed; install it or build with the commands "
                         f"in {out_dir}/Makefile")
    result = subprocess.run([make, "-s", f"-j{jobs}", "-C", str(out_dir), f"ZIG={ZIG}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"building {out_dir} ({tc.target if tc else HOST}) failed:\n"
                         f"{(result.stdout + result.stderr).strip()[-4000:]}")


__all__ = ["Artifact", "BuildError", "InputSpec", "TrainSpec", "UsageError", "export_model"]
