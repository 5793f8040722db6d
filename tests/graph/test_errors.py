"""Error messages for bad input: "<op> requires <condition>, got <values> (at file:line)".

Graph-building errors need no backend: they are raised while tracing.
"""
import re

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.core import shapes

F32, I32 = np.float32, np.int32
HERE = rf"\(at {re.escape(__file__)}:\d+\)$"  # errors end with the user's line


def trace(fn, *specs):
    """Builds fn over parameters of the given (dtype, *dims) specs."""
    with G.tracing(G.Graph()):
        return fn(*[G.parameter(shapes.make(*s)) for s in specs])


# (error type, regex, function, parameter specs); each regex must match the whole
# requirement, the offending values and the user's line.
CASES = [
    (G.ShapeError, r"add requires shapes that broadcast, got \(2, 3\), \(4,\)",
     lambda a, b: a + b, [(F32, 2, 3), (F32, 4)]),
    (G.ShapeError, r"mul requires shapes that broadcast, got \(3,\), \(2,\)",
     lambda a, b: G.mul(a, b), [(F32, 3), (F32, 2)]),
    (G.DTypeError, r"exp requires dtype in \{bfloat16, float16, float32, float64\}, got int32\[2\]",
     G.exp, [(I32, 2)]),
    (G.DTypeError, r"logical_not requires dtype in \{bool\}, got float32\[2\]", G.logical_not,
     [(F32, 2)]),
    (G.DTypeError, r"add requires operands of one dtype, got float32, int32",
     lambda a, b: a + b, [(F32, 2), (I32, 2)]),
    (G.ShapeError, r"reduce_sum requires axis in \[-2, 2\) for rank 2, got 2",
     lambda a: G.reduce_sum(a, 2), [(F32, 2, 3)]),
    (G.ShapeError, r"reduce_max requires distinct axes, got \(1, -1\)",
     lambda a: G.reduce_max(a, (1, -1)), [(F32, 2, 3)]),
    (G.ShapeError, r"softmax requires axis in \[-2, 2\) for rank 2, got -3|reduce_max requires "
     r"axis in \[-2, 2\) for rank 2, got -3", lambda a: G.softmax(a, -3), [(F32, 2, 3)]),
    (G.ShapeError, r"reshape requires the same number of elements, got float32\[2, 3\] "
     r"\(6 elements\) to \(4, 2\) \(8 elements\)", lambda a: G.reshape(a, (4, 2)), [(F32, 2, 3)]),
    (G.ShapeError, r"reshape cannot infer -1 in \(4, -1\) for 6 elements",
     lambda a: G.reshape(a, (4, -1)), [(F32, 2, 3)]),
    (G.ShapeError, r"transpose requires a permutation of 2 axes, got \(0, 0\)",
     lambda a: G.transpose(a, (0, 0)), [(F32, 2, 3)]),
    (G.ShapeError, r"concatenate requires operands equal but along axis 0, got float32\[2, 3\], "
     r"float32\[2, 4\]", lambda a, b: G.concatenate([a, b]), [(F32, 2, 3), (F32, 2, 4)]),
    (G.ShapeError, r"matmul requires x.shape\[-1\] == y.shape\[-2\], got float32\[2, 3\] @ "
     r"float32\[4, 3\]", lambda a, b: a @ b, [(F32, 2, 3), (F32, 4, 3)]),
    (G.ShapeError, r"dot_general requires contracting dims of equal size, got float32\[2, 3\] "
     r"axes \(1,\) and float32\[4, 2\] axes \(1,\)",
     lambda a, b: G.dot_general(a, b, (1,), (1,)), [(F32, 2, 3), (F32, 4, 2)]),
    (G.DTypeError, r"dot_general requires operands of one dtype, got float32\[2\] and int32\[2\]",
     lambda a, b: G.dot_general(a, b, (0,), (0,)), [(F32, 2), (I32, 2)]),
    (G.ShapeError, r"conv_general requires input channels = rhs dim 1 \* feature_group_count "
     r"\(1\).*got float32\[1, 3, 5\] and float32\[2, 2, 3\]",
     lambda a, b: G.conv_general(a, b), [(F32, 1, 3, 5), (F32, 2, 2, 3)]),
    (G.ShapeError, r"slice requires 0 <= start <= limit <= dim and strides >= 1, got start "
     r"\(0,\), limit \(5,\), strides \(1,\) for float32\[3\]",
     lambda a: G.slice(a, (0,), (5,)), [(F32, 3)]),
    (G.ShapeError, r"squeeze requires size-1 axes, got axes \[0\] of float32\[2, 3\]",
     lambda a: G.squeeze(a, 0), [(F32, 2, 3)]),
    (G.ShapeError, r"split requires sections dividing axis 1 of float32\[2, 3\], got 4",
     lambda a: G.split(a, 4, 1), [(F32, 2, 3)]),
    (G.DTypeError, r"select requires a bool predicate, got float32\[2\]",
     lambda a: G.select(a, a, a), [(F32, 2)]),
    (G.ShapeError, r"indexing requires indices within bounds, got index 3 for axis 0 of size 2",
     lambda a: a[3], [(F32, 2)]),
    (G.ShapeError, r"indexing requires at most 1 indices for shape \(2,\), got \(0, 0\)",
     lambda a: a[0, 0], [(F32, 2)]),
    (G.ShapeError, r"indexing requires at most one Ellipsis", lambda a: a[..., ...], [(F32, 2)]),
    (G.DTypeError, r"mean requires a float dtype, got int32\[2\]", G.mean, [(I32, 2)]),
    (G.ShapeError, r"einsum requires 2 operands for 'ij,jk->ik', got 1",
     lambda a: G.einsum("ij,jk->ik", a), [(F32, 2, 3)]),
    (G.ShapeError, r"einsum requires label 'j' to have one size, got 3 and 4",
     lambda a, b: G.einsum("ij,jk", a, b), [(F32, 2, 3), (F32, 4, 2)]),
    (G.DTypeError, r"uniform requires a float dtype, got int32",
     lambda k: G.uniform(k, (2,), I32), [(np.uint32, 2)]),
    (G.ShapeError, r"rng_bits requires a uint32\[2\] key, got uint32\[3\]",
     lambda k: G.rng_bits(k, (2,)), [(np.uint32, 3)]),
    (G.DTypeError, r"gather requires integer indices with the index vector in the last axis, "
     r"got float32\[1, 1\]", lambda a, i: G.gather(a, i, (1,), (0,), (0,), (1, 3)),
     [(F32, 2, 3), (F32, 1, 1)]),
    (G.DTypeError, r"scatter_add requires updates of the operand's dtype, got int32\[1, 3\] into "
     r"float32\[2, 3\]", lambda a, u: G.scatter_add(a, np.array([[0]]), u, (1,), (0,), (0,)),
     [(F32, 2, 3), (I32, 1, 3)]),
    (G.DTypeError, r"dynamic_slice requires integer start indices, got 0.5",
     lambda a: G.dynamic_slice(a, [0.5], (1,)), [(F32, 2)]),
    (G.ShapeError, r"dynamic_slice requires 0 <= slice_sizes <= dims, got \(3,\) for float32\[2\]",
     lambda a: G.dynamic_slice(a, [0], (3,)), [(F32, 2)]),
    (G.ShapeError, r"broadcast_to requires shapes that broadcast, got \(2,\), \(3,\)",
     lambda a: G.broadcast_to(a, (3,)), [(F32, 2)]),
    (G.ShapeError, r"top_k requires 0 <= k <= 2 for float32\[2\], got 5",
     lambda a: G.top_k(a, 5), [(F32, 2)]),
    (G.DTypeError, r"take requires integer indices, got array\(\[0.5\]\)",
     lambda a: G.take(a, np.array([0.5])), [(F32, 2)]),
    (G.DTypeError, r"take_along_axis requires integer indices, got float32\[2\]",
     lambda a: G.take_along_axis(a, a, 0), [(F32, 2)]),
    (G.DTypeError, r"one_hot requires integer indices, got float32\[2\]",
     lambda a: G.one_hot(a, 3), [(F32, 2)]),
    (G.ShapeError, r"pad requires 1 \(low, high, interior\) triples for float32\[2\]",
     lambda a: G.pad(a, [(0, 0, 0), (1, 1, 1)]), [(F32, 2)]),
    (G.ShapeError, r"reduce_window_max requires windows >= 1 that fit in the padded input",
     lambda a: G.reduce_window_max(a, (3,)), [(F32, 2)]),
    (G.ShapeError, r"iota requires dimension in \[0, 1\), got 1",
     lambda a: G.iota(F32, (2,), 1), [(F32, 2)]),
    (G.ShapeError, r"cumsum requires axis in \[-1, 1\) for rank 1, got 1",
     lambda a: G.cumsum(a, 1), [(F32, 2)]),
    (G.ShapeError, r"bitcast_convert_type to the 4x wider float32 requires a last axis of "
     r"size 4, got uint8\[3\]; reshape x first",
     lambda a: G.bitcast_convert_type(a, F32), [(np.uint8, 3)]),
    (G.DTypeError, r"bitcast_convert_type converts bool only to bool, got uint8\[3\] to bool; "
     "use convert", lambda a: G.bitcast_convert_type(a, np.bool_), [(np.uint8, 3)]),
    (G.DTypeError, r"shift_left requires dtype in \{int16, .*\}, got float32\[2\]",
     lambda a: G.shift_left(a, a), [(F32, 2)]),
    (G.ShapeError, r"expand_dims requires axis in \[-3, 3\) for rank 3, got 3",
     lambda a: G.expand_dims(a, 3), [(F32, 2, 3)]),
    (G.ShapeError, r"stack requires at least one array, got none", lambda a: G.stack([]),
     [(F32, 2)]),
]


