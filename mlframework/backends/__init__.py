"""Backends and their registry.

    backend = mlf.backends.new()        # $MLF_BACKEND, else "xla"
    backend = mlf.backends.new("xla")

A backend module registers a factory with `register(name, factory)`; the
factory is called once per process and the backend instance is shared.
"""
from mlframework.backends.base import Backend, Executable, UnsupportedOpError

DEFAULT = "xla"  # the backend `new()` returns when neither a name nor $MLF_BACKEND says
_FACTORIES: dict[str, str] = {"xla": "mlframework.backends.xla", "c": "mlframework.backends.c"}
_INSTANCES: dict[str, Backend] = {}


def register(name: str, module: str) -> None:
    """Registers a backend: `module` defines `create() -> Backend`."""
    _FACTORIES[name] = module


def names() -> list[str]:
    """The registered backend names."""
    return list(_FACTORIES)


def new(name: str | None = None) -> Backend:
    """The backend called `name`, else `$MLF_BACKEND`, else "xla".

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    import os
    name = name or os.environ.get("MLF_BACKEND") or DEFAULT
    if name not in _FACTORIES:
        raise ValueError(f"backends.new requires one of {', '.join(names())}, got {name!r}")
    if name not in _INSTANCES:
        import importlib
        _INSTANCES[name] = importlib.import_module(_FACTORIES[name]).create()
    return _INSTANCES[name]


def supported_ops(name: str) -> set[str]:
    """Names of the ops backend `name` implements."""
    return {op.value for op in new(name).supported_ops()}


__all__ = ["DEFAULT", "Backend", "Executable", "UnsupportedOpError", "names", "new", "register",
           "supported_ops"]
