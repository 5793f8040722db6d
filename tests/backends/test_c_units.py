"""The c backend's compile: identical kernels written once, kernel functions in parallel
units cached on their own, the runtime's GEMM and conv built ahead (or once, into the
cache) and linked."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import mlframework as mlf
from aot.build import compiler
from aot.build.pipeline import compile_program
from aot.codegen.emit import emit_module
from aot.passes.fusion import fuse
from aot.passes.memory_plan import plan_memory
from aot.passes.simplify import simplify
from aot.program.program import from_graph
from mlframework.ml import Context, layers, losses, optimizers, train
from mlframework.ml.context_exec import ContextExec

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 24)).astype(np.float32)
Y = RNG.integers(0, 10, 16).astype(np.int32)


def mlp(widths):
    def model(ctx, x):
        for i, w in enumerate(widths):
            x = layers.dense(ctx / f"hidden{i}", x, w, activation="relu")
        return layers.dense(ctx / "logits", x, 10)
    return model


def train_step_graph(widths):
    """The traced Adam train step of an MLP with hidden `widths` (batch 16)."""
    trainer = train.Trainer(mlf.backends.new("xla"), Context(seed=0), mlp(widths),
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
    trainer.train_step(X, Y)  # creates the variables
    return ContextExec(None, trainer.ctx, trainer.build_train_step, training=True,
                       name="train_step").graph(X, Y)


def train_step_module(widths):
    """(kernels, CModule) of `train_step_graph(widths)`."""
    program = simplify(from_graph(train_step_graph(widths)))
    kernels = fuse(program)
    return kernels, emit_module(program, kernels, plan_memory(program, kernels))


def test_identical_layers_share_one_function():
    kernels, module = train_step_module([32] * 6)
    code = [k for k in kernels if k.kind != "alias"]
    assert len(module.functions) < len(code) / 2
    assert sorted(t for f in module.functions for t in f.calls) == \
        [t for t, k in enumerate(kernels) if k.kind != "alias"]
    # the hidden layers' forward GEMMs with their ReLU epilogue: one function, 5 calls
    assert max(len(f.calls) for f in module.functions if f.kind == "dot") >= 5
    source = module.source()
    for f in module.functions:
        assert source.count(f"static void {f.name}(") == 1
        assert sum(line.strip().startswith(f"{f.name}(") for line in source.split("\n")) \
            == len(f.calls)


def test_deeper_models_add_calls_not_functions():
    _, six = train_step_module([32] * 6)
    _, twelve = train_step_module([32] * 12)
    assert {f.name for f in twelve.functions} == {f.name for f in six.functions}


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
def test_units_compile_without_warnings(openmp, tmp_path):
    _, module = train_step_module([32, 48])
    units = [("entry", module.entry_unit())] + compiler.unit_sources(module) + \
        [("runtime", (compiler.RUNTIME / "mlf_runtime_unit.c").read_text())]
    assert len(units) >= 3
    for n, (_, source) in enumerate(units):
        path = tmp_path / f"u{n}.c"
        path.write_text(source)
        proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / f"u{n}.o"), "-Wall", "-Wextra",
                               "-Werror", *compiler.FLAGS, *openmp, f"-I{compiler.RUNTIME}",
                               str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def _train(widths, backend):
    trainer = train.Trainer(backend, Context(seed=0), mlp(widths),
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-2))
    return [float(trainer.train_step(X, Y)["loss"].numpy()) for _ in range(3)]


def test_units_are_cached_on_their_own(tmp_path, monkeypatch):
    """A deeper model of the same layers compiles no kernel unit again; a model with one
    layer changed compiles exactly the units that hold a new function."""
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compiler, "PREBUILT", tmp_path / "not prebuilt")
    runs = {}
    for widths in ([32, 32, 32], [32, 32, 32, 32], [32, 40, 32, 32]):
        compiled = compile_program(from_graph(train_step_graph(widths)))
        _, module = train_step_module(widths)
        runs[len(runs)] = (compiled.timings, {f.name for f in module.functions},
                           {label: {f.name for f in fs} for label, fs in _units(module)})
    assert "gcc runtime (GEMM, conv)" in runs[0][0]
    deeper, changed = runs[1], runs[2]
    assert "cached runtime (GEMM, conv)" in deeper[0]
    assert "cached runtime (GEMM, conv)" in changed[0]
    assert deeper[1] == runs[0][1]
    assert not [k for k in deeper[0] if k.startswith("gcc unit")], deeper[0]
    new = changed[1] - deeper[1]
    assert new and changed[1] & deeper[1]
    compiled_units = {k[len("gcc "):] for k in changed[0] if k.startswith("gcc unit")}
    assert compiled_units == {label for label, names in changed[2].items() if names & new}
    assert _train([32, 40, 32], mlf.backends.new("c")) == \
        pytest.approx(_train([32, 40, 32], mlf.backends.new("xla")), rel=1e-5)


def _units(module):
    """(label, functions) of the units `compiler.unit_sources` makes of `module`."""
    labels = [label for label, _ in compiler.unit_sources(module)]
    return list(zip(labels, compiler.unit_groups(module)))


def test_a_prebuilt_runtime_is_linked_and_no_runtime_is_compiled(tmp_path, monkeypatch):
    """`prebuild` makes the runtime unit with and without OpenMP, readable by an install's
    other users, and drops objects of other runtimes or CPUs; a model built in an empty
    cache then links it and compiles only its kernels."""
    folder = tmp_path / "prebuilt"
    folder.mkdir()
    (folder / "runtime_0123456789abcdef01234567.o").write_bytes(b"an older runtime")
    objects = compiler.prebuild(folder)
    assert sorted(folder.iterdir()) == sorted(objects) and len(objects) == 2
    assert all(obj.stat().st_mode & 0o777 == 0o644 for obj in objects)
    built = [obj.stat().st_mtime_ns for obj in objects]
    assert compiler.prebuild(folder) == objects
    assert [obj.stat().st_mtime_ns for obj in objects] == built  # nothing rebuilt

    monkeypatch.setattr(compiler, "PREBUILT", folder)
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path / "cache"))
    for no_openmp in ("", "1"):
        monkeypatch.setenv("MLF_NO_OPENMP", no_openmp)
        compiled = compile_program(from_graph(train_step_graph([24])))
        assert "prebuilt runtime (GEMM, conv)" in compiled.timings
        assert not [k for k in compiled.timings if "runtime" in k and k.startswith("gcc")]
    assert _train([24], mlf.backends.new("c")) == \
        pytest.approx(_train([24], mlf.backends.new("xla")), rel=1e-5)


def test_the_runtime_key_names_the_cpu(monkeypatch):
    key = compiler.runtime_key(compiler.FLAGS)
    assert "-march=" in compiler.native_target()
    monkeypatch.setattr(compiler, "native_target", lambda: "gcc version 12 -march=znver9")
    assert compiler.runtime_key(compiler.FLAGS) != key
