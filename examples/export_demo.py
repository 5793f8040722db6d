"""The end of `make demo`: export the trained digits MLP with aotc and run it from C.

    .venv/bin/python examples/export_demo.py [--out build/demo]

Takes the latest checkpoint in OUT/checkpoints (written by examples/demo.py),
exports examples/digits_mlp.py's model for one image at a time into OUT/digits
(digits.h, digits.c, libdigits.a/.so, ...), writes the test images to
OUT/digits_test.bin, compiles examples/c/digits_demo.c against digits.h and
runs it: it prints predictions and the accuracy on the test images.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from aot.export import export_model  # noqa: E402
from mlframework.ml import datasets  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/demo", help="the demo's output directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    ckpt = out / "checkpoints"
    print(f"\naotc export {HERE / 'digits_mlp.py'}:model --input x:float32[1,64] "
          f"--checkpoint {ckpt} --name digits -o {out / 'digits'}")
    art = export_model(str(HERE / "digits_mlp.py") + ":model", ["x:float32[1,64]"],
                       out / "digits", checkpoint=ckpt, name="digits")
    m = art.manifest
    print(f"  {len(m['kernels'])} kernels, arena {m['arena_bytes']} bytes, weights "
          f"{m['weights_bytes']} bytes -> {art.shared_library}, {art.static_library}")

    _, (x_test, y_test) = datasets.load_digits(seed=0)
    data = out / "digits_test.bin"
    data.write_bytes(np.int32(len(x_test)).tobytes() + x_test.astype(np.float32).tobytes()
                     + y_test.astype(np.int32).tobytes())
    exe = out / "digits_demo"
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", f"-I{art.out_dir}", f"-I{art.out_dir / 'runtime'}",
           str(HERE / "c" / "digits_demo.c"), str(art.static_library), "-lm", "-o", str(exe)]
    print(" ".join(cmd))
    subprocess.run(cmd, check=True)
    print(f"{exe} {data}")
    return subprocess.run([str(exe), str(data)]).returncode


if __name__ == "__main__":
    sys.exit(main())
