"""Datasets: batches of NumPy arrays for training loops.

    train, test = datasets.load_digits()
    ds = datasets.InMemory(train, batch_size=32, shuffle=True, seed=0, drop_remainder=True)
    for images, labels in ds.prefetch(2):       # one epoch
        ...

`InMemory` yields the stream of batches of epoch 0, 1, 2, ...; each epoch is
a permutation drawn from (seed, epoch), so the stream is a pure function of
the seed and the position in it. `state()` and `restore()` save and set the
position, which makes resuming from a checkpoint exact.
"""
from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from mlframework.core import pytree


class InMemory:
    """Batches of a pytree of arrays sharing their first dimension.

    Args:
        data: an array or a pytree (e.g. a tuple (inputs, labels)) of arrays.
        batch_size: examples per batch.
        shuffle: a new permutation each epoch (seeded by `seed` and the epoch).
        drop_remainder: drop the last, smaller batch of each epoch.
        repeat: iterate forever instead of to the end of the current epoch.
    """

    def __init__(self, data: Any, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 drop_remainder: bool = False, repeat: bool = False):
        self._leaves, self._tree = pytree.flatten(data)
        self._leaves = [np.asarray(a) for a in self._leaves]
        sizes = {a.shape[0] if a.ndim else None for a in self._leaves}
        size = sizes.pop() if len(sizes) == 1 else None
        if size is None:
            raise ValueError(f"InMemory requires arrays with one shared first dimension, got "
                             f"shapes {[a.shape for a in self._leaves]}")
        self.size: int = size
        if batch_size < 1 or (drop_remainder and batch_size > self.size):
            raise ValueError(f"InMemory requires 1 <= batch_size <= {self.size} examples, "
                             f"got {batch_size}")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_remainder, self.repeat = drop_remainder, repeat
        self.batches_per_epoch = (self.size // batch_size if drop_remainder
                                  else math.ceil(self.size / batch_size))
        self._position = 0  # batches yielded since the start of epoch 0
        self._order_epoch, self._order = -1, np.arange(0)

    @property
    def epoch(self) -> int:
        """The epoch of the next batch."""
        return self._position // self.batches_per_epoch

    def state(self) -> dict:
        """The position in the stream (JSON-serializable)."""
        return {"position": self._position, "seed": self.seed}

    def restore(self, state: dict) -> None:
        """Moves to a position saved by `state()`."""
        self._position = int(state["position"])

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            self._order_epoch = epoch
            self._order = (np.random.default_rng([self.seed, epoch]).permutation(self.size)
                           if self.shuffle else np.arange(self.size))
        return self._order

    def batch(self, position: int, rows: slice | None = None) -> Any:
        """The batch at `position` in the stream; with `rows`, only those rows of it
        (only they are read: how each process takes its part of a global batch)."""
        epoch, index = divmod(position, self.batches_per_epoch)
        picked = self._permutation(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        if rows is not None:
            picked = picked[rows]
        if not self.shuffle and len(picked) and (rows is None or rows.step in (None, 1)):
            contiguous = slice(picked[0], picked[-1] + 1)  # a view, not a copy
            return pytree.unflatten(self._tree, [a[contiguous] for a in self._leaves])
        return pytree.unflatten(self._tree, [a[picked] for a in self._leaves])

    def __iter__(self):
        end = None if self.repeat else (self.epoch + 1) * self.batches_per_epoch
        while end is None or self._position < end:
            batch = self.batch(self._position)
            self._position += 1
            yield batch

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.batches_per_epoch

    def prefetch(self, buffer: int = 2) -> "Prefetch":
        """This dataset read ahead by a background thread (see `Prefetch`)."""
        return Prefetch(self, buffer)


class Positioned(Protocol):
    """A dataset with a position that `state()` saves and `restore` returns to: `InMemory`
    and the distributed `GlobalBatches` (what `Prefetch` reads ahead)."""

    @property
    def batches_per_epoch(self) -> int: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def state(self) -> dict: ...

    def restore(self, state: dict) -> None: ...


class Prefetch:
    """Reads batches of a dataset ahead in a background thread, `buffer` at most.

    `state()` is the position after the last batch handed out, not the
    (further) position of the reader, so checkpoints stay exact.
    """

    _END = object()

    def __init__(self, dataset: Positioned, buffer: int = 2):
        self.dataset, self.buffer = dataset, buffer
        self._state = dataset.state()

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def epoch(self) -> int:
        return self._state["position"] // self.dataset.batches_per_epoch

    def state(self) -> dict:
        return dict(self._state)

    def restore(self, state: dict) -> None:
        self.dataset.restore(state)
        self._state = self.dataset.state()

    def __iter__(self):
        self.dataset.restore(self._state)
        items: queue.Queue = queue.Queue(self.buffer)
        stop = threading.Event()

        def read():
            try:
                for batch in self.dataset:
                    while not stop.is_set():
                        try:
                            items.put((batch, self.dataset.state()), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                items.put((self._END, None))
            except BaseException as e:  # handed to the consumer
                items.put((e, None))

        thread = threading.Thread(target=read, daemon=True, name="prefetch")
        thread.start()
        try:
            while True:
                batch, state = items.get()
                if batch is self._END:
                    return
                if isinstance(batch, BaseException):
                    raise batch
                self._state = state
                yield batch
        finally:
            stop.set()
            thread.join()
            self.dataset.restore(self._state)


def load_digits(test_fraction: float = 0.2, seed: int = 0,
                images: bool = False) -> tuple[tuple[np.ndarray, np.ndarray],
                tuple[np.ndarray, np.ndarray]]:
    """The handwritten digits of scikit-learn (1,797 8x8 images, 10 classes).

    Returns ((x_train, y_train), (x_test, y_test)): float32 pixels scaled to
    [0, 1], as [n, 64] or, with `images=True`, [n, 1, 8, 8]; int32 labels. The
    split is stratified and seeded.

    Raises:
        ModuleNotFoundError: without scikit-learn, which holds the data: it comes with
            the `examples` extra, ``pip install 'mlframework[examples]'``.
    """
    try:
        from sklearn.datasets import load_digits as _load
        from sklearn.model_selection import train_test_split
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("sklearn"):
            raise
        raise ModuleNotFoundError(
            "datasets.load_digits needs scikit-learn, which holds the digits data: install "
            "the examples extra, pip install 'mlframework[examples]' (or pip install "
            "scikit-learn)", name=e.name) from e

    digits = _load()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                              stratify=y)
    return (x_tr, y_tr), (x_te, y_te)


__all__ = ["InMemory", "Prefetch", "load_digits"]
