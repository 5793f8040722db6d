"""ONNX's own backend test suite (`onnx.backend.test`) against mlframework.

The node tests are generated in memory from `onnx/backend/test/case/node`; the
`simple`, `pytorch-converted` and `pytorch-operator` model tests ship as files in
the onnx package. A node test is *supported* when the importer converts every
operator of its model; every supported test must pass, except those listed in
`conformance_exclusions.txt` with their reason.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

from onnx.backend.test.loader import load_model_tests

from mlframework.models.onnx import supported_operators

EXCLUSIONS = Path(__file__).with_name("conformance_exclusions.txt")
MODEL_KINDS = ("simple", "pytorch-converted", "pytorch-operator")


@cache
def exclusions(backend: str | None = None) -> dict[str, str]:
    """Test name (without the _cpu suffix) -> the reason it is excluded on `backend`
    (all backends when None). A line `NAME@BACKEND  reason` excludes on that backend
    only."""
    out = {}
    for line in EXCLUSIONS.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        name, _, only = name.partition("@")
        if not reason.strip():
            raise ValueError(f"{EXCLUSIONS.name}: {name} has no reason")
        if backend is None or not only or only == backend:
            out[name] = reason.strip()
    return out


@cache
def node_tests() -> dict[str, frozenset[str]]:
    """Node test name -> the operator types of its model."""
    return {t.name: frozenset(n.op_type for n in t.model.graph.node)
            for t in load_model_tests(kind="node")}


def supported_node_tests() -> list[str]:
    ops = set(supported_operators())
    return [name for name, used in node_tests().items() if used <= ops]


def coverage() -> tuple[int, int]:
    """(supported node tests, all node tests)."""
    return len(supported_node_tests()), len(node_tests())


def model_tests() -> list[str]:
    return [t.name for kind in MODEL_KINDS for t in load_model_tests(kind=kind)]


def representative(names: list[str]) -> list[str]:
    """The fast subset: the first single-operator test (by name) of each operator."""
    seen, out = set(), []
    tests = node_tests()
    for name in sorted(names):
        if len(tests[name]) == 1 and not name.endswith("_expanded") \
                and tests[name] not in seen:
            seen.add(tests[name])
            out.append(name)
    return out
