"""Fixtures of the ONNX tests: PyTorch-made models, exported once per session."""
from __future__ import annotations

import pytest
import torch_models


@pytest.fixture(scope="session")
def onnx_root(tmp_path_factory):
    return torch_models.shared_root(tmp_path_factory)
