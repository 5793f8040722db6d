"""The digits MLP trained on every device of every process of a job (docs/distributed.md).

    # one process, four host devices
    XLA_FLAGS=--xla_force_host_platform_device_count=4 \
        .venv/bin/python examples/digits_distributed.py
    # two processes on this machine
    .venv/bin/python -m mlframework.distributed.launch --nproc 2 examples/digits_distributed.py \
        --checkpoint-dir runs/digits-dist

The global batch (--batch-size, a multiple of the number of devices) is
split across the devices; each process reads only its rows, ahead of the
step in a background thread. Variables of at
least --fsdp-min-size elements are sharded, smaller ones replicated. With
--checkpoint-dir, process 0 saves a checkpoint every epoch and a restarted
job resumes from the latest one.
"""
from __future__ import annotations

import argparse

from mlframework import distributed

distributed.initialize()  # before anything runs on a device; nothing to do alone

import mlframework as mlf  # noqa: E402
from digits_mlp import model  # noqa: E402
from mlframework.ml import Context, datasets, losses, optimizers, train  # noqa: E402


def run(epochs: int = 10, batch_size: int = 64, fsdp_min_size: int = 2 ** 18,
        checkpoint_dir=None, seed: int = 0):
    """Trains and evaluates; returns (trainer, history, test scores)."""
    mesh = distributed.Mesh(variables=distributed.fsdp(fsdp_min_size))
    (x_train, y_train), (x_test, y_test) = datasets.load_digits(seed=seed)
    train_ds = distributed.GlobalBatches(
        datasets.InMemory((x_train, y_train), batch_size, shuffle=True, seed=seed,
                          drop_remainder=True), mesh).prefetch(2)
    test_ds = datasets.InMemory((x_test, y_test), 8 * mesh.size)
    ctx = Context(seed=seed)
    trainer = train.Trainer(mlf.backends.new("xla"), ctx, model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(1e-3), metrics={"accuracy": train.accuracy},
                            mesh=mesh)
    callbacks = []
    if checkpoint_dir:
        ckpt = distributed.Checkpointer(checkpoint_dir, keep=3)
        info = ckpt.restore(ctx)
        if info is not None:
            train_ds.restore(info.extra["dataset"])
        callbacks.append(train.SaveCheckpoints(ckpt))
    history = train.Loop(trainer, callbacks=callbacks).run_epochs(
        train_ds, max(0, epochs - trainer.step // len(train_ds)))
    return trainer, history, trainer.evaluate(test_ds)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fsdp-min-size", type=int, default=2 ** 18)
    parser.add_argument("--checkpoint-dir", default=None)
    args = parser.parse_args(argv)
    trainer, _, scores = run(args.epochs, args.batch_size, args.fsdp_min_size,
                             args.checkpoint_dir)
    if distributed.process_index() == 0:
        print(f"{trainer.mesh}: test loss {scores['loss']:.4f}  "
              f"test accuracy {scores['accuracy']:.2%}")
    return scores


if __name__ == "__main__":
    main()
