"""Checkpoints: exact resume, atomic saves under SIGKILL, clear errors for bad files,
strict restores (missing variables are errors) and opt-in partial ones."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlframework.core.tensors import Tensor
from mlframework.ml.context_exec import MissingVariablesError
from mlframework.ml import (Context, ContextExec, VariableError, checkpoints, datasets, layers,
                            losses, optimizers, train)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import digits_mlp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def setup(backend):
    (x, y), _ = datasets.load_digits()
    ds = datasets.InMemory((x[:320], y[:320]), 32, shuffle=True, seed=3, drop_remainder=True)
    ctx = Context(seed=11, dropout=0.2)  # dropout: the RNG state must resume too
    trainer = train.Trainer(backend, ctx, digits_mlp.model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.AdamW(3e-3, clip_norm=1.0))
    return ctx, trainer, ds.prefetch(2)


def test_resume_equals_uninterrupted_training_bit_for_bit(backend, tmp_path):
    ctx, trainer, ds = setup(backend)
    full = train.Loop(trainer).run_steps(ds, 24).losses  # crosses two epoch boundaries
    expected = {v.name: v.numpy() for v in ctx.variables()}

    ctx, trainer, ds = setup(backend)
    saver = train.SaveCheckpoints(checkpoints.Checkpointer(tmp_path, keep=2), each_epoch=False)
    first = train.Loop(trainer, callbacks=[saver]).run_steps(ds, 13).losses

    ctx, trainer, ds = setup(backend)  # a fresh context, trainer (new graphs) and dataset
    info = checkpoints.Checkpointer(tmp_path).restore(ctx)
    assert info.step == 13 and trainer.step == 13
    ds.restore(info.extra["dataset"])
    rest = train.Loop(trainer).run_steps(ds, 11).losses
    assert first + rest == full
    for v in ctx.variables():
        np.testing.assert_array_equal(v.numpy(), expected[v.name], err_msg=v.name)


def test_checkpoint_contents_and_keep_last_n(tmp_path):
    ctx = Context(seed=4, learning_rate=0.5, schedule=lambda s: s)
    (ctx / "block").set_params(units=3)
    ctx.create_variable("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    ctx.create_variable("count", np.array(7, np.int32), trainable=False)
    ckpt = checkpoints.Checkpointer(tmp_path / "run", keep=2)
    for step in (1, 2, 3, 4):
        ckpt.save(ctx, step=step, extra={"note": step})
    assert [p.name for p in ckpt.checkpoints()] == ["ckpt-00000003.json", "ckpt-00000004.json"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "ckpt-00000003.json", "ckpt-00000003.safetensors", "ckpt-00000004.json",
        "ckpt-00000004.safetensors"]
    fresh = Context()
    info = ckpt.restore(fresh)
    assert info.step == 4 and info.extra == {"note": 4}
    assert fresh.seed == 4 and fresh.get_param("learning_rate") == 0.5
    assert (fresh / "block").get_param("units") == 3 and fresh.get_param("schedule") is None
    np.testing.assert_array_equal(fresh.get_variable("w").numpy(), ctx.get_variable("w").numpy())
    assert not fresh.get_variable("count").trainable
    assert checkpoints.Checkpointer(tmp_path / "empty").restore(Context()) is None


def test_restore_rejects_a_variable_of_another_shape(tmp_path):
    ctx = Context()
    ctx.create_variable("w", np.zeros((2, 3), np.float32))
    path = checkpoints.save(ctx, tmp_path, step=1)
    other = Context()
    other.create_variable("w", np.zeros((3, 2), np.float32))
    with pytest.raises(checkpoints.CheckpointError, match=r"'w' as float32\[2, 3\]"):
        checkpoints.restore(other, path)


X = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)


def body(ctx, x):
    return layers.dense(ctx / "body", x, 3, activation="tanh")


def old_model(ctx, x):  # body and an old head
    return layers.dense(ctx / "old_head", body(ctx, x), 2)


def new_model(ctx, x):  # the same body, a new head
    return layers.dense(ctx / "new_head", body(ctx, x), 5)


def biased(ctx, scope: str, value: float) -> None:
    """Makes every variable under `scope` hold `value` (zeros could hide a missed restore)."""
    for v in (ctx / scope).variables():
        v.value = Tensor(np.full(v.spec.dims, value, v.spec.dtype.numpy))


def values(ctx) -> dict:
    return {v.name: np.array(v.numpy()) for v in ctx.variables()}


@pytest.fixture
def old_ckpt(backend, tmp_path):
    ctx = Context(seed=1)
    ContextExec(backend, ctx, old_model)(X)
    biased(ctx, "body", 0.25)
    biased(ctx, "old_head", -0.5)
    return ctx, checkpoints.save(ctx, tmp_path, step=3)


def test_a_model_reading_variables_a_strict_restore_lacks_raises_naming_them(backend, old_ckpt):
    saved_ctx, path = old_ckpt
    ctx = Context()
    info = checkpoints.restore(ctx, path)
    assert info.missing == [] and info.unexpected == sorted(values(saved_ctx))
    before = values(ctx)
    with pytest.raises(checkpoints.VariablesNotInCheckpointError) as e:
        ContextExec(backend, ctx, new_model)(X)
    message = str(e.value)
    assert "new_head/dense/biases, new_head/dense/weights" in message
    assert path.name in message and "strict=False" in message
    assert e.value.names == ["new_head/dense/biases", "new_head/dense/weights"]
    assert isinstance(e.value, checkpoints.CheckpointError)
    # nothing was created, and the checkpoint's own model still runs on its weights
    assert values(ctx).keys() == before.keys()
    got = ContextExec(backend, ctx, old_model)(X).numpy()
    want = np.tanh(X @ np.full((4, 3), 0.25) + 0.25) @ np.full((3, 2), -0.5) - 0.5
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_trainer_after_a_strict_restore_lacking_weights_raises(backend, old_ckpt):
    _, path = old_ckpt
    ctx = Context()
    checkpoints.Checkpointer(path.parent).restore(ctx)
    trainer = train.Trainer(backend, ctx, new_model,
                            losses.sparse_categorical_cross_entropy_logits, optimizers.SGD(0.1))
    with pytest.raises(checkpoints.CheckpointError, match=r"2 variables that train_step reads: "
                                                          r"new_head/dense/biases"):
        trainer.train_step(X, np.array([0, 1], np.int32))
    assert "new_head/dense/weights" not in values(ctx)


def test_variable_outside_a_trace_after_a_strict_restore_raises(old_ckpt):
    _, path = old_ckpt
    ctx = Context()
    checkpoints.restore(ctx, path)
    with pytest.raises(checkpoints.VariablesNotInCheckpointError, match=r"lacks 1 variable that "
                                                                        r"ctx.variable\('w'\)"):
        (ctx / "extra").variable("w", (2,))
    assert (ctx / "body" / "dense").variable("weights", (4, 3)).spec.dims == (4, 3)  # restored
    ctx.create_variable("explicit", np.ones(2, np.float32))  # an explicit value is no initializer


def test_strict_restore_into_a_built_context_names_the_missing_and_changes_nothing(backend,
                                                                                   old_ckpt):
    _, path = old_ckpt
    ctx = Context(seed=7)
    ContextExec(backend, ctx, new_model)(X)
    before = values(ctx)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"lacks 2 variables that the context holds: new_head/dense/biases, "
                             r"new_head/dense/weights; .*strict=False"):
        checkpoints.restore(ctx, path)
    after = values(ctx)
    assert after.keys() == before.keys() and ctx.seed == 7
    for name, value in before.items():  # body/... was not overwritten either
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_partial_restore_returns_missing_and_unexpected(backend, old_ckpt):
    _, path = old_ckpt
    ctx = Context(seed=7)
    ContextExec(backend, ctx, new_model)(X)
    head = values(ctx / "new_head")
    info = checkpoints.restore(ctx, path, strict=False)
    assert info.missing == ["new_head/dense/biases", "new_head/dense/weights"]
    assert info.unexpected == ["old_head/dense/biases", "old_head/dense/weights"]
    for name, value in values(ctx / "body").items():
        np.testing.assert_array_equal(value, 0.25, err_msg=name)
    for name, value in head.items():  # kept its values
        np.testing.assert_array_equal(values(ctx)[name], value, err_msg=name)
    got = ContextExec(backend, ctx, new_model)(X).numpy()
    w, b = head["new_head/dense/weights"], head["new_head/dense/biases"]
    np.testing.assert_allclose(got, np.tanh(X @ np.full((4, 3), 0.25) + 0.25) @ w + b,
                               rtol=1e-5, atol=1e-6)
    ctx.forget_variables(info.unexpected)  # the old head is dropped so later saves lack it
    assert "old_head/dense/weights" not in values(ctx)


def test_partial_restore_into_a_fresh_context_lets_the_model_create_the_rest(backend, old_ckpt):
    _, path = old_ckpt
    ctx = Context()
    info = checkpoints.Checkpointer(path.parent).restore(ctx, strict=False)
    assert info.missing == []
    out = ContextExec(backend, ctx, new_model)(X).numpy()
    assert out.shape == (2, 5)
    np.testing.assert_array_equal(values(ctx)["new_head/dense/biases"], 0.0)  # initializer


def _trained(backend, optimizer, tmp_path):
    ctx = Context(seed=2)
    trainer = train.Trainer(backend, ctx, old_model,
                            losses.sparse_categorical_cross_entropy_logits, optimizer)
    trainer.train_step(X, np.array([0, 1], np.int32))
    return ctx


def test_strict_restore_lets_another_optimizer_start_fresh(backend, tmp_path):
    ctx = _trained(backend, optimizers.Adam(1e-2), tmp_path)
    path = checkpoints.save(ctx, tmp_path, step=1)
    fresh = Context()
    checkpoints.restore(fresh, path)
    trainer = train.Trainer(backend, fresh, old_model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.SGD(0.1, momentum=0.9))
    trainer.train_step(X, np.array([0, 1], np.int32))
    assert trainer.step == 2
    np.testing.assert_array_equal(  # momentum's buffer is the first step's gradient, not zero
        values(fresh)["optimizer/sgd/momentum/old_head/dense/biases"] != 0, True)


def test_strict_restore_rejects_partial_optimizer_state(backend, tmp_path):
    ctx = _trained(backend, optimizers.Adam(1e-2), tmp_path)
    lost = "optimizer/adam/m/old_head/dense/weights"
    assert lost in values(ctx)
    ctx.forget_variables([lost])
    path = checkpoints.save(ctx, tmp_path, step=1)
    fresh = Context()
    checkpoints.restore(fresh, path)
    trainer = train.Trainer(backend, fresh, old_model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(1e-2))
    with pytest.raises(checkpoints.CheckpointError, match=rf"1 variable that train_step reads: "
                                                          rf"{lost}; "):
        trainer.train_step(X, np.array([0, 1], np.int32))


def test_the_missing_variables_error_is_a_variable_error_too(backend, old_ckpt):
    _, path = old_ckpt
    ctx = Context()
    checkpoints.restore(ctx, path)
    with pytest.raises(checkpoints.VariablesNotInCheckpointError) as e:
        ContextExec(backend, ctx, new_model).graph(X)
    assert isinstance(e.value, VariableError)  # what ContextExec.graph callers already catch
    assert isinstance(e.value, MissingVariablesError) and path.name in str(e.value)
    assert "new_head/dense/weights" not in values(ctx)


def test_restore_with_a_mismatched_shape_changes_nothing(tmp_path):
    ctx = Context()
    ctx.create_variable("a", np.ones(2, np.float32))
    ctx.create_variable("b", np.zeros((2, 3), np.float32))
    path = checkpoints.save(ctx, tmp_path, step=1)
    other = Context(seed=5)
    other.create_variable("a", np.full(2, 9.0, np.float32))  # restored first if it went in order
    other.create_variable("b", np.zeros((3, 2), np.float32))
    for strict in (True, False):
        with pytest.raises(checkpoints.CheckpointError, match=r"'b' as float32\[2, 3\]"):
            checkpoints.restore(other, path, strict=strict)
        np.testing.assert_array_equal(other.get_variable("a").numpy(), 9.0)
        assert other.seed == 5


@pytest.mark.parametrize("key", ["step", "seed", "tensors_file", "tensors_bytes",
                                 "tensors_sha256", "variables", "params", "extra", "version"])
def test_sidecar_lacking_a_key_names_it(saved, key):
    meta = json.loads(saved.read_text())
    del meta[key]
    saved.write_text(json.dumps(meta))
    ctx = Context()
    with pytest.raises(checkpoints.CheckpointError,
                       match=rf"{saved.name} has the format tag but lacks the key '{key}'"):
        checkpoints.restore(ctx, saved)
    assert ctx.variables() == []


def test_sidecar_lacking_several_keys_names_them_all(saved):
    meta = json.loads(saved.read_text())
    meta = {"format": meta["format"], "step": 5}
    saved.write_text(json.dumps(meta))
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"lacks the keys 'version', 'seed', 'tensors_file', "
                             r"'tensors_bytes', 'tensors_sha256', 'variables', 'params', 'extra'"):
        checkpoints.read(saved)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(step="5"), r"key 'step' holds a string, expected integer"),
    (lambda m: m.update(variables=[]), r"key 'variables' holds a array, expected object"),
    (lambda m: m["variables"]["w"].pop("shape"), r"variable 'w' lacks 'shape'"),
    (lambda m: m["variables"]["w"].update(trainable=1),
     r"variable 'w' has 'trainable' of type integer, expected boolean"),
    (lambda m: m.update(version=2), r"format version 2; this mlframework reads version 1"),
    (lambda m: m.update(tensors_file="../elsewhere.safetensors"), r"must name a file next to it"),
], ids=["step-type", "variables-type", "variable-shape", "trainable-type", "version", "path"])
def test_malformed_sidecar_says_what_is_wrong(saved, edit, message):
    meta = json.loads(saved.read_text())
    edit(meta)
    saved.write_text(json.dumps(meta))
    with pytest.raises(checkpoints.CheckpointError, match=message):
        checkpoints.restore(Context(), saved)


@pytest.fixture
def saved(tmp_path):
    ctx = Context()
    ctx.create_variable("w", np.random.default_rng(0).normal(size=(100, 10)).astype(np.float32))
    return checkpoints.save(ctx, tmp_path, step=5)


def test_truncated_tensors_file_names_the_file(saved):
    tensors = saved.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:1000])
    with pytest.raises(checkpoints.CheckpointError,
                       match=rf"{tensors.name} is truncated.*1000 bytes"):
        checkpoints.restore(Context(), saved)


def test_corrupt_tensors_file_names_the_file(saved):
    tensors = saved.with_suffix(".safetensors")
    data = bytearray(tensors.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(checkpoints.CheckpointError, match=rf"{tensors.name} is corrupt"):
        checkpoints.restore(Context(), saved)


def test_corrupt_or_truncated_json_names_the_file(saved):
    saved.write_bytes(saved.read_bytes()[:40])
    with pytest.raises(checkpoints.CheckpointError, match=rf"{saved.name} is corrupt or truncated"):
        checkpoints.restore(Context(), saved)


def test_missing_tensors_file_names_the_file(saved):
    saved.with_suffix(".safetensors").unlink()
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"ckpt-00000005.safetensors .*does not exist"):
        checkpoints.restore(Context(), saved)


KILLED_SAVE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from mlframework.core.tensors import Tensor
    from mlframework.ml import Context, checkpoints
    directory, stop_at = sys.argv[1], int(sys.argv[2])
    ctx = Context()
    ctx.create_variable("big", np.full(2_000_000, 1.0, np.float32))
    ckpt = checkpoints.Checkpointer(directory, keep=2)
    ckpt.save(ctx, step=1)
    ctx.get_variable("big").value = Tensor(np.full(2_000_000, 2.0, np.float32))
    calls = []
    real = checkpoints._fsync
    def fsync(fd):  # the stop_at-th fsync of the second save: the parent kills us here
        calls.append(fd)
        if len(calls) == stop_at:
            print("MIDWAY", flush=True)
            time.sleep(600)
        real(fd)
    checkpoints._fsync = fsync
    ckpt.save(ctx, step=2)
    print("DONE", flush=True)
""")


