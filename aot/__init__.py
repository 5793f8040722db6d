"""aot: the ahead-of-time compiler behind the "c" backend and the `aotc` command.

    from aot import export_model, verify, inspect_model   # what `aotc` runs

Its stages are subpackages; each imports only those above it in this list
(tests/test_architecture.py holds the rules):

    resources   the package data: templates/ and runtime_c/
    program     the program form: Program and Value, index math, the kernel
                description, the walk of a fused kernel at an index
    passes      simplify, pack_weights, fuse, plan_memory, and the layouts and
                workspaces they decide
    codegen     C from the kernel descriptions: loop nests, expressions, C types
    build       gcc through cffi, cached by source hash; compile_program runs it all
    export      a model (Python function, checkpoint) as a standalone C library:
                tracing, the artifact's files, cross targets, cost, manifest
    tools       the `aotc` command line, inspect and verify

Only export and tools may import `mlframework.ml`.
"""

_LAZY = {"export_model": "aot.export.model", "TrainSpec": "aot.export.model",
         "verify": "aot.tools.verify", "ExportedLibrary": "aot.tools.verify",
         "inspect_model": "aot.tools.inspection"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    # imported on first use: `import aot` stays cheap for the "c" backend
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aot' has no attribute {name!r}")
