"""The compiler's package data: the Jinja templates of the generated C and the C runtime.

    templates_dir()   # .../templates/c: kernel.c.j2, loops.c.j2, module.c.j2, export/
    runtime_dir()     # .../runtime_c: mlf_runtime.h, mlf_gemm.h, ...

Both folders stay at the repository's top level; the distribution maps them to
the packages `aot.templates` and `aot.runtime_c` (pyproject.toml), so they are
found through the import system (`importlib.util.find_spec`) in a checkout and
in an installed wheel alike (`importlib.resources` would import zipfile,
tempfile and shutil into every start of the c backend).

Raises (both):
    FileNotFoundError: the package data is not on disk (an install that dropped
        it, or a zipped install: gcc needs real directories).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path


def _folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) if locations else None
    if path is None or not path.is_dir():
        raise FileNotFoundError(f"aot's package data {package} is not a directory ({path}); "
                                "reinstall mlframework from a wheel or a checkout")
    return path


def templates_dir() -> Path:
    """The folder of the C templates (`templates/c` in the repository)."""
    return _folder("aot.templates") / "c"


def runtime_dir() -> Path:
    """The folder of the C runtime headers (`runtime_c` in the repository)."""
    return _folder("aot.runtime_c")
