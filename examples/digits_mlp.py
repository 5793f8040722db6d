"""Train a multi-layer perceptron on scikit-learn's handwritten digits (8x8 images).

    .venv/bin/python examples/digits_mlp.py --epochs 20 --checkpoint-dir runs/mlp \
        --plot runs/mlp/loss.png

Runs on any backend (--backend, default $MLF_BACKEND or "xla"). With
--checkpoint-dir it saves a checkpoint after every epoch and, when the
directory already holds one, resumes from it exactly.
"""
from __future__ import annotations

import argparse

import mlframework as mlf
from mlframework.ml import Context, checkpoints, datasets, layers, losses, optimizers, train


def model(ctx, x):
    """[batch, 64] pixels -> [batch, 10] logits."""
    x = layers.dense(ctx / "hidden1", x, 128, activation="relu")
    x = layers.dropout(ctx, x, ctx.get_param("dropout", 0.0))
    x = layers.dense(ctx / "hidden2", x, 64, activation="relu")
    return layers.dense(ctx / "logits", x, 10)


def run(backend=None, epochs: int = 20, batch_size: int = 32, learning_rate: float = 1e-3,
        seed: int = 0, checkpoint_dir=None, plot=None, progress: bool = True,
        dropout: float = 0.0):
    """Trains and evaluates; returns (trainer, history, test scores)."""
    backend = mlf.backends.new(backend)
    (x_train, y_train), (x_test, y_test) = datasets.load_digits(seed=seed)
    train_ds = datasets.InMemory((x_train, y_train), batch_size, shuffle=True, seed=seed,
                                 drop_remainder=True).prefetch(2)
    test_ds = datasets.InMemory((x_test, y_test), 128)
    ctx = Context(seed=seed, dropout=dropout)
    trainer = train.Trainer(backend, ctx, model, losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(learning_rate), metrics={"accuracy": train.accuracy})
    callbacks = [train.ProgressBar()] if progress else []
    if checkpoint_dir:
        ckpt = checkpoints.Checkpointer(checkpoint_dir, keep=3)
        info = ckpt.restore(ctx)
        if info is not None:
            train_ds.restore(info.extra["dataset"])
            print(f"resumed from {info.path} (step {info.step})")
        callbacks.append(train.SaveCheckpoints(ckpt))
    if plot:
        callbacks.append(train.Plot(plot, title="digits MLP"))
    loop = train.Loop(trainer, eval_dataset=test_ds, callbacks=callbacks)
    remaining = max(0, epochs - trainer.step // len(train_ds))
    history = loop.run_epochs(train_ds, remaining)
    scores = trainer.evaluate(test_ds)
    return trainer, history, scores


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None,
                        help="backend name (default: $MLF_BACKEND or xla)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--plot", default=None, help="save the loss curves to this PNG")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    _, _, scores = run(args.backend, args.epochs, args.batch_size, args.learning_rate, args.seed,
                       args.checkpoint_dir, args.plot, not args.no_progress)
    print(f"test loss {scores['loss']:.4f}  test accuracy {scores['accuracy']:.2%}")
    return scores


if __name__ == "__main__":
    main()
