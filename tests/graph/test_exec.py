"""Exec: tracing per signature, the bounded cache, pytrees, donation, Tensors."""
import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.graph.exec import ArgumentsChanged, NewArguments


def test_traces_once_per_signature(backend):
    traces = []

    def f(x):
        traces.append(x.shape)
        return x * 2

    exe = G.Exec(backend, f)
    for shape in [(2,), (2,), (3,), (2,)]:
        np.testing.assert_array_equal(exe(np.ones(shape, np.float32)).numpy(), 2)
    assert traces == [(2,), (3,)]
    exe(np.ones((2,), np.float64))
    assert traces[-1] == (2,) and len(traces) == 3, "a new dtype is a new signature"


def test_a_trace_that_adds_an_input_serves_the_calls_that_pass_it(backend):
    traces = []

    def f(x, extra):
        traces.append(len(extra))
        if extra:
            return x * extra[0]
        scale = G.parameter(x.spec)  # the first trace adds the input the calls after it pass
        return NewArguments(x * scale + 1, (x, [scale]))

    exe = G.Exec(backend, f)
    x = np.arange(3, dtype=np.float32)
    with pytest.raises(ArgumentsChanged, match="call again"):
        exe(x, [])
    for k in (2, 3):
        np.testing.assert_array_equal(exe(x, [np.full(3, k, np.float32)]).numpy(), k * x + 1)
    assert traces == [0], "the calls with the added input run the first trace's graph"
    graph = exe.graph(x, [])
    assert [p.attrs["index"] for p in graph.parameters] == [0, 1]
    assert graph.parameters[1].spec == graph.parameters[0].spec


def test_new_arguments_must_hold_every_parameter_once(backend):
    exe = G.Exec(backend, lambda x: NewArguments(x + G.parameter(x.spec), (x,)))
    with pytest.raises(ValueError, match="every parameter of the graph once, got 1 leaves "
                                         "for 2 parameters"):
        exe(np.ones(2, np.float32))


def test_cache_is_bounded_least_recently_used_first(backend):
    traces = []

    def f(x):
        traces.append(x.shape[0])
        return x + 1

    exe = G.Exec(backend, f, max_cache_size=2)
    for n in [1, 2, 1, 3, 1, 2]:
        exe(np.zeros(n, np.float32))
    assert traces == [1, 2, 3, 2], "2 was evicted by 3 while 1 stayed recently used"


def test_pytrees_in_and_out(backend):
    def f(params, batch):
        y = batch["x"] @ params[0] + params[1]
        return {"y": y, "stats": (G.reduce_sum(y), [G.reduce_max(y)])}

    w, b = np.eye(3, dtype=np.float32), np.ones(3, np.float32)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = G.Exec(backend, f)((w, b), {"x": x})
    np.testing.assert_allclose(out["y"].numpy(), x + 1)
    assert out["stats"][0].item() == pytest.approx((x + 1).sum())
    assert out["stats"][1][0].item() == pytest.approx(6.0)


def test_scalars_and_tensors_as_arguments(backend):
    exe = G.Exec(backend, lambda a, b, c: a * b + c)
    out = exe(2.0, mlf.Tensor([1.0, 2.0]), mlf.Tensor(np.float32(3)))
    np.testing.assert_allclose(out.numpy(), [5.0, 7.0])
    assert out.dtype == mlf.float32 and out.shape == (2,)


def test_outputs_feed_back_as_inputs_without_host_copies(backend):
    exe = G.Exec(backend, lambda x: x + 1)
    t = exe(np.zeros(4, np.float32))
    for _ in range(3):
        t = exe(t)
    assert t._host is None, "results stay on the backend until .numpy()"
    np.testing.assert_array_equal(t.numpy(), 4)


def test_python_constants_as_outputs(backend):
    out = G.Exec(backend, lambda x: (x, 3.0))(np.ones(2, np.float32))
    assert out[1].item() == 3.0 and out[1].dtype == mlf.float32


def test_donated_arguments_still_give_correct_results(backend):
    exe = G.Exec(backend, lambda v, g: v - 0.5 * g, donate=(0,))
    v = exe(np.ones(8, np.float32), np.ones(8, np.float32))
    v = exe(v, np.ones(8, np.float32))
    np.testing.assert_allclose(v.numpy(), 0.0)


def test_64_bit_types_are_not_narrowed(backend):
    x = np.array([1e300, 2 ** 62], np.float64)
    out = G.Exec(backend, lambda x, i: (x * 2, i + 1))(x, np.array([2 ** 62], np.int64))
    assert out[0].dtype == mlf.float64 and out[0].numpy()[0] == 2e300
    assert out[1].dtype == mlf.int64 and out[1].numpy()[0] == 2 ** 62 + 1


def test_graph_dump_is_readable(backend):
    text = str(G.Exec(backend, lambda x: G.tanh(x) * 2).graph(np.ones(3, np.float32)))
    assert "tanh(#0) : float32[3]" in text and "return #" in text
