"""gather, scatter_add / scatter_set, dynamic_slice / dynamic_update_slice and
Python indexing of nodes, against NumPy indexing."""
import numpy as np
import pytest

from mlframework import graph as G
from op_records import ALL, FLOATS, NUMERIC, assert_close, ids, random

ROWS = np.array([[1], [4], [0]], np.int32)
POINTS = np.array([[[0, 1], [3, 4]], [[2, 2], [3, 0]]], np.int64)
STARTS = np.array([[0], [3], [7], [-2]], np.int32)  # 7 and -2 are clamped into range

# name: (our gather, NumPy reference) over x [6, 5].
GATHERS = {
    "rows": (lambda x: G.gather(x, ROWS, (1,), (0,), (0,), (1, 5)), lambda x: x[ROWS[:, 0]]),
    "points": (lambda x: G.gather(x, POINTS, (), (0, 1), (0, 1), (1, 1)),
               lambda x: x[POINTS[..., 0], POINTS[..., 1]]),
    "clamped windows": (lambda x: G.gather(x, STARTS, (1, 2), (), (0,), (2, 5)),
                        lambda x: np.stack([x[s:s + 2] for s in [0, 3, 4, 0]])),
    "columns": (lambda x: G.gather(x, ROWS, (0,), (1,), (1,), (6, 1)),
                lambda x: x[:, ROWS[:, 0]]),
    "no indices": (lambda x: G.gather(x, np.zeros((0, 1), np.int32), (1,), (0,), (0,), (1, 5)),
                   lambda x: x[:0]),
}


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_gather(run, rng, dtype):
    x = random(rng, (6, 5), dtype)
    got = run(lambda x: {name: fn(x) for name, (fn, _) in GATHERS.items()}, x)
    for name, (_, ref) in GATHERS.items():
        assert_close(got[name], ref(x), dtype, f"gather {name}")


def _add_at(x, index, updates):
    out = x.copy()
    np.add.at(out, index, updates)
    return out


def _set_at(x, index, updates):
    out = x.copy()
    out[index] = updates
    return out


DUP_ROWS = np.array([[1], [3], [1], [9]], np.int32)  # 9 is out of bounds: dropped
PAIRS = np.array([[0, 1], [2, 4], [0, 1]], np.int64)


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_scatter_add(run, rng, dtype):
    x, rows, points = (random(rng, (4, 5), dtype), random(rng, (4, 5), dtype),
                       random(rng, (3,), dtype))
    got = run(lambda x, r, p: (G.scatter_add(x, DUP_ROWS, r, (1,), (0,), (0,)),
                               G.scatter_add(x, PAIRS, p, (), (0, 1), (0, 1))), x, rows, points)
    assert_close(got[0], _add_at(x, DUP_ROWS[:3, 0], rows[:3]), dtype, "scatter_add rows")
    assert_close(got[1], _add_at(x, (PAIRS[:, 0], PAIRS[:, 1]), points), dtype,
                 "scatter_add points")


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_scatter_set(run, rng, dtype):
    x, rows, points = (random(rng, (4, 5), dtype), random(rng, (3, 5), dtype),
                       random(rng, (2,), dtype))
    got = run(lambda x, r, p: (G.scatter_set(x, DUP_ROWS[1:], r, (1,), (0,), (0,)),
                               G.scatter_set(x, PAIRS[:2], p, (), (0, 1), (0, 1))),
              x, rows, points)
    assert_close(got[0], _set_at(x, DUP_ROWS[1:3, 0], rows[:2]), dtype, "scatter_set rows")
    assert_close(got[1], _set_at(x, (PAIRS[:2, 0], PAIRS[:2, 1]), points), dtype,
                 "scatter_set points")


