"""The mlframework demo: train the digits MLP, save a checkpoint and the loss plot.

    make demo        # or: .venv/bin/python examples/demo.py [--backend xla] [--epochs 20]

Trains examples/digits_mlp.py's model on the default backend ($MLF_BACKEND,
else "xla") with a progress bar, then writes build/demo/checkpoints/ and
build/demo/loss.png.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits_mlp  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="build/demo", help="output directory (recreated)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # train from scratch every time
    trainer, history, scores = digits_mlp.run(args.backend, epochs=args.epochs,
                                              checkpoint_dir=out / "checkpoints",
                                              plot=out / "loss.png")
    print(f"backend {trainer.backend.name}: {trainer.step} steps, test accuracy "
          f"{scores['accuracy']:.2%}, test loss {scores['loss']:.4f}")
    print(f"checkpoint: {sorted((out / 'checkpoints').glob('*.json'))[-1]}")
    print(f"loss plot:  {out / 'loss.png'}")

    # Export with aotc: a later issue adds compiling the trained model to a
    # standalone C library here (model.c, model.h, libmodel.so).


if __name__ == "__main__":
    main()
