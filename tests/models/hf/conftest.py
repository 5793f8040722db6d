"""Fixtures of the HuggingFace importer tests: the shared tiny checkpoints."""
from __future__ import annotations

import pytest

import hf_checkpoints as hc


@pytest.fixture(scope="session")
def hf_root(tmp_path_factory):
    return hc.shared_root(tmp_path_factory)
