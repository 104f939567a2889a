"""Reading one episode's frames for teco without ever taking fill values for data.

zarr reads a storage object that is absent as fill values (black frames, zero actions) without
complaint, and a shard cut short raises whatever its codec raises. Every teco reader of frames goes
through `read_checked`, which checks that the objects holding the requested frames exist and turns
any read failure into an `EpisodeUnreadable` naming the episode, so callers skip it by name or stop.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from cli_common import first_line
from storage import StoreError, StoreReader


class EpisodeUnreadable(StoreError):
    """Episode `episode` of a store cannot be read; the message says which object and why."""

    def __init__(self, episode: int, reason: str):
        super().__init__(f"episode {episode}: {reason}")
        self.episode, self.reason = int(episode), reason


def _object_keys(arr, i: int, t0: int, t1: int) -> list[str]:
    """Keys (under the array) of the objects (shards, or chunks when unsharded) holding episode i,
    frames t0:t1 of a per-frame array (all of it for per-episode arrays)."""
    grid = arr.shards or arr.chunks
    ranges = [range(i, i + 1)]
    if arr.ndim > 1:
        ranges.append(range(t0 // grid[1], max(t0 // grid[1] + 1, math.ceil(t1 / grid[1]))))
        ranges += [range(math.ceil(s / g)) for s, g in zip(arr.shape[2:], grid[2:])]
    return [arr.metadata.encode_chunk_key(idx) for idx in itertools.product(*ranges)]


def missing_objects(reader: StoreReader, name: str, i: int, t0: int = 0, t1: int | None = None) -> list[str]:
    """'name/key' of each absent object holding episode i, frames t0:t1, of array `name`."""
    import fsspec
    arr = reader.array(name)
    if arr.ndim > 1:   # the frames reader.read would return (t1 past the end is clipped as in numpy)
        t1 = arr.shape[1] if t1 is None else min(t1, arr.shape[1])
    fs, root = fsspec.core.url_to_fs(reader.url)
    root = root.rstrip("/")
    return [f"{name}/{k}" for k in _object_keys(arr, int(i), t0, t1 or 0)
            if not fs.exists(f"{root}/{name}/{k}")]


def read_checked(reader: StoreReader, name: str, i: int, t0: int = 0, t1: int | None = None) -> np.ndarray:
    """reader.read(name, i, t0, t1), or EpisodeUnreadable when an object is missing or unreadable."""
    missing = missing_objects(reader, name, i, t0, t1)
    if missing:
        raise EpisodeUnreadable(i, f"missing object {', '.join(missing[:3])} in {reader.url}")
    try:
        return np.asarray(reader.read(name, i, t0, t1))
    except Exception as e:   # checksum mismatch, truncated shard: zarr raises several types
        why = f"'{name}' unreadable in {reader.url} ({type(e).__name__}: {first_line(e)})"
        raise EpisodeUnreadable(i, why) from None
