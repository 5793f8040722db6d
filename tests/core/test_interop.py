"""Tensor in the Python ecosystem: DLPack to PyTorch and JAX, jnp.asarray, NumPy, and the
Python conventions (item, tolist, len, iteration, indexing). Values are checked against
NumPy's own answers for the same array."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import mlframework as mlf
from mlframework import graph as G

A = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5


@pytest.fixture(params=["host", "xla", "c"])
def tensor(request):
    """A's value as a host Tensor, or as the result of an identity graph on a backend."""
    if request.param == "host":
        return mlf.Tensor(A)
    t = G.Exec(mlf.backends.new(request.param), lambda x: x * 1.0)(A)
    assert t._host is None  # the value is still on the backend
    return t


def test_torch_from_dlpack(tensor):
    out = torch.from_dlpack(tensor)
    assert out.dtype is torch.float32 and tuple(out.shape) == (3, 4)
    np.testing.assert_array_equal(out.numpy(), A)


def test_jax_from_dlpack(tensor):
    out = jax.dlpack.from_dlpack(tensor)
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out), A)


def test_dlpack_device_is_the_cpu(tensor):
    assert tensor.__dlpack_device__() == (1, 0)  # kDLCPU, device 0


def test_jnp_asarray(tensor):
    out = jnp.asarray(tensor)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out), A)
    np.testing.assert_allclose(np.asarray(jnp.sin(jnp.asarray(tensor))), np.sin(A), rtol=1e-6)


def test_numpy_conversions(tensor):
    np.testing.assert_array_equal(np.asarray(tensor), A)
    assert np.asarray(tensor, dtype=np.float64).dtype == np.float64
    copied = np.array(tensor, copy=True)
    copied[0, 0] = 99
    assert tensor.numpy()[0, 0] == A[0, 0]
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(tensor, dtype=np.int32, copy=False)


def test_python_conventions(tensor):
    assert len(tensor) == 3
    assert tensor.tolist() == A.tolist() and type(tensor.tolist()[0][0]) is float
    rows = list(tensor)
    assert len(rows) == 3 and all(isinstance(r, mlf.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == A.tolist()
    assert tensor[1, 2].item() == A[1, 2] and tensor[1, 2].shape == ()
    assert tensor[:, 1].tolist() == A[:, 1].tolist()
    assert tensor[..., None].shape == (3, 4, 1)
    assert tensor[mlf.Tensor(np.array([2, 0]))].tolist() == A[[2, 0]].tolist()
    assert tensor[mlf.Tensor(A > 0)].tolist() == A[A > 0].tolist()
    assert float(tensor[0, 0]) == A[0, 0] and int(tensor[2, 3]) == int(A[2, 3])


def test_scalars():
    t = mlf.Tensor(3.5)
    assert t.item() == 3.5 and t.tolist() == 3.5 and bool(t) and float(t) == 3.5
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d Tensor"):
        len(t)
    with pytest.raises(TypeError, match="iteration over a 0-d Tensor"):
        iter(t)
    with pytest.raises(ValueError, match="exactly one element, got a tensor of shape \\(3, 4\\)"):
        mlf.Tensor(A).item()
    with pytest.raises(ValueError, match="exactly one element"):
        bool(mlf.Tensor(A))


def test_bfloat16_to_python_and_torch():
    values = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    t = mlf.Tensor(values)
    assert t.tolist() == [1.5, -2.25] and type(t.tolist()[0]) is float
    assert t[1].item() == -2.25
    on_xla = G.Exec(mlf.backends.new("xla"), lambda x: x)(values)
    assert torch.from_dlpack(on_xla).dtype is torch.bfloat16  # XLA exports bfloat16
    with pytest.raises(BufferError, match="cannot be exported through DLPack.*np.asarray"):
        t.__dlpack__()  # NumPy does not


def test_dtype_stays_an_mlf_dtype():
    t = mlf.Tensor(A)
    assert t.dtype is mlf.float32 and np.dtype(t.dtype) == np.float32