@pytest.mark.parametrize("error, pattern, fn, specs", CASES,
                         ids=[re.sub(r"\W+", "_", c[1].split(" requires")[0]) + f"_{i}"
                              for i, c in enumerate(CASES)])
def test_bad_input_names_op_values_and_user_line(error, pattern, fn, specs):
    with pytest.raises(error, match=f"^({pattern}).*{HERE}"):
        trace(fn, *specs)


def test_error_points_at_the_line_that_built_the_node():
    def model(x):
        y = G.tanh(x)
        return y + G.reshape(x, (3, 2))  # this line, not one inside mlframework

    line = model.__code__.co_firstlineno + 2
    with pytest.raises(G.ShapeError, match=rf"\(at {re.escape(__file__)}:{line}\)$"):
        trace(model, (F32, 2, 3))


def test_shape_and_dtype_errors_are_type_errors():
    assert issubclass(G.ShapeError, TypeError) and issubclass(G.DTypeError, TypeError)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"backends.new requires one of .*xla.*, got 'nope'"):
        mlf.backends.new("nope")


def test_exec_with_a_different_number_of_arguments(backend):
    exe = G.Exec(backend, lambda x, y: x + y)
    with pytest.raises(TypeError, match=r"Exec\(<lambda>\) requires 2 arguments.*got 1"):
        exe(np.ones(2, F32))
    optional = G.Exec(backend, lambda x, y=None: x)
    with pytest.raises(TypeError, match=r"requires 1 to 2 arguments.*got 3"):
        optional(np.ones(2, F32), np.ones(2, F32), np.ones(2, F32))


