"""ONNX's backend test suite (onnx.backend.test.BackendTest) on both backends.

`make test` runs one node test per operator (or operator combination) and the
checks on the exclusion list; `make onnx-conformance` (MLF_ONNX_CONFORMANCE=full)
runs every supported node test and the simple, pytorch-converted and
pytorch-operator model tests.
"""
from __future__ import annotations

import os

import onnx.backend.test
import onnx_conformance as conformance

import mlframework as mlf
from mlframework.models.onnx import backend as onnx_backend

FULL = os.environ.get("MLF_ONNX_CONFORMANCE") == "full"


def _selected() -> list[str]:
    names = conformance.supported_node_tests()
    if FULL:
        return names + conformance.model_tests()
    return conformance.representative(names)


def _suite(name: str) -> dict:
    """The suite's test classes for backend `name`, holding only the selected tests;
    the excluded ones are expected failures (a stale exclusion fails as an unexpected
    success)."""
    suite = onnx.backend.test.BackendTest(onnx_backend.on(name), __name__)
    for excluded in conformance.exclusions(name):
        suite.xfail(f"^{excluded}_cpu$")
    wanted = {f"{n}_cpu" for n in _selected()}
    classes = {}
    for cls_name, cls in suite.test_cases.items():
        for attr in [a for a in vars(cls) if a.startswith("test_") and a not in wanted]:
            delattr(cls, attr)
        if any(a.startswith("test_") for a in vars(cls)):
            cls.__name__ = cls.__qualname__ = f"{cls_name}_{name}"
            classes[cls.__name__] = cls
    return classes


for _name in mlf.backends.names():
    globals().update(_suite(_name))


def test_coverage_of_the_node_suite():
    supported, total = conformance.coverage()
    assert supported / total >= 0.80, f"{supported}/{total} node tests supported"


def test_every_exclusion_names_a_supported_test_with_a_reason():
    known = set(conformance.supported_node_tests()) | set(conformance.model_tests())
    stray = [n for n in conformance.exclusions() if n not in known]
    assert stray == [], f"exclusions naming no supported test: {stray}"
