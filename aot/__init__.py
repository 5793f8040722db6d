"""aot: the ahead-of-time compiler behind the "c" backend and the `aotc` command.

    from aot import export_model, verify, inspect_model   # what `aotc` runs
"""

_LAZY = {"export_model": "aot.export", "TrainSpec": "aot.export", "verify": "aot.verify",
         "ExportedLibrary": "aot.verify", "inspect_model": "aot.inspection"}


def __getattr__(name: str):
    # imported on first use: `import aot` stays cheap for the "c" backend
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aot' has no attribute {name!r}")
