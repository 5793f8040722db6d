"""C toolchains for `aotc export --target`: the host compiler, system cross
compilers (`aarch64-linux-gnu-gcc`) or `zig cc` from the `ziglang` package.

    tc = toolchain("aarch64-linux-gnu")   # tc.cc, tc.ar: argument lists for the Makefile
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

from aot.export.signature import UsageError

HOST = "host"
KNOWN = ("host", "x86_64-linux-gnu", "aarch64-linux-gnu", "aarch64-linux-musl",
         "x86_64-linux-musl", "wasm32-wasi", "arm-linux-gnueabihf", "riscv64-linux-gnu")


@dataclass
class Toolchain:
    """How to build for one target. `shared`: whether a .so makes sense there."""

    target: str
    cc: list[str]
    ar: list[str]
    arch: str = ""
    pic: bool = True
    shared: bool = True

    @property
    def cc_text(self) -> str:
        return shlex.join(self.cc)

    @property
    def ar_text(self) -> str:
        return shlex.join(self.ar)


def zig_available() -> bool:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return False
    return True


def zig(tool: str) -> list[str]:
    return [sys.executable, "-m", "ziglang", tool]


def toolchain(target: str | None, native: bool = True) -> Toolchain:
    """The toolchain for `target` (None or "host": this machine's `cc`).

    Raises:
        UsageError: naming what to install when no compiler for `target` exists.
    """
    if target in (None, "", HOST):
        cc = os.environ.get("CC", "gcc" if shutil.which("gcc") else "cc")
        return Toolchain(HOST, shlex.split(cc), ["ar"], "-march=native" if native else "")
    if target.startswith("wasm32"):
        if not zig_available():
            raise UsageError(f"--target {target} needs zig: pip install ziglang "
                             "(or pip install 'mlframework[cross]')")
        return Toolchain(target, zig("cc") + ["-target", target], zig("ar"), pic=False,
                         shared=False)
    system = shutil.which(f"{target}-gcc")
    if system:
        return Toolchain(target, [system], [shutil.which(f"{target}-ar") or "ar"])
    if zig_available():
        return Toolchain(target, zig("cc") + ["-target", target], zig("ar"))
    raise UsageError(f"--target {target}: no {target}-gcc on PATH and no zig; install "
                     "ziglang (pip install ziglang) or the system cross compiler")


def check_compiler(tc: Toolchain) -> None:
    """Raises UsageError when the compiler cannot be started."""
    try:
        subprocess.run(tc.cc + ["--version"], capture_output=True, check=True, timeout=120)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"cannot run the C compiler {tc.cc_text!r} for {tc.target}: "
                         f"{e}") from None
