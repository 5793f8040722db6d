"""End-to-end training: the digits examples, reproducibility, the loop's callbacks."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest

import mlframework as mlf
from mlframework.ml import Context, datasets, losses, optimizers, train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import digits_mlp  # noqa: E402

_LOSSES: dict[str, list[float]] = {}


def test_mlp_example_reaches_95_percent_on_digits(backend):
    _, history, scores = digits_mlp.run(backend.name, epochs=15, progress=False)
    assert scores["accuracy"] >= 0.95, scores
    assert history.losses[-1] < history.losses[0] / 10


def first_losses(backend_name: str, steps: int = 50) -> list[float]:
    """The first train losses of the digits MLP with dropout (so the RNG matters)."""
    (x, y), _ = datasets.load_digits()
    ds = datasets.InMemory((x, y), 32, shuffle=True, seed=1, drop_remainder=True)
    ctx = Context(seed=7, dropout=0.1)
    trainer = train.Trainer(mlf.backends.new(backend_name), ctx, digits_mlp.model,
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
    return train.Loop(trainer).run_steps(ds, steps).losses


def cached_losses(backend_name: str) -> list[float]:
    if backend_name not in _LOSSES:
        _LOSSES[backend_name] = first_losses(backend_name)
    return _LOSSES[backend_name]


def test_same_seed_gives_the_same_losses(backend):
    a = cached_losses(backend.name)
    b = first_losses(backend.name)
    assert len(a) == 50
    assert a == b  # bit for bit on one backend


@pytest.mark.parametrize("name", [n for n in mlf.backends.names() if n != "xla"])
def test_first_50_losses_agree_with_xla(name):
    ref, ours = cached_losses("xla"), cached_losses(name)
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def tiny_problem(backend, lr=0.05, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32))[:, None]
    ds = datasets.InMemory((x, y), 16, shuffle=True, seed=seed, drop_remainder=True)
    model = lambda ctx, x: train_layers_dense(ctx, x)  # noqa: E731
    trainer = train.Trainer(backend, Context(seed=seed), model, losses.mse,
                            optimizers.SGD(lr), metrics={})
    return trainer, ds


def train_layers_dense(ctx, x):
    from mlframework.ml import layers
    return layers.dense(ctx, x, 1)


def test_loop_callbacks_progress_plot_and_early_stopping(backend, tmp_path):
    trainer, ds = tiny_problem(backend)
    out = io.StringIO()
    stopper = train.EarlyStopping(monitor="loss", patience=2, min_delta=1e9)
    events = []

    class Recorder:
        def on_start(self, loop):
            events.append("start")

        def on_epoch(self, loop, epoch):
            events.append(f"epoch{epoch}")

        def on_end(self, loop):
            events.append("end")

    loop = train.Loop(trainer, eval_dataset=ds, callbacks=[
        train.ProgressBar(file=out), train.Plot(tmp_path / "curves.png"), stopper, Recorder()])
    history = loop.run_epochs(ds, 10)
    # The first evaluation sets the best score; two more without a 1e9 improvement stop it.
    assert stopper.stopped_at == 12 and len(history.evals) == 3
    assert events == ["start", "epoch0", "epoch1", "epoch2", "end"]
    assert history.steps == list(range(1, 13)) and trainer.step == 12
    text = out.getvalue()
    assert "loss=" in text and "step" in text and "eval loss=" in text
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_steps_crosses_epochs_and_evaluate_pads_the_last_batch(backend):
    trainer, ds = tiny_problem(backend, lr=0.1)
    history = train.Loop(trainer).run_steps(ds, 30)  # 4 batches per epoch
    assert len(history.losses) == 30 and history.losses[-1] < 0.1 * history.losses[0]
    x, y = ds._leaves
    odd = datasets.InMemory((x[:50], y[:50]), 16)  # batches of 16, 16, 16, 2
    scores = trainer.evaluate(odd)
    w = trainer.ctx.get_variable("dense/weights").numpy()
    b = trainer.ctx.get_variable("dense/biases").numpy()
    np.testing.assert_allclose(scores["loss"], np.mean((x[:50] @ w + b - y[:50]) ** 2), rtol=1e-5)
    pred = trainer.predict(x[:3]).numpy()
    np.testing.assert_allclose(pred, x[:3] @ w + b, rtol=1e-5, atol=1e-6)


def test_fetch_every_skips_host_copies(backend):
    trainer, ds = tiny_problem(backend)
    history = train.Loop(trainer, fetch_every=4).run_steps(ds, 12)
    assert history.steps == [4, 8, 12] and trainer.step == 12


def test_cnn_example_learns(backend):
    import digits_cnn
    trainer, history, scores = digits_cnn.run(backend.name, epochs=3, progress=False)
    assert scores["accuracy"] >= 0.85, scores
    assert {"block0/batch_norm/moving_mean", "block1/conv/weights"} <= {
        v.name for v in trainer.ctx.variables()}
