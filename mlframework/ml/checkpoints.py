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
checkpoints intact. Reading checks the sidecar's keys, the size and the
hash, and raises `CheckpointError` naming the file when any is wrong.

Restores are strict, as PyTorch's `load_state_dict`: a variable the model
uses that the checkpoint lacks is an error, never a freshly initialized
value. Since a context creates its variables lazily, the check runs twice:

* at restore time, every variable the context already holds (a model built
  by a train step or `predict`) must be in the checkpoint;
* afterwards, a variable that the model would create from its initializer
  raises `VariablesNotInCheckpointError` (a `CheckpointError`) naming every
  such variable of the graph being traced; the context is left as it was.
  Exceptions: the step counter and the RNG state (a checkpoint without them
  was saved before any step, or by a model that draws no random numbers),
  and the state of an optimizer of which the checkpoint holds none (training
  goes on with another optimizer, which starts fresh).

`restore(ctx, path, strict=False)` opts in to a partial restore (fine-tuning
a model with a new head, say): what the checkpoint has is loaded, and
`info.missing` and `info.unexpected` list what did not fit.
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
from mlframework.ml.context import OPTIMIZER_SCOPE, Context
from mlframework.ml.context_exec import MissingVariablesError

FORMAT = "mlframework-checkpoint"
VERSION = 1
_CHUNK = 1 << 20


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, corrupt or does not fit the context."""


class VariablesNotInCheckpointError(CheckpointError, MissingVariablesError):
    """After a strict restore, a model asked for variables the checkpoint lacks.

    `.names` lists them, `.path` is the checkpoint's JSON. It is also a
    `MissingVariablesError` (a `VariableError`), as the same mistake is when a
    `ContextExec.graph` trace finds variables missing.
    """

    def __init__(self, path: Path, names: list[str], reader: str):
        self.names, self.path = list(names), path
        Exception.__init__(
            self, f"checkpoint {path} lacks {_plural(len(names), 'variable')} that {reader} "
            f"reads: {_shown(names)}; restored strictly, they would start from their "
            "initializers. Restore the checkpoint of this model, or opt in to a partial "
            "restore with restore(ctx, path, strict=False), which starts them fresh")


class CheckpointInfo:
    """What `restore` read.

    Attributes:
        step, extra: as given to `save`; `path`: the JSON; `meta`: all of it.
        missing: variables the context held that the checkpoint lacks (only a
            partial restore returns any: they keep their values).
        unexpected: checkpoint variables the context did not hold; they were
            created from the checkpoint (a context builds its variables when a
            graph first reads them, so on a fresh context this is every one).
    """

    def __init__(self, step: int, extra: dict, path: Path, meta: dict,
                 missing: list[str] | None = None, unexpected: list[str] | None = None):
        self.step, self.extra, self.path, self.meta = step, extra, path, meta
        self.missing, self.unexpected = list(missing or []), list(unexpected or [])

    def __repr__(self) -> str:
        return (f"<CheckpointInfo step={self.step} {self.path} missing={len(self.missing)} "
                f"unexpected={len(self.unexpected)}>")


class _StrictRestore:
    """Kept in the context after a strict restore: which variables may still be created."""

    def __init__(self, path: Path, names):
        self.path, self.names = path, frozenset(names)
        self._optimizers = {n.split("/")[1] for n in self.names
                            if n.startswith(OPTIMIZER_SCOPE + "/") and n.count("/") >= 2}

    def allows(self, name: str) -> bool:
        """Whether the context may create `name` from its initializer."""
        if name in self.names:
            return True
        parts = name.split("/")
        return parts[0] == OPTIMIZER_SCOPE and len(parts) > 2 and parts[1] not in self._optimizers

    def error(self, names: list[str], reader: str) -> VariablesNotInCheckpointError:
        return VariablesNotInCheckpointError(self.path, sorted(names), reader)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _shown(names, limit: int = 6) -> str:
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


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


def save(ctx: Context, directory: str | os.PathLike, step: int, extra: dict | None = None,
         prefix: str = "ckpt") -> Path:
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


_SIDECAR_KEYS = {"version": int, "step": int, "seed": int, "tensors_file": str,
                 "tensors_bytes": int, "tensors_sha256": str, "variables": dict, "params": dict,
                 "extra": dict}
_VARIABLE_KEYS = {"dtype": str, "shape": list, "trainable": bool}


def _type_name(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _has_type(value, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_sidecar(meta: dict, path: Path) -> None:
    """Raises CheckpointError naming each key the JSON sidecar lacks or has of the wrong type."""
    missing = [k for k in _SIDECAR_KEYS if k not in meta]
    if missing:
        keys = "key" if len(missing) == 1 else "keys"
        raise CheckpointError(
            f"checkpoint file {path} has the format tag but lacks the {keys} "
            f"{', '.join(map(repr, missing))} that every mlframework checkpoint has (edited, or "
            "written by another program?); restore an intact copy or another checkpoint")
    for key, kind in _SIDECAR_KEYS.items():
        if not _has_type(meta[key], kind):
            raise CheckpointError(f"checkpoint file {path}: key {key!r} holds a "
                                  f"{_type_name(meta[key])}, expected {_type_name(kind())}")
    if meta["version"] != VERSION:
        raise CheckpointError(f"checkpoint file {path} has format version {meta['version']}; "
                              f"this mlframework reads version {VERSION}")
    if Path(meta["tensors_file"]).name != meta["tensors_file"]:
        raise CheckpointError(f"checkpoint file {path}: 'tensors_file' must name a file next "
                              f"to it, got {meta['tensors_file']!r}")
    for name, info in meta["variables"].items():
        lacking = [k for k in _VARIABLE_KEYS if not isinstance(info, dict) or k not in info]
        if lacking:
            raise CheckpointError(f"checkpoint file {path}: variable {name!r} lacks "
                                  f"{', '.join(map(repr, lacking))} in 'variables'")
        for key, kind in _VARIABLE_KEYS.items():
            if not _has_type(info[key], kind):
                raise CheckpointError(f"checkpoint file {path}: variable {name!r} has {key!r} "
                                      f"of type {_type_name(info[key])}, expected "
                                      f"{_type_name(kind())}")


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The (metadata, arrays) of the checkpoint whose JSON is `path`.

    Raises:
        CheckpointError: naming the file that is missing, truncated or corrupt, or
            the keys its JSON sidecar lacks or has of the wrong type.
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
    _check_sidecar(meta, path)
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


def restore(ctx: Context, path: str | os.PathLike, *, strict: bool = True) -> CheckpointInfo:
    """Loads the checkpoint at `path` (its JSON) into `ctx`: variables (created if
    the context lacks them), hyperparameters and seed.

    Strict (the default): every variable the context holds must be in the
    checkpoint, and afterwards a model that would create a variable the
    checkpoint lacks raises `VariablesNotInCheckpointError` (see the module's
    docstring for the step counter, RNG state and optimizer state).
    `strict=False` is a partial restore, as PyTorch's
    `load_state_dict(strict=False)`: the context's variables that the
    checkpoint lacks keep their values, variables created later start from
    their initializers, and the returned info lists `missing` and `unexpected`
    names. Either way the context is unchanged when an error is raised.

    Raises:
        CheckpointError: for a bad file; a variable whose shape or dtype differs
            from the context's; with `strict`, variables the context holds that
            the checkpoint lacks (all named).
    """
    path = Path(path)
    meta, arrays = read(path)
    root = ctx.at_root()
    existing = {v.name: v for v in root.variables()}
    loaded = {}
    for name, info in meta["variables"].items():
        if name not in arrays:
            raise CheckpointError(f"checkpoint file {meta['tensors_file']} lacks variable "
                                  f"{name!r} listed in {path.name}")
        array = arrays[name]
        if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
            raise CheckpointError(f"checkpoint file {meta['tensors_file']} holds {name!r} as "
                                  f"{array.dtype}{list(array.shape)}, but {path.name} "
                                  f"lists {info['dtype']}{info['shape']}")
        var = existing.get(name)
        if var is not None and (var.spec.dims != array.shape or
                                str(var.spec.dtype) != info["dtype"]):
            raise CheckpointError(f"checkpoint {path} has {name!r} as {info['dtype']}"
                                  f"{list(array.shape)}, the context has {var.spec}")
        loaded[name] = array
    missing = sorted(set(existing) - set(loaded))
    unexpected = sorted(set(loaded) - set(existing))
    if missing and strict:
        raise CheckpointError(
            f"checkpoint {path} lacks {_plural(len(missing), 'variable')} that the context "
            f"holds: {_shown(missing)}; restore the checkpoint of this model, or opt in to a "
            "partial restore with restore(ctx, path, strict=False), which keeps their "
            "current values")
    for name, array in loaded.items():  # everything checked: from here on nothing fails
        if name in existing:
            existing[name].value = Tensor(array)
        else:
            root.create_variable(name, Tensor(array), meta["variables"][name]["trainable"])
    for scope, values in meta["params"].items():
        ctx.params.setdefault(scope, {}).update(values)
    ctx._store.seed = meta["seed"]
    ctx._store.strict_restore = _StrictRestore(path, loaded) if strict else None
    return CheckpointInfo(meta["step"], meta["extra"], path, meta, missing, unexpected)


class Checkpointer:
    """Saves numbered checkpoints in `directory`, keeping the last `keep` (all if None)."""

    def __init__(self, directory: str | os.PathLike, keep: int | None = 3, prefix: str = "ckpt"):
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

    def save(self, ctx: Context, step: int | None = None, extra: dict | None = None) -> Path:
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

    def restore(self, ctx: Context, path: str | os.PathLike | None = None, *,
                strict: bool = True) -> CheckpointInfo | None:
        """Loads `path`, or the latest checkpoint; None if the directory has none.

        Raises:
            CheckpointError: as `restore` (module function), whose `strict` this passes on.
        """
        path = path or self.latest()
        return None if path is None else restore(ctx, path, strict=strict)

    def _clean_temporaries(self) -> None:
        if self.directory.is_dir():
            for p in self.directory.glob(f".{self.prefix}-*.tmp-*"):
                p.unlink(missing_ok=True)


__all__ = ["CheckpointError", "CheckpointInfo", "Checkpointer", "VariablesNotInCheckpointError",
           "read", "restore", "save", "write_atomic"]
