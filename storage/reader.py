"""The one reader of episode stores (plain zarr underneath; see FORMAT.md)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import zarr

from . import store as _store
from .schema import StoreError, array_specs


class StoreReader:
    def __init__(self, url):
        self.url = _store.normalise(url)
        self.group = _store.open_group(self.url, "r")
        self.config, self.meta = _store.read_meta(self.group, self.url)
        self._arrays: dict[str, zarr.Array] = {}
        for spec in array_specs(self.config):
            arr = self.array(spec.name)
            want = (self.config.episodes, *spec.shape[1:])
            if tuple(arr.shape) != want or np.dtype(arr.dtype) != np.dtype(spec.dtype):
                raise StoreError(f"{self.url}: array '{spec.name}' is {arr.dtype}{tuple(arr.shape)}, "
                                 f"expected {np.dtype(spec.dtype)}{want}")

    @property
    def attrs(self) -> dict:
        return self.meta

    def has(self, name: str) -> bool:
        return name in self.group

    def array(self, name: str) -> zarr.Array:
        if name not in self._arrays:
            try:
                self._arrays[name] = self.group[name]
            except KeyError:
                raise StoreError(f"{self.url}: no array '{name}'") from None
        return self._arrays[name]

    def complete_mask(self) -> np.ndarray:
        return np.asarray(self.array("complete")[:], bool)

    def complete_indices(self) -> np.ndarray:
        return np.flatnonzero(self.complete_mask())

    def read(self, name: str, i: int, t0: int = 0, t1: int | None = None) -> np.ndarray:
        """Episode i of array `name`; for per-frame arrays only frames t0:t1 (reads just those chunks)."""
        arr = self.array(name)
        if not 0 <= int(i) < arr.shape[0]:
            raise StoreError(f"{self.url}: episode {i} outside 0..{arr.shape[0] - 1}")
        if arr.ndim == 1:
            return arr[int(i)]
        return arr[int(i), t0:t1]

    def episode(self, i: int, fields=("video", "actions", "pose")) -> dict[str, np.ndarray]:
        return {f: self.read(f, i) for f in fields}

    def missing_objects(self, i: int, names) -> list[str]:
        """Storage objects of episode i that are absent. zarr reads a missing object as fill values
        without complaint, so readers that must not train on zeros ask this once per episode."""
        import fsspec
        fs, root = fsspec.core.url_to_fs(self.url)
        root = root.rstrip("/")
        return [f"{n}/{k}" for n in names for k in object_keys(self.array(n), i)
                if not fs.exists(f"{root}/{n}/{k}")]

    def failed(self) -> dict:
        return dict(self.meta.get("failed") or {})

    def nbytes_stored(self) -> int:
        """Bytes on disk (or in the object store) under this store."""
        import fsspec
        fs, path = fsspec.core.url_to_fs(self.url)
        return int(sum(fs.du(path, total=False).values())) if fs.exists(path) else 0


def object_keys(arr: zarr.Array, i: int) -> list[str]:
    """Keys (under the array) of the storage objects holding episode i: its shard, or its chunks."""
    grid = arr.shards or arr.chunks
    rest = [range(math.ceil(s / g)) for s, g in zip(arr.shape[1:], grid[1:])]
    return ["/".join(["c", str(i), *map(str, idx)]) for idx in itertools.product(*rest)]