# fsync 1: the tensors' temporary file (written, not yet renamed);
# fsync 3: the JSON's temporary file (the new tensors file already renamed into place).
@pytest.mark.parametrize("stop_at", [1, 3], ids=["tensors-written", "json-written"])
def test_save_killed_midway_leaves_the_previous_checkpoint(tmp_path, stop_at):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(tmp_path), str(stop_at)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "MIDWAY"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert any(".tmp-" in n for n in leftovers)  # the interrupted write's temporary file
    ckpt = checkpoints.Checkpointer(tmp_path, keep=2)
    ctx = Context()
    info = ckpt.restore(ctx)
    assert info.step == 1
    np.testing.assert_array_equal(ctx.get_variable("big").numpy(), 1.0)
    ctx.get_variable("big").value = Tensor(np.full(2_000_000, 3.0, np.float32))
    ckpt.save(ctx, step=3)  # the next save cleans up what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-00000001.json", "ckpt-00000001.safetensors",
        "ckpt-00000003.json", "ckpt-00000003.safetensors"]


def test_repeated_saves_killed_at_random_moments_stay_readable(tmp_path):
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from mlframework.core.tensors import Tensor
        from mlframework.ml import Context, checkpoints
        ctx = Context()
        ctx.create_variable("big", np.zeros(1_000_000, np.float32))
        ckpt = checkpoints.Checkpointer(sys.argv[1], keep=2)
        step = 0
        while True:
            step += 1
            ctx.get_variable("big").value = Tensor(np.full(1_000_000, step, np.float32))
            ckpt.save(ctx, step=step)
            print(step, flush=True)
    """)
    rng = np.random.default_rng(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            proc.stdout.readline()  # at least one checkpoint exists
            proc.stdout.readline()
            import time
            time.sleep(rng.uniform(0, 0.05))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        ctx = Context()
        info = checkpoints.Checkpointer(tmp_path).restore(ctx)
        np.testing.assert_array_equal(ctx.get_variable("big").numpy(), float(info.step))
