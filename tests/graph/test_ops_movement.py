"""Data-movement primitives (broadcast_in_dim, reshape, transpose, slice, pad,
concatenate, reverse) and broadcast_to / flatten, against NumPy, one graph per dtype."""
import numpy as np
import pytest

from mlframework import graph as G
from op_records import ALL, FLOATS, assert_close, ids, random


def _pad_ref(x, config, value):
    """lax.pad in NumPy: interior padding, then edge padding (negative crops)."""
    for axis, (lo, hi, mid) in enumerate(config):
        if mid and x.shape[axis] > 1:
            n = x.shape[axis]
            shape = list(x.shape)
            shape[axis] = n + (n - 1) * mid
            spread = np.full(shape, value, x.dtype)
            index = [slice(None)] * x.ndim
            index[axis] = slice(None, None, mid + 1)
            spread[tuple(index)] = x
            x = spread
        widths = [(0, 0)] * x.ndim
        widths[axis] = (max(lo, 0), max(hi, 0))
        x = np.pad(x, widths, constant_values=value)
        index = [slice(None)] * x.ndim
        index[axis] = slice(-min(lo, 0), x.shape[axis] + min(hi, 0))
        x = x[tuple(index)]
    return x


# name: (our function of the inputs, NumPy reference); x is [2, 3, 4], v is [3], s a scalar.
CASES = {
    "broadcast_in_dim": (lambda x, v, s, e: G.broadcast_in_dim(v, (2, 3, 5), (1,)),
                         lambda x, v, s, e: np.broadcast_to(v[None, :, None], (2, 3, 5))),
    "broadcast_in_dim size 1": (
        lambda x, v, s, e: G.broadcast_in_dim(G.reshape(v, (3, 1)), (3, 4), (0, 1)),
        lambda x, v, s, e: np.broadcast_to(v[:, None], (3, 4))),
    "broadcast_in_dim scalar": (lambda x, v, s, e: G.broadcast_in_dim(s, (2, 0), ()),
                                lambda x, v, s, e: np.broadcast_to(s, (2, 0))),
    "broadcast_to": (lambda x, v, s, e: G.broadcast_to(G.reshape(v, (3, 1)), (2, 3, 4)),
                     lambda x, v, s, e: np.broadcast_to(v[:, None], (2, 3, 4))),
    "reshape": (lambda x, v, s, e: G.reshape(x, (4, -1)), lambda x, v, s, e: x.reshape(4, -1)),
    "reshape to scalar": (lambda x, v, s, e: G.reshape(G.reshape(s, (1, 1)), ()),
                          lambda x, v, s, e: s.reshape(())),
    "reshape empty": (lambda x, v, s, e: G.reshape(e, (3, 0, 2)),
                      lambda x, v, s, e: e.reshape(3, 0, 2)),
    "flatten": (lambda x, v, s, e: G.flatten(x, 1), lambda x, v, s, e: x.reshape(2, -1)),
    "transpose": (lambda x, v, s, e: G.transpose(x, (2, 0, 1)),
                  lambda x, v, s, e: x.transpose(2, 0, 1)),
    "transpose negative": (lambda x, v, s, e: G.transpose(x, (-1, -3, -2)),
                           lambda x, v, s, e: x.transpose(2, 0, 1)),
    "transpose default": (lambda x, v, s, e: G.transpose(x), lambda x, v, s, e: x.T),
    "transpose .T": (lambda x, v, s, e: e.T, lambda x, v, s, e: e.T),
    "slice": (lambda x, v, s, e: G.slice(x, (0, 1, 0), (2, 3, 4), (1, 1, 3)),
              lambda x, v, s, e: x[0:2, 1:3, 0:4:3]),
    "slice empty": (lambda x, v, s, e: G.slice(x, (1, 2, 0), (1, 3, 4)),
                    lambda x, v, s, e: x[1:1, 2:3, :]),
    "pad": (lambda x, v, s, e: G.pad(x, [(1, 2, 0), (0, 0, 1), (-1, 1, 2)]),
            lambda x, v, s, e: _pad_ref(x, [(1, 2, 0), (0, 0, 1), (-1, 1, 2)], 0)),
    "pad value": (lambda x, v, s, e: G.pad(v, [(2, -1, 0)], 1.0),
                  lambda x, v, s, e: _pad_ref(v, [(2, -1, 0)], 1)),
    "pad empty": (lambda x, v, s, e: G.pad(e, [(1, 1, 3), (0, 1, 0)]),
                  lambda x, v, s, e: _pad_ref(e, [(1, 1, 3), (0, 1, 0)], 0)),
    "concatenate": (lambda x, v, s, e: G.concatenate([x, x[:, :1], x], 1),
                    lambda x, v, s, e: np.concatenate([x, x[:, :1], x], 1)),
    "concatenate negative": (lambda x, v, s, e: G.concatenate([x, x], -3),
                             lambda x, v, s, e: np.concatenate([x, x], 0)),
    "concatenate empty": (lambda x, v, s, e: G.concatenate([e, G.reshape(v, (1, 3)), e], 0),
                          lambda x, v, s, e: np.concatenate([e, v[None], e], 0)),
    "concatenate one": (lambda x, v, s, e: G.concatenate([v]), lambda x, v, s, e: v),
    "reverse": (lambda x, v, s, e: G.reverse(x, (0, -1)), lambda x, v, s, e: x[::-1, :, ::-1]),
    "reverse empty": (lambda x, v, s, e: G.reverse(e, 0), lambda x, v, s, e: e[::-1]),
}


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_movement(run, rng, dtype):
    args = (random(rng, (2, 3, 4), dtype), random(rng, (3,), dtype), random(rng, (), dtype),
            np.zeros((0, 3), dtype))
    got = run(lambda *a: {name: fn(*a) for name, (fn, _) in CASES.items()}, *args)
    for name, (_, ref) in CASES.items():
        assert_close(got[name], np.asarray(ref(*args)), dtype, name)


@pytest.mark.parametrize("dtype", FLOATS[2:], ids=ids(FLOATS[2:]))
def test_pad_with_nan_and_negative_values(run, dtype):
    x = np.arange(3, dtype=dtype)
    got = run(lambda x: (G.pad(x, [(1, 1, 1)], float("nan")), G.pad(x, [(1, 0, 0)], -2.5)), x)
    assert_close(got[0], _pad_ref(x, [(1, 1, 1)], np.nan))
    assert_close(got[1], _pad_ref(x, [(1, 0, 0)], -2.5))


def test_concatenate_of_a_transposed_reshape(run, rng):
    """The second part's index is a reshape of an offset index: its flat position mod 24
    carried a negative constant that C's % kept negative (found by ONNX's Attention
    tests with a key-value cache)."""
    past = rng.normal(size=(2, 3, 4, 8)).astype(np.float32)
    k = rng.normal(size=(2, 6, 24)).astype(np.float32)
    got = run(lambda p, k: G.concatenate(
        [p, G.transpose(G.reshape(k, (2, 6, 3, 8)), (0, 2, 1, 3))], 2), past, k)
    want = np.concatenate([past, k.reshape(2, 6, 3, 8).transpose(0, 2, 1, 3)], 2)
    np.testing.assert_array_equal(got, want)
