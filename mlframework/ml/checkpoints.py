"""Checkpoints: every variable of a context in safetensors, the rest in JSON.

    ckpt = checkpoints.Checkpointer("runs/mlp", keep=3)
    ckpt.save(ctx, step=100, extra={"dataset": ds.state()})
    info = ckpt.restore(ctx)            # the latest one; None if there is none

A checkpoint is two files, `ckpt-00000100.safetensors` (variables: weights,
optimizer state, step counter, RNG state) and `ckpt-00000100.json` (step,
seed, hyperparameters, which variables are trainable, `extra`, and the size
and SHA-256 of the safetensors file). Each is written to a temporary file,
flushed with fsync and renamed into place, the JSON last: a checkpoint
exists once its JSON does, so a process killed mid-save leaves the previous
checkpoints intact. Reading checks the size and hash and raises
`CheckpointError` naming the file when either is wrong.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import safetensors.numpy

from mlframework.core.tensors import Tensor

FORMAT = "mlframework-checkpoint"
VERSION = 1
_CHUNK = 1 << 20


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, corrupt or does not fit the context."""


class CheckpointInfo:
    """What `restore` read: `step`, `extra` (the dict given to `save`), `path` (the JSON)."""

    def __init__(self, step: int, extra: dict, path: Path, meta: dict):
        self.step, self.extra, self.path, self.meta = step, extra, path, meta

    def __repr__(self) -> str:
        return f"<CheckpointInfo step={self.step} {self.path}>"


def _fsync(fd: int) -> None:
    os.fsync(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file, fsync and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            f.write(view[start:start + _CHUNK])
        f.flush()
        _fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        _fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(params: dict) -> dict:
    out = {}
    for scope, values in params.items():
        kept = {}
        for k, v in values.items():
            try:
                json.dumps(v)
            except (TypeError, ValueError):
                continue  # schedules and other objects are not saved
            kept[k] = v
        out[scope] = kept
    return out


def save(ctx, directory, step: int, extra: dict | None = None, prefix: str = "ckpt") -> Path:
    """Writes a checkpoint of every variable of `ctx`; returns the JSON's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    variables = ctx.at_root().variables()
    arrays = {v.name: np.array(v.numpy(), order="C") for v in variables}  # keeps 0-d arrays 0-d
    blob = safetensors.numpy.save(arrays) if arrays else safetensors.numpy.save({})
    name = f"{prefix}-{step:08d}"
    tensors = directory / f"{name}.safetensors"
    write_atomic(tensors, blob)
    meta = {
        "format": FORMAT, "version": VERSION, "step": int(step), "seed": ctx.seed,
        "tensors_file": tensors.name, "tensors_bytes": len(blob),
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "variables": {v.name: {"dtype": str(v.spec.dtype), "shape": list(v.spec.dims),
                               "trainable": v.trainable} for v in variables},
        "params": _jsonable(ctx.params),
        "extra": extra or {},
    }
    path = directory / f"{name}.json"
    write_atomic(path, json.dumps(meta, indent=1, sort_keys=True).encode())
    return path


def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The (metadata, arrays) of the checkpoint whose JSON is `path`.

    Raises:
        CheckpointError: naming the file that is missing, truncated or corrupt.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint file {path} is corrupt or truncated: not valid "
                              f"JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint file {path} is not an mlframework checkpoint")
    tensors = path.parent / meta["tensors_file"]
    try:
        blob = tensors.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {tensors} (named by {path}) does not "
                              "exist") from None
    if len(blob) != meta["tensors_bytes"]:
        raise CheckpointError(f"checkpoint file {tensors} is truncated or has extra bytes: "
                              f"{len(blob)} bytes, {meta['tensors_bytes']} expected")
    if hashlib.sha256(blob).hexdigest() != meta["tensors_sha256"]:
        raise CheckpointError(f"checkpoint file {tensors} is corrupt: its SHA-256 does not "
                              f"match the one recorded in {path.name}")
    try:
        arrays = safetensors.numpy.load(blob)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"checkpoint file {tensors} is corrupt: {e}") from None
    return meta, arrays


def restore(ctx, path) -> CheckpointInfo:
    """Loads the checkpoint at `path` (its JSON) into `ctx`: variables (created if
    missing), hyperparameters and seed.

    Raises:
        CheckpointError: for a bad file, or a variable whose shape or dtype differs.
    """
    meta, arrays = read(path)
    root = ctx.at_root()
    existing = {v.name: v for v in root.variables()}
    for name, info in meta["variables"].items():
        if name not in arrays:
            raise CheckpointError(f"checkpoint file {meta['tensors_file']} lacks variable "
                                  f"{name!r} listed in {Path(path).name}")
        array = arrays[name]
        if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
            raise CheckpointError(f"checkpoint file {meta['tensors_file']} holds {name!r} as "
                                  f"{array.dtype}{list(array.shape)}, but {Path(path).name} "
                                  f"lists {info['dtype']}{info['shape']}")
        var = existing.get(name)
        if var is None:
            root.create_variable(name, Tensor(array), info["trainable"])
        elif var.spec.dims != array.shape or str(var.spec.dtype) != info["dtype"]:
            raise CheckpointError(f"checkpoint {path} has {name!r} as {info['dtype']}"
                                  f"{list(array.shape)}, the context has {var.spec}")
        else:
            var.value = Tensor(array)
    for scope, values in meta["params"].items():
        ctx.params.setdefault(scope, {}).update(values)
    ctx._store.seed = meta["seed"]
    return CheckpointInfo(meta["step"], meta["extra"], Path(path), meta)


class Checkpointer:
    """Saves numbered checkpoints in `directory`, keeping the last `keep` (all if None)."""

    def __init__(self, directory, keep: int | None = 3, prefix: str = "ckpt"):
        self.directory, self.keep, self.prefix = Path(directory), keep, prefix
        self._pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\.json$")

    def checkpoints(self) -> list[Path]:
        """The JSON files of complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir()
                 if (m := self._pattern.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save(self, ctx, step: int | None = None, extra: dict | None = None) -> Path:
        """Saves ctx (step defaults to its global_step), then drops the oldest beyond `keep`."""
        if step is None:
            from mlframework.ml.context import GLOBAL_STEP
            var = ctx.at_root()._store.variables.get(GLOBAL_STEP)
            step = int(var.numpy()) if var is not None else 0
        self._clean_temporaries()
        path = save(ctx, self.directory, step, extra, self.prefix)
        if self.keep is not None:
            for old in self.checkpoints()[:-self.keep]:
                old.unlink()
                old.with_suffix(".safetensors").unlink(missing_ok=True)
        for orphan in self.directory.glob(f"{self.prefix}-*.safetensors"):
            if orphan != path.with_suffix(".safetensors") and \
                    not orphan.with_suffix(".json").exists():
                orphan.unlink(missing_ok=True)  # left by a save that was killed
        return path

    def restore(self, ctx, path=None) -> CheckpointInfo | None:
        """Loads `path`, or the latest checkpoint; None if the directory has none."""
        path = path or self.latest()
        return None if path is None else restore(ctx, path)

    def _clean_temporaries(self) -> None:
        if self.directory.is_dir():
            for p in self.directory.glob(f".{self.prefix}-*.tmp-*"):
                p.unlink(missing_ok=True)


__all__ = ["CheckpointError", "CheckpointInfo", "Checkpointer", "read", "restore", "save",
           "write_atomic"]
