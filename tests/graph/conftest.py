"""Fixtures of the graph tests."""
from __future__ import annotations

import pytest

import mlframework as mlf


@pytest.fixture(params=mlf.backends.names())
def backend_name(request) -> str:
    """Each registered backend's name in turn (the differential tests build their own)."""
    return request.param
