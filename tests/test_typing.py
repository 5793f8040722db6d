"""The public API is annotated: every parameter and return of every public callable
reachable from the public namespaces (their `__all__`, and the modules listed there) has a
type annotation, so that mypy checks the users' code against it. mypy itself runs in
`make test` (Makefile) with the configuration in pyproject.toml."""
from __future__ import annotations

import importlib
import inspect
import types

import pytest

ROOTS = ("mlframework", "mlframework.ml", "mlframework.models.hf", "mlframework.models.onnx",
         "mlframework.distributed", "aot")
OWN = ("mlframework", "aot")


def _own(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in OWN


def _public_names(module: types.ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [n for n, v in vars(module).items() if not n.startswith("_") and
            getattr(v, "__module__", None) == module.__name__]


def _unannotated(fn: object, where: str) -> list[str]:
    """`where(param)` for each parameter without an annotation, `where -> ?` for a missing
    return annotation (none is asked of __init__)."""
    try:
        sig = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []
    out = [f"{where}({p.name})" for i, p in enumerate(sig.parameters.values())
           if p.annotation is p.empty and not (i == 0 and p.name in ("self", "cls"))]
    if sig.return_annotation is sig.empty and not where.endswith(".__init__"):
        out.append(f"{where} -> ?")
    return out


def _class_members(cls: type) -> list[tuple[str, object]]:
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            out.append((name, value))
    return out


def public_callables() -> dict[str, object]:
    """Qualified name -> function, for every public function and public method (and
    `__init__`, `__call__`) of every public class of our own, walked from ROOTS."""
    found: dict[str, object] = {}
    seen: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        module = importlib.import_module(name)
        for attr in _public_names(module):
            value = getattr(module, attr)
            if isinstance(value, types.ModuleType):
                if value.__name__.split(".")[0] in OWN:
                    todo.append(value.__name__)
            elif inspect.isclass(value) and _own(value):
                for member, fn in _class_members(value):
                    found[f"{value.__module__}.{value.__qualname__}.{member}"] = fn
            elif inspect.isfunction(value) and _own(value):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_the_walk_finds_the_public_api():
    names = public_callables()
    for expected in ("mlframework.graph.gen_ops.add", "mlframework.graph.exec.Exec.__call__",
                     "mlframework.core.tensors.Tensor.__init__",
                     "mlframework.ml.context.Context.variable",
                     "mlframework.ml.layers.dense.dense",
                     "mlframework.ml.losses.mean_squared_error",
                     "mlframework.ml.train.trainer.Trainer.__init__",
                     "mlframework.ml.checkpoints.save", "aot.export.model.export_model"):
        assert expected in names


def test_public_callables_are_annotated():
    missing = [m for name, fn in sorted(public_callables().items())
               for m in _unannotated(fn, name)]
    assert missing == [], f"{len(missing)} unannotated parameters or returns: {missing}"


@pytest.mark.parametrize("source, expected", [
    ("def f(x, y: int) -> int: ...", ["f(x)"]),
    ("def f(x: int): ...", ["f -> ?"]),
    ("def f(*args: int, **kw) -> None: ...", ["f(kw)"]),
    ("def f(x: int) -> int: ...", []),
])
def test_the_check_can_fail(source, expected):
    namespace: dict = {}
    exec(source, namespace)
    assert _unannotated(namespace["f"], "f") == expected