COMBINERS = {"scatter_mul": (G.scatter_mul, np.multiply),
             "scatter_min": (G.scatter_min, np.minimum),
             "scatter_max": (G.scatter_max, np.maximum)}


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_scatter_mul_min_max(run, rng, dtype):
    # Duplicate rows combine in turn; row 9 is out of bounds and dropped (as XLA).
    x, rows, points = (random(rng, (4, 5), dtype), random(rng, (4, 5), dtype),
                       random(rng, (3,), dtype))
    got = run(lambda x, r, p: {name: (fn(x, DUP_ROWS, r, (1,), (0,), (0,)),
                                      fn(x, PAIRS, p, (), (0, 1), (0, 1)))
                               for name, (fn, _) in COMBINERS.items()}, x, rows, points)
    wide = np.float64 if np.dtype(dtype) in FLOATS else None
    for name, (_, ufunc) in COMBINERS.items():
        for out, index, upd in ((got[name][0], DUP_ROWS[:3, 0], rows[:3]),
                                (got[name][1], (PAIRS[:, 0], PAIRS[:, 1]), points)):
            want = x.astype(wide or dtype)
            ufunc.at(want, index, upd.astype(wide or dtype))
            assert_close(out, want.astype(dtype), dtype, name)


def _clamp(start, size, dim):
    return min(max(start, 0), dim - size)


# (start indices, slice sizes) for x [5, 6]; some starts are clamped.
DYNAMIC = [((1, 2), (2, 3)), ((4, 5), (3, 2)), ((-3, 0), (5, 6)), ((2, 1), (0, 2))]


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_dynamic_slice_and_update(run, rng, dtype):
    x = random(rng, (5, 6), dtype)
    updates = [random(rng, sizes, dtype) for _, sizes in DYNAMIC]
    starts = [np.array(s, np.int32) for s, _ in DYNAMIC]

    def f(x, starts, updates):
        out = []
        for (_, sizes), st, u in zip(DYNAMIC, starts, updates):
            out.append(G.dynamic_slice(x, [st[0], st[1]], sizes))
            out.append(G.dynamic_update_slice(x, u, [st[0], G.convert(st[1], np.int64)]))
        out.append(G.dynamic_slice(x, [1, np.int64(2)], (2, 2)))  # static starts
        return out

    got = run(f, x, starts, updates)
    for k, ((s, sizes), u) in enumerate(zip(DYNAMIC, updates)):
        i, j = _clamp(s[0], sizes[0], 5), _clamp(s[1], sizes[1], 6)
        assert_close(got[2 * k], x[i:i + sizes[0], j:j + sizes[1]], dtype, f"dynamic_slice {s}")
        want = x.copy()
        want[i:i + sizes[0], j:j + sizes[1]] = u
        assert_close(got[2 * k + 1], want, dtype, f"dynamic_update_slice {s}")
    assert_close(got[-1], x[1:3, 2:4], dtype, "dynamic_slice, static starts")


INDEXES = [
    1, -1, (1, 2), (-2, -1, 0), slice(1, 3), slice(None, None, -1), slice(None, None, -2),
    (slice(3, 0, -2), slice(None), slice(1, None, 2)), None, (Ellipsis, 0), (1, Ellipsis, None),
    (slice(None), None, slice(2, 0, -1)), slice(5, 1), slice(-100, 100), (), Ellipsis,
    (None, Ellipsis, None), (0, slice(None), -1), (slice(None), 1, slice(None, None, -3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.bool_, np.int64], ids=["float32", "bool",
                                                                         "int64"])
def test_node_indexing(run, rng, dtype):
    x = random(rng, (4, 3, 5), dtype)
    s = random(rng, (), dtype)
    got = run(lambda x, s: ([x[i] for i in INDEXES], s[()], s[None], s[...]), x, s)
    for index, out in zip(INDEXES, got[0]):
        assert_close(out, x[index], dtype, f"x[{index}]")
    assert_close(got[1], s[()], dtype, "scalar[()]")
    assert_close(got[2], s[None], dtype, "scalar[None]")
    assert_close(got[3], s[...], dtype, "scalar[...]")
