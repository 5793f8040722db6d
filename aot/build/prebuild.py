"""`python -m aot.build.prebuild`: builds the c backend's runtime unit (its GEMM and conv,
`runtime_c/mlf_runtime_unit.c`) ahead, as `make` does after installing, so that the first
model compiles only its own kernels. Without it the first model on a machine builds the
runtime into the cache (a few seconds of gcc, once).

    python -m aot.build.prebuild     # prints the objects, in aot/build/prebuilt/
"""
from __future__ import annotations

import sys

from aot.build.compiler import CompileError, prebuild


def main() -> int:
    try:
        objects = prebuild()
    except (CompileError, OSError) as e:
        print(f"aot.build.prebuild: {e}", file=sys.stderr)
        return 1
    for obj in objects:
        print(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
