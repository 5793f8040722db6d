"""The digits MLP (examples/digits_mlp.py's model) trained for the distributed tests.

    python digits_worker.py --modes single,replicated,fsdp --steps 100 --out out.json
    python -m mlframework.distributed.launch --nproc 2 digits_worker.py --modes fsdp ...

Every mode trains from the same seed on the same global batches (32 rows,
shuffled, seed 1): "single" with a plain Trainer on one device, "replicated"
and "fsdp" (every variable that can be split is) on a mesh of every device
of the job, each process reading its rows through GlobalBatches. Process 0
writes {mode: {"losses", "shardings", "weights_file", "resumed_from", "devices"}} to
--out (OUT.json) and the final variables to OUT-MODE-weights.npz beside it; every
process writes the rows of each global batch it reads to OUT-MODE-rows-RANK.json.

Test hooks: --kill-at STEP with --kill-rank R (or -1, every process) SIGKILLs
those processes after that step; --pid-dir writes each process's pid there
after its third step.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from mlframework import distributed  # noqa: E402

distributed.initialize()

import jax  # noqa: E402
import numpy as np  # noqa: E402

import digits_mlp  # noqa: E402
import mlframework as mlf  # noqa: E402
from mlframework.ml import Context, datasets, losses, optimizers, train  # noqa: E402

RULES = {"replicated": distributed.replicated, "fsdp": distributed.fsdp(min_size=0)}


class Hooks:
    """The test hooks: kill this process after a step, write its pid."""

    def __init__(self, kill_at, kill_rank, pid_dir):
        self.kill_at, self.kill_rank, self.pid_dir = kill_at, kill_rank, pid_dir

    def on_step(self, loop, step, results):
        rank = jax.process_index()
        if self.pid_dir and step == 3:
            Path(self.pid_dir, f"pid-{rank}").write_text(str(os.getpid()))
        if step == self.kill_at and self.kill_rank in (-1, rank):
            os.kill(os.getpid(), signal.SIGKILL)


def run(mode: str, args) -> dict:
    (x, y), _ = datasets.load_digits()
    ds = datasets.InMemory((x, y), 32, shuffle=True, seed=1, drop_remainder=True, repeat=True)
    ctx = Context(seed=7)
    mesh = None if mode == "single" else distributed.Mesh(variables=RULES[mode])
    trainer = train.Trainer(mlf.backends.new("xla"), ctx, digits_mlp.model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(1e-3), mesh=mesh)
    batches = ds if mesh is None else distributed.GlobalBatches(ds, mesh)
    callbacks, resumed = [], None
    if args.checkpoint_dir:
        ckpt = distributed.Checkpointer(args.checkpoint_dir, keep=2)
        info = ckpt.restore(ctx)
        if info is not None:
            batches.restore(info.extra["dataset"])
            resumed = info.step
        callbacks.append(train.SaveCheckpoints(ckpt, every=args.checkpoint_every,
                                               each_epoch=False, at_end=False))
    callbacks.append(Hooks(args.kill_at, args.kill_rank, args.pid_dir))
    history = train.Loop(trainer, callbacks=callbacks).run_steps(batches,
                                                                 args.steps - trainer.step)
    variables = ctx.variables()
    weights = {v.name: v.numpy() for v in variables}  # gathered on every process
    shardings = {v.name: list(getattr(v.value.buffer(trainer.backend).sharding, "spec", ()))
                 for v in variables}
    rows = None if mesh is None else [batches.rows.start, batches.rows.stop]
    return {"losses": history.losses, "shardings": shardings, "resumed_from": resumed,
            "devices": len(jax.devices()), "weights": weights, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="single")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--checkpoint-every", type=int, default=20)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--kill-rank", type=int, default=-1)
    parser.add_argument("--pid-dir")
    args = parser.parse_args()
    out = Path(args.out)
    report = {}
    for mode in args.modes.split(","):
        result = run(mode, args)
        weights = result.pop("weights")
        rows = result.pop("rows")  # of every global batch, the ones this process reads
        out.with_name(f"{out.stem}-{mode}-rows-{jax.process_index()}.json").write_text(
            json.dumps(rows))
        if jax.process_index() == 0:
            result["weights_file"] = str(out.with_name(f"{out.stem}-{mode}-weights.npz"))
            np.savez(result["weights_file"], **weights)
        report[mode] = result
    if jax.process_index() == 0:
        out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
