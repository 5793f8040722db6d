"""InMemory datasets, prefetching and the digits data."""
import sys

import numpy as np
import pytest

from mlframework.ml import datasets


def make(n=10, **kw):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return datasets.InMemory((x, np.arange(n)), **kw)


def test_batches_in_order_with_remainder():
    ds = make(batch_size=4)
    batches = list(ds)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(ds) == 3 and batches[0][0].shape == (4, 2)
    assert [b[1].tolist() for b in ds][0] == [0, 1, 2, 3]  # the next epoch starts over


def test_drop_remainder_and_repeat():
    ds = make(batch_size=4, drop_remainder=True, repeat=True)
    it = iter(ds)
    seen = [next(it)[1].tolist() for _ in range(5)]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]
    with pytest.raises(ValueError, match="batch_size"):
        make(batch_size=11, drop_remainder=True)


def test_seeded_shuffle_differs_per_epoch_and_covers_everything():
    ds = make(n=20, batch_size=5, shuffle=True, seed=3)
    e0 = np.concatenate([b[1] for b in ds])
    e1 = np.concatenate([b[1] for b in ds])
    assert sorted(e0) == list(range(20)) and sorted(e1) == list(range(20))
    assert not np.array_equal(e0, e1)
    again = make(n=20, batch_size=5, shuffle=True, seed=3)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in again]), e0)
    x, y = next(iter(make(n=20, batch_size=5, shuffle=True, seed=3)))
    np.testing.assert_array_equal(x[:, 0], y * 2)  # rows stay together


def test_state_and_restore_resume_the_stream():
    ds = make(n=20, batch_size=3, shuffle=True, seed=1, repeat=True)
    it = iter(ds)
    for _ in range(8):
        next(it)
    state = ds.state()
    expected = [next(it)[1].tolist() for _ in range(4)]
    other = make(n=20, batch_size=3, shuffle=True, seed=1, repeat=True)
    other.restore(state)
    it2 = iter(other)
    assert [next(it2)[1].tolist() for _ in range(4)] == expected


def test_prefetch_yields_the_same_batches_and_tracks_consumed_position():
    plain = [b[1].tolist() for b in make(n=50, batch_size=4, shuffle=True, seed=2)]
    pre = make(n=50, batch_size=4, shuffle=True, seed=2).prefetch(3)
    got = []
    for i, b in enumerate(pre):
        got.append(b[1].tolist())
        if i == 4:
            assert pre.state()["position"] == 5  # not the reader's position
    assert got == plain
    ds = make(n=50, batch_size=4, shuffle=True, seed=2, repeat=True)
    pre = ds.prefetch(2)
    for i, _ in enumerate(pre):
        if i == 6:
            break
    assert pre.state()["position"] == 7 and ds.state()["position"] == 7


def test_mismatched_first_dimensions_are_rejected():
    with pytest.raises(ValueError, match="one shared first dimension"):
        datasets.InMemory((np.zeros((3, 2)), np.zeros(4)), 2)


def test_load_digits():
    (xtr, ytr), (xte, yte) = datasets.load_digits()
    assert xtr.shape == (1437, 64) and xte.shape == (360, 64)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int32
    assert 0 <= xtr.min() and xtr.max() <= 1
    assert sorted(set(yte.tolist())) == list(range(10))
    (img, _), _ = datasets.load_digits(images=True)
    assert img.shape == (1437, 1, 8, 8)


def test_load_digits_without_scikit_learn_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # an import of it now fails
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'mlframework\[examples\]'"):
        datasets.load_digits()
