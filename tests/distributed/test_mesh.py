"""One process, four host devices: the digits MLP data-parallel and FSDP-sharded matches the
single-device run with the same global batch; the layout's errors; the c backend's refusal."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import mlframework as mlf
from mlframework import distributed
from mlframework.ml import Context, losses, optimizers, train
import distributed_jobs as jobs

FOUR_DEVICES = "--xla_force_host_platform_device_count=4"


def test_mesh_of_four_gives_the_single_device_run_with_the_rules_shardings(tmp_path):
    """One test for one subprocess (pytest-xdist would run a shared fixture once per
    worker): 100 steps on one device, then replicated and FSDP-sharded on a mesh of 4."""
    out = tmp_path / "runs.json"
    cmd = [sys.executable, str(jobs.WORKER), "--modes", "single,replicated,fsdp",
           "--steps", "100", "--out", str(out)]
    done = subprocess.run(cmd, cwd=jobs.ROOT, env=jobs.environment(XLA_FLAGS=FOUR_DEVICES),
                          capture_output=True, text=True, timeout=jobs.TIMEOUT_S)
    assert done.returncode == 0, jobs.tail(done)
    runs = json.loads(out.read_text())
    single = runs["single"]
    reference = jobs.weights(single)
    for mode in ("replicated", "fsdp"):
        run = runs[mode]
        assert run["devices"] == 4 and len(run["losses"]) == len(single["losses"]) == 100
        np.testing.assert_allclose(run["losses"], single["losses"], rtol=0, atol=1e-5,
                                   err_msg=mode)
        assert run["losses"][-1] < run["losses"][0] / 3, mode  # it learned
        final = jobs.weights(run)
        assert final.keys() == reference.keys()
        for name in reference:
            np.testing.assert_allclose(final[name], reference[name], rtol=0, atol=1e-5,
                                       err_msg=f"{mode}: {name}")
    replicated = runs["replicated"]["shardings"]
    assert len(replicated) == 19 and all(spec == [] for spec in replicated.values())
    fsdp = runs["fsdp"]["shardings"]
    assert fsdp.keys() == replicated.keys()
    for name, spec in fsdp.items():
        assert spec == jobs.fsdp_spec(name), name


LAYOUT_ERRORS = """
import numpy as np, mlframework as mlf
from mlframework import distributed
from mlframework.ml import Context, layers, losses, optimizers, train
trainer = train.Trainer(mlf.backends.new("xla"), Context(seed=0),
                        lambda c, x: layers.dense(c, x, 3), losses.mse, optimizers.SGD(0.1),
                        mesh=distributed.Mesh())
try:
    trainer.train_step(np.zeros((6, 4), np.float32), np.zeros((6, 3), np.float32))
except ValueError as e:
    print("BATCH:", e)
bad = train.Trainer(mlf.backends.new("xla"), Context(seed=0),
                    lambda c, x: layers.dense(c, x, 3), losses.mse, optimizers.SGD(0.1),
                    mesh=distributed.Mesh(variables=lambda name, shape, n: ("data",) * len(shape)))
try:
    bad.train_step(np.zeros((8, 4), np.float32), np.zeros((8, 3), np.float32))
except ValueError as e:
    print("RULE:", e)
"""


def test_a_batch_or_rule_that_does_not_fit_the_mesh_is_named():
    done = subprocess.run([sys.executable, "-c", LAYOUT_ERRORS], cwd=jobs.ROOT,
                          env=jobs.environment(XLA_FLAGS=FOUR_DEVICES), capture_output=True,
                          text=True, timeout=jobs.TIMEOUT_S)
    assert done.returncode == 0, jobs.tail(done)
    batch = next(x for x in done.stdout.splitlines() if x.startswith("BATCH:"))
    assert "[6, 4]" in batch and "not divisible by the 4 devices" in batch
    assert "multiple of 4" in batch
    rule = next(x for x in done.stdout.splitlines() if x.startswith("RULE:"))
    assert "variable 'dense/biases' [3] across 4 devices, which do not divide it" in rule


def test_c_backend_refuses_a_mesh():
    with pytest.raises(distributed.MeshNotSupportedError, match=r"'c' backend cannot take a "
                       r"mesh.*'xla' backend.*docs/distributed.md"):
        train.Trainer(mlf.backends.new("c"), Context(seed=0), lambda c, x: x, losses.mse,
                      optimizers.SGD(0.1), mesh=distributed.Mesh())


def test_a_mesh_of_one_device_trains_as_without_one():
    from mlframework.ml import datasets, layers
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], np.float32)

    def losses_of(mesh):
        trainer = train.Trainer(mlf.backends.new("xla"), Context(seed=0),
                                lambda c, v: layers.dense(c, v, 1), losses.mse,
                                optimizers.SGD(0.05), mesh=mesh)
        ds = datasets.InMemory((x, y), 16, shuffle=True, seed=0, drop_remainder=True)
        if mesh is not None:
            ds = distributed.GlobalBatches(ds, mesh)
        return train.Loop(trainer).run_steps(ds, 12).losses, trainer

    plain, _ = losses_of(None)
    meshed, trainer = losses_of(distributed.Mesh(variables=distributed.fsdp(min_size=0)))
    np.testing.assert_allclose(meshed, plain, rtol=1e-6)
    assert trainer.evaluate(datasets.InMemory((x, y), 16))["loss"] == pytest.approx(
        float(np.mean((trainer.predict(x).numpy() - y) ** 2)), rel=1e-5)


def test_a_graph_not_of_a_context_is_refused_by_the_mesh():
    from mlframework import graph as G
    backend = distributed.Mesh().backend_for(mlf.backends.new("xla"))
    with pytest.raises(ValueError, match=r"mesh runs the graphs of ContextExec.*taking "
                       r"\(variables, \*batch\)"):
        G.Exec(backend, lambda x: x * 2.0)(np.ones(4, np.float32))
