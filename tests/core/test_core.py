"""Core value types: dtypes, shapes, tensors and pytrees."""
import ml_dtypes
import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.core import dtypes, pytree, shapes
from mlframework.core.dtypes import as_dtype
from mlframework.core.tensors import Tensor

NAMES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("name", NAMES)
def test_as_dtype_from_names_numpy_dtypes_and_types(name):
    d = as_dtype(name)
    np_dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)
    assert d.value == name and d.numpy == np_dtype
    assert as_dtype(np_dtype) is d and as_dtype(np_dtype.type) is d and as_dtype(d) is d
    assert getattr(mlf, "bool_" if name == "bool" else name) is d
    assert d.itemsize == np_dtype.itemsize and str(d) == name
    assert np.dtype(d) == np_dtype and np.zeros(2, d).dtype == np_dtype  # NumPy accepts DTypes


def test_as_dtype_from_python_types_and_kinds():
    assert as_dtype(bool) is dtypes.bool_ and as_dtype(float) is dtypes.float64
    assert as_dtype(np.float32) is dtypes.float32
    assert as_dtype(ml_dtypes.bfloat16) is dtypes.bfloat16
    assert dtypes.float16.is_float and dtypes.bfloat16.is_float and not dtypes.int8.is_float
    assert dtypes.uint8.is_int and dtypes.uint8.is_unsigned and not dtypes.int8.is_unsigned
    assert not dtypes.bool_.is_int and not dtypes.bool_.is_float


@pytest.mark.parametrize("bad", ["float128", np.complex64, "nope", object(), 3.5])
def test_as_dtype_rejects_unsupported(bad):
    with pytest.raises(TypeError, match=r"as_dtype requires "):
        as_dtype(bad)


def test_shapes_make():
    s = shapes.make(np.float32, 4, 3)
    assert s.dtype is dtypes.float32 and s.dims == (4, 3) and s.rank == 2 and s.size == 12
    assert s.nbytes == 48 and str(s) == "float32[4, 3]"
    scalar = shapes.make("int64")
    assert scalar.dims == () and scalar.size == 1 and scalar.rank == 0
    assert shapes.make(np.float32, 0, 5).size == 0
    assert shapes.make(np.float32, np.int64(2)) == shapes.make("float32", 2)
    assert hash(shapes.make("float32", 2)) == hash(shapes.make(np.float32, 2))
    with pytest.raises(AttributeError):
        s.dims = (1,)


@pytest.mark.parametrize("dims", [(-1,), (2.0,), (True,), ("3",)])
def test_shapes_make_rejects_bad_dims(dims):
    with pytest.raises(ValueError, match=r"shapes.make requires non-negative integer dims"):
        shapes.make(np.float32, *dims)


def test_tensor_from_numpy_keeps_dtype_and_shape():
    for name in NAMES:
        a = np.zeros((2, 3), as_dtype(name).numpy)
        t = Tensor(a)
        assert t.dtype is as_dtype(name) and t.shape == (2, 3) and t.ndim == 2 and t.size == 6
        np.testing.assert_array_equal(t.numpy(), a)


def test_tensor_from_scalars_and_lists():
    assert Tensor(1.5).spec == shapes.make("float32")  # Python floats are float32, as in JAX
    assert Tensor(3).spec == shapes.make("int32")
    assert Tensor(True).spec == shapes.make("bool")
    assert Tensor([[1.0, 2.0], [3.0, 4.0]]).spec == shapes.make("float32", 2, 2)
    assert Tensor([1, 2], dtype="int64").spec == shapes.make("int64", 2)
    assert Tensor(np.float64(2.0)).dtype is dtypes.float64  # NumPy scalars keep their dtype
    assert Tensor(np.arange(3, dtype=np.int64)).dtype is dtypes.int64
    assert Tensor(2.5).item() == 2.5 and np.asarray(Tensor([1, 2])).tolist() == [1, 2]
    assert Tensor(Tensor([1.0])).shape == (1,)


class _CountingBackend:
    """Wraps a backend and counts the transfers it makes."""

    def __init__(self, inner):
        self.inner, self.to_device_calls, self.to_host_calls = inner, 0, 0

    def to_device(self, array, spec):
        self.to_device_calls += 1
        return self.inner.to_device(array, spec)

    def to_host(self, buffer, spec):
        self.to_host_calls += 1
        return self.inner.to_host(buffer, spec)


def test_tensor_moves_data_lazily(backend):
    counting = _CountingBackend(backend)
    t = Tensor(np.arange(4, dtype=np.float32))
    assert counting.to_device_calls == 0  # nothing moves at creation
    buf = t.buffer(counting)
    assert t.buffer(counting) is buf and counting.to_device_calls == 1  # moved once
    out = Tensor.on_backend(counting, buf, t.spec)
    assert counting.to_host_calls == 0  # results stay on the backend until asked
    np.testing.assert_array_equal(out.numpy(), np.arange(4))
    out.numpy()
    assert counting.to_host_calls == 1  # copied to the host once, then cached


def test_exec_results_are_tensors_that_stay_on_the_backend(backend):
    exe = G.Exec(backend, lambda x: x * 2)
    y = exe(np.arange(3, dtype=np.float32))
    assert isinstance(y, Tensor) and y.spec == shapes.make("float32", 3)
    z = exe(y)  # a result feeds the next call without a host round trip
    np.testing.assert_array_equal(z.numpy(), [0, 4, 8])


TREES = [
    ((1, [2, 3]), {"b": 4, "a": (5, None)}),
    [],
    {"x": None},
    (1,),
    [[[]], (), {"k": [1, {"z": 2, "y": 3}]}],
    7,
    None,
]


@pytest.mark.parametrize("tree", TREES, ids=range(len(TREES)))
def test_pytree_round_trip(tree):
    leaves, treedef = pytree.flatten(tree)
    assert pytree.unflatten(treedef, leaves) == tree
    assert treedef.num_leaves == len(leaves)
    assert pytree.tree_map(lambda x: x, tree) == tree


def test_pytree_order_structure_and_equality():
    leaves, treedef = pytree.flatten(((1, [2, 3]), {"b": 4, "a": (5, None)}))
    assert leaves == [1, 2, 3, 5, 4]  # dict keys in sorted order, None is no leaf
    same = pytree.flatten(((0, [0, 0]), {"a": (0, None), "b": 0}))[1]
    assert same == treedef and hash(same) == hash(treedef)
    assert pytree.flatten(([1, 2],))[1] != pytree.flatten(((1, 2),))[1]  # list vs tuple
    assert pytree.flatten({"a": 1})[1] != pytree.flatten({"b": 1})[1]
    assert pytree.tree_map(lambda x: x * 10, {"a": [1, (2,)]}) == {"a": [10, (20,)]}


def test_pytree_unflatten_checks_the_leaf_count():
    _, treedef = pytree.flatten((1, 2))
    with pytest.raises(ValueError, match=r"unflatten requires 2 leaves, got 3"):
        pytree.unflatten(treedef, [1, 2, 3])


def test_exec_accepts_and_returns_pytrees(run):
    args = ({"w": np.ones((2,), np.float32), "b": [np.float32(1), None]},)
    out = run(lambda p: {"sum": p["w"] + p["b"][0], "parts": (p["w"], [p["b"][0]])}, *args)
    np.testing.assert_array_equal(out["sum"], [2, 2])
    assert isinstance(out["parts"], tuple) and isinstance(out["parts"][1], list)