def test_exec_reports_the_user_line_of_a_traced_error(backend):
    def f(x):
        return x @ x

    with pytest.raises(G.ShapeError, match=rf"matmul requires .*float32\[2, 3\].*{HERE}"):
        G.Exec(backend, f)(np.ones((2, 3), F32))


def test_node_has_no_truth_value():
    with pytest.raises(TypeError, match=r"a graph node has no truth value at trace time"):
        trace(lambda a: bool(a > 0), (F32, 2))


def test_nodes_of_different_graphs_do_not_mix():
    with G.tracing(G.Graph("a")):
        x = G.parameter(shapes.make(F32, 2))
    with G.tracing(G.Graph("b")):
        y = G.parameter(shapes.make(F32, 2))
        with pytest.raises(ValueError, match=r"add requires inputs from one graph"):
            G.add(x, y)


def test_building_outside_tracing_is_an_error():
    with pytest.raises(RuntimeError, match=r"no graph is being traced"):
        G.const(1.0)


def test_array_indices_point_to_take():
    with pytest.raises(TypeError, match=r"indexing supports ints, slices, None and \.\.\., got "
                       r"array.*G.take"):
        trace(lambda a: a[np.array([0, 1])], (F32, 2))


def test_unsupported_ops_are_named_by_the_backend(backend):
    graph = G.Exec(backend, lambda x: G.exp(x)).graph(np.ones(2, F32))
    limited = type("Limited", (type(backend),), {
        "name": "limited", "supported_ops": lambda self: frozenset({G.Op.PARAMETER})})()
    with pytest.raises(mlf.backends.UnsupportedOpError, match=r"backend 'limited' does not "
                       r"implement exp \(used by graph '<lambda>'\)"):
        limited.check_supported(graph)
