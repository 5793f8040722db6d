"""Every public package keeps a clean namespace: `__all__` lists what it offers, every name
in it resolves, and `dir()` shows nothing else but its submodules (no `os`, `importlib`
or `annotations` left over from its own imports)."""
from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def packages() -> list[str]:
    """Dotted names of every package (a folder with __init__.py) of mlframework and aot."""
    out = []
    for top in ("mlframework", "aot"):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            out.append(".".join(init.parent.relative_to(ROOT).parts))
    return out


def leaks(module: types.ModuleType) -> list[str]:
    """Public names in dir(module) that are neither in its __all__ nor its submodules."""
    listed = set(getattr(module, "__all__", ()))
    prefix = module.__name__ + "."
    return [n for n in dir(module) if not n.startswith("_") and n not in listed
            and not (isinstance(getattr(module, n), types.ModuleType)
                     and getattr(module, n).__name__ == prefix + n)]


def test_the_scan_finds_the_packages():
    found = packages()
    for name in ("mlframework", "mlframework.backends", "mlframework.graph", "mlframework.ml",
                 "mlframework.ml.layers", "aot", "aot.passes", "aot.tools"):
        assert name in found


@pytest.mark.parametrize("name", packages())
def test_namespace_is_clean(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list | tuple), \
        f"{name} has no __all__: list the names it offers"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it lacks: {missing}"
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats names"
    assert leaks(module) == [], f"{name} leaks {leaks(module)} into dir(); import them " \
        "inside the functions that use them, or under a private name"


def test_a_leak_is_found():
    module = types.ModuleType("fake")
    exec("from __future__ import annotations\nimport os\n__all__ = ['f']\ndef f(): pass\n",
         module.__dict__)
    assert leaks(module) == ["annotations", "os"]
