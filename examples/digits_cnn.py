"""Train a small convolutional network on scikit-learn's handwritten digits (8x8 images).

    .venv/bin/python examples/digits_cnn.py --epochs 15 --plot runs/cnn/loss.png

Two 3x3 convolutions with batch norm and max pooling, then a dense head
with dropout. Options as in digits_mlp.py.
"""
from __future__ import annotations

import argparse

import mlframework as mlf
from mlframework import graph as G
from mlframework.ml import Context, checkpoints, datasets, layers, losses, optimizers, train


def model(ctx, x):
    """[batch, 1, 8, 8] images -> [batch, 10] logits."""
    for i, filters in enumerate((16, 32)):
        block = ctx / f"block{i}"
        x = layers.conv2d(block, x, filters, 3, padding="same", use_bias=False)
        x = G.relu(layers.batch_norm(block, x, momentum=0.9))
        x = layers.max_pool(x, 2)                      # 8x8 -> 4x4 -> 2x2
    x = G.flatten(x, 1)
    x = layers.dense(ctx / "hidden", x, 64, activation="relu")
    x = layers.dropout(ctx, x, 0.2)
    return layers.dense(ctx / "logits", x, 10)


def run(backend=None, epochs: int = 15, batch_size: int = 32, learning_rate: float = 2e-3,
        seed: int = 0, checkpoint_dir=None, plot=None, progress: bool = True):
    """Trains and evaluates; returns (trainer, history, test scores)."""
    backend = mlf.backends.new(backend)
    (x_train, y_train), (x_test, y_test) = datasets.load_digits(seed=seed, images=True)
    train_ds = datasets.InMemory((x_train, y_train), batch_size, shuffle=True, seed=seed,
                                 drop_remainder=True).prefetch(2)
    test_ds = datasets.InMemory((x_test, y_test), 128)
    ctx = Context(seed=seed)
    trainer = train.Trainer(backend, ctx, model, losses.sparse_categorical_cross_entropy_logits,
                            optimizers.AdamW(learning_rate, weight_decay=1e-4),
                            metrics={"accuracy": train.accuracy})
    callbacks = [train.ProgressBar()] if progress else []
    if checkpoint_dir:
        ckpt = checkpoints.Checkpointer(checkpoint_dir, keep=3)
        info = ckpt.restore(ctx)
        if info is not None:
            train_ds.restore(info.extra["dataset"])
            print(f"resumed from {info.path} (step {info.step})")
        callbacks.append(train.SaveCheckpoints(ckpt))
    if plot:
        callbacks.append(train.Plot(plot, title="digits CNN"))
    loop = train.Loop(trainer, eval_dataset=test_ds, callbacks=callbacks)
    remaining = max(0, epochs - trainer.step // len(train_ds))
    history = loop.run_epochs(train_ds, remaining)
    return trainer, history, trainer.evaluate(test_ds)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None,
                        help="backend name (default: $MLF_BACKEND or xla)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
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
