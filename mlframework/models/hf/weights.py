"""The tensors of a HuggingFace checkpoint folder, memory-mapped.

A folder holds `model.safetensors`, or shards listed by `model.safetensors.index.json`
(its `weight_map`: tensor name -> shard file). Each file is mapped copy-on-write
(`mmap.ACCESS_COPY`); a tensor is a NumPy view of the mapping, so nothing is read until
a tensor is used and nothing is copied unless its dtype or layout must change. Once a
backend holds its own copy of a tensor, `release` drops the tensor's pages from the
process's resident memory (they would be read from the file again if used).

safetensors layout: an 8-byte little-endian header length, a JSON header
(name -> {"dtype", "shape", "data_offsets": [begin, end]} relative to the data that
follows the header), then the data.
"""
from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import ml_dtypes
import numpy as np

# safetensors dtype names that are read, and their little-endian NumPy types
DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype(ml_dtypes.bfloat16)}
SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"


class WeightsError(ValueError):
    """A checkpoint's tensor is missing, mis-shaped, of an unsupported dtype, or unreadable."""


class _File:
    """One safetensors file: its header and a copy-on-write mapping of its bytes."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path} is not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            try:
                self.header = json.loads(f.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise WeightsError(f"{path}: unreadable safetensors header ({e})") from None
        self.header.pop("__metadata__", None)
        self.data_start = 8 + n
        self.size = path.stat().st_size
        self._mmap: mmap.mmap | None = None
        self._bytes: np.ndarray | None = None

    def view(self, name: str) -> np.ndarray:
        entry = self.header[name]
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            raise WeightsError(f"tensor {name!r} in {self.path.name} is stored as "
                               f"{entry['dtype']}; supported: float32 (F32), float16 (F16), "
                               "bfloat16 (BF16)")
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or \
                self.data_start + end > self.size:
            raise WeightsError(f"tensor {name!r} in {self.path.name}: offsets {begin}..{end} "
                               f"do not hold {entry['dtype']}{list(shape)} inside the file")
        if self._bytes is None:
            with open(self.path, "rb") as f:
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            self._bytes = np.frombuffer(self._mmap, np.uint8)
        raw = self._bytes[self.data_start + begin:self.data_start + end]
        return raw.view(dtype).reshape(shape)

    def release(self, name: str) -> None:
        """Drops the whole pages of tensor `name` from resident memory (MADV_DONTNEED:
        unmodified copy-on-write pages are read from the file again if touched)."""
        if self._mmap is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        begin, end = (self.data_start + o for o in self.header[name]["data_offsets"])
        page = mmap.PAGESIZE
        start, stop = -(-begin // page) * page, end // page * page
        if stop > start:
            self._mmap.madvise(mmap.MADV_DONTNEED, start, stop - start)


class Weights:
    """Name -> memory-mapped tensor of a checkpoint folder.

    Raises:
        WeightsError: when the folder has neither file, or an index names a missing shard.
    """

    def __init__(self, folder):
        folder = Path(folder)
        self._where: dict[str, _File] = {}
        if (folder / SINGLE).exists():
            single = _File(folder / SINGLE)
            self._where = dict.fromkeys(single.header, single)
        elif (folder / INDEX).exists():
            weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
            files = {}
            for shard in sorted(set(weight_map.values())):
                if not (folder / shard).exists():
                    raise WeightsError(f"{folder / INDEX} names shard {shard!r}, which is "
                                       "missing")
                files[shard] = _File(folder / shard)
            for name, shard in weight_map.items():
                if name not in files[shard].header:
                    raise WeightsError(f"{INDEX} places {name!r} in {shard}, whose header "
                                       "lacks it")
                self._where[name] = files[shard]
        else:
            raise WeightsError(f"{folder} holds neither {SINGLE} nor {INDEX}")
        self.files = sorted({f.path for f in self._where.values()})

    def names(self) -> list[str]:
        return sorted(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].header[name]["shape"])

    def dtype_name(self, name: str) -> str:
        return self._where[name].header[name]["dtype"]

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor `name` as a read-only-in-effect view of the mapping (its stored dtype).

        Raises:
            WeightsError: naming the tensor when it is missing, its shape is not `shape`
                (both shapes shown), or its dtype is not float32, float16 or bfloat16.
        """
        if name not in self._where:
            raise WeightsError(f"the checkpoint lacks tensor {name!r} (expected shape "
                               f"{list(shape)})")
        found = self.shape(name)
        if found != tuple(shape):
            raise WeightsError(f"tensor {name!r} has shape {list(found)}, expected "
                               f"{list(shape)}")
        return self._where[name].view(name)

    def release(self, name: str) -> None:
        """Lets the pages of tensor `name` leave resident memory (see `_File.release`)."""
        self._where[name].release(name)

    @property
    def nbytes(self) -> int:
        """Total size of the checkpoint files in bytes."""
        return sum(p.stat().st_size for p in self.files)


__all__ = ["DTYPES", "INDEX", "SINGLE", "Weights", "WeightsError"]
