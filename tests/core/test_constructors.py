"""Public constructors check their arguments and say what is wrong and how to fix it."""
from __future__ import annotations

import numpy as np
import pytest

import mlframework as mlf
from mlframework import Shape, Tensor


def test_shape_with_swapped_arguments():
    with pytest.raises(TypeError, match=r"takes the dtype first.*Shape\(mlf.float32, \(2, 3\)\)"):
        Shape((2, 3), mlf.float32)


@pytest.mark.parametrize("dtype, dims, error, message", [
    ("nope", (2,), TypeError, "requires a dtype such as mlf.float32 first, got 'nope'"),
    (mlf.float32, (2, -1), ValueError, "non-negative ints, got \\(2, -1\\)"),
    (mlf.float32, 3, ValueError, "a tuple of non-negative ints, got 3"),
    (mlf.float32, (2.5,), ValueError, "non-negative ints"),
    (mlf.float32, (True,), ValueError, "non-negative ints"),
])
def test_shape_rejects(dtype, dims, error, message):
    with pytest.raises(error, match=message):
        Shape(dtype, dims)


def test_shape_normalizes_what_it_accepts():
    s = Shape("int32", [np.int64(2), 3])
    assert s.dtype is mlf.int32 and s.dims == (2, 3) and type(s.dims[0]) is int
    assert s == Shape(mlf.int32, (2, 3)) and repr(s) == "int32[2, 3]"


@pytest.mark.parametrize("value, dtype, error, message", [
    (None, None, TypeError, "Tensor requires numbers.*got NoneType None"),
    ("abc", None, TypeError, "Tensor requires numbers.*got str 'abc'"),
    (1 + 2j, None, TypeError, "Tensor requires numbers"),
    ([[1, 2], [3]], None, ValueError, "rectangular array"),
    ([1, 2], "float7", TypeError, "Tensor\\(value, dtype\\)"),
    (np.zeros(2, np.complex64), None, TypeError, "Tensor: as_dtype requires one of"),
])
def test_tensor_rejects(value, dtype, error, message):
    with pytest.raises(error, match=message):
        Tensor(value, dtype)
