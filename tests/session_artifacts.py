"""Artifacts built once per test session and shared between pytest-xdist workers
(trained checkpoints, exports, HuggingFace and ONNX model files).

    root = shared_root(tmp_path_factory, "aotc-shared")
    path = cached(root, "export-mlp", lambda p: build_into(p))

Each artifact is a folder next to the workers' temporary roots, built under a file
lock and marked done with a `.done` file, so a worker that finds it half-built (a
crash mid-build) builds it again.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def shared_root(tmp_path_factory, name: str) -> Path:
    """The folder `name` that every xdist worker of this session sees."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / name
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def locked(path: Path):
    """Holds an exclusive lock on `path` (through `path.lock`) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(root: Path, name: str, build) -> Path:
    """root/name, built by `build(path)` once across workers."""
    path = root / name
    with locked(path):
        if not (path / ".done").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            build(path)
            (path / ".done").touch()
    return path
