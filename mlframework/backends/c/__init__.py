"""The "c" backend: graphs become fused C from `templates/c/`, compiled with cffi."""
from mlframework.backends.c.backend import CBackend, CExecutable


def create() -> CBackend:
    return CBackend()


__all__ = ["CBackend", "CExecutable", "create"]
