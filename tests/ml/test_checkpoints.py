"""Checkpoints: exact resume, atomic saves under SIGKILL, clear errors for bad files."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlframework.core.tensors import Tensor
from mlframework.ml import Context, checkpoints, datasets, losses, optimizers, train

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
