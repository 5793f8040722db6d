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
        """`cc` as Makefile text (`$(ZIG) cc ...` for zig: see `make_text`)."""
        return make_text(self.cc)

    @property
    def ar_text(self) -> str:
        return make_text(self.ar)


# `python -m ziglang` of this interpreter; the exported Makefile says $(ZIG) instead
# (default `python3 -m ziglang`), and `build_artifact` passes ZIG=this on make's command
# line, so that no Makefile holds a path of the exporting environment.
ZIG = shlex.join([sys.executable, "-m", "ziglang"])


def make_text(argv: list[str]) -> str:
    """A command line as Makefile text; this interpreter's `python -m ziglang` becomes
    `$(ZIG)`."""
    if argv[:3] == [sys.executable, "-m", "ziglang"]:
        return " ".join(["$(ZIG)", shlex.join(argv[3:])])
    return shlex.join(argv)


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
        UsageError: naming what to install when no compiler for `target` exists, or
            the targets to use when zig does not know `target`.
    """
    if target in (None, "", HOST):
        cc = os.environ.get("CC", "gcc" if shutil.which("gcc") else "cc")
        return Toolchain(HOST, shlex.split(cc), ["ar"], "-march=native" if native else "")
    if target.startswith("wasm32"):
        if not zig_available():
            raise UsageError(f"--target {target} needs zig: pip install ziglang "
                             "(or pip install 'mlframework[cross]')")
        _check_zig_target(target)
        return Toolchain(target, zig("cc") + ["-target", target], zig("ar"), pic=False,
                         shared=False)
    if shutil.which(f"{target}-gcc"):  # by name: the Makefile must work on another machine
        return Toolchain(target, [f"{target}-gcc"],
                         [f"{target}-ar" if shutil.which(f"{target}-ar") else "ar"])
    if zig_available():
        _check_zig_target(target)
        return Toolchain(target, zig("cc") + ["-target", target], zig("ar"))
    known = "" if target in KNOWN else \
        f" (not one of the usual targets {', '.join(KNOWN)}: check its spelling)"
    raise UsageError(f"--target {target}: no {target}-gcc on PATH and no zig{known}; install "
                     "ziglang (pip install ziglang) or the system cross compiler")


def _check_zig_target(target: str) -> None:
    """Raises UsageError when zig cannot parse `target` (zig answers within milliseconds)."""
    try:
        done = subprocess.run(zig("cc") + ["-target", target, "--version"],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"--target {target}: cannot run zig to check the target: {e}") from None
    if done.returncode != 0:
        said = next((ln.strip().removeprefix("error: ") for ln in
                     (done.stderr + done.stdout).splitlines()
                     if ln.strip()), f"exit status {done.returncode}")
        raise UsageError(f"--target {target}: unknown target (zig: {said}); use host or "
                         f"ARCH-OS-ABI such as {', '.join(KNOWN[1:])}")


def check_compiler(tc: Toolchain) -> None:
    """Raises UsageError when the compiler cannot be started."""
    try:
        subprocess.run(tc.cc + ["--version"], capture_output=True, check=True, timeout=120)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"cannot run the C compiler {tc.cc_text!r} for {tc.target}: "
                         f"{e}") from None
