"""The one reader of episode stores (plain zarr underneath; see FORMAT.md).

zarr reads a missing object as fill values without complaint; `read` does not: a missing object of an
episode raises MissingEpisodeData and an undecodable one EpisodeDataError, both naming the episode."""
from __future__ import annotations

import itertools
import logging
import math
import os
import re

import numpy as np
import zarr

from cli_common import first_line

from . import store as _store
from .schema import StoreError, array_specs
from .shards import ChunkPlan, ShardPlan, plan

log = logging.getLogger(__name__)


class EpisodeDataError(StoreError):
    """Episode `episode`'s array `array` cannot be read (damaged or cut short). Callers that can go on
    without it (encoding, evaluation passes) catch this, name the episode and continue."""

    def __init__(self, message: str, episode: int | None = None, array: str | None = None):
        super().__init__(message)
        if episode is None:   # rebuilt from the message alone (pickling, torch's DataLoader re-raise)
            m = re.search(r"episode (\d+): array '([^']+)'", message)
            episode, array = (int(m.group(1)), m.group(2)) if m else (-1, "")
        self.episode, self.array = int(episode), array

    def __reduce__(self):
        return type(self), (str(self), self.episode, self.array)


class MissingEpisodeData(EpisodeDataError):
    """An object of episode `episode`'s array `array` is absent (zarr would return fill values)."""


class EpisodeIndex:
    """What reader and writer share about episodes (both have url, config and array())."""
    direct = True   # False: every read and write goes through zarr-python (the reference path)

    @property
    def _plans(self) -> dict:
        """Array name -> its direct plan (or None), made on first use; the writer drops stale ones."""
        return self.__dict__.setdefault("_plan_cache", {})

    def direct_plan(self, name: str) -> ShardPlan | ChunkPlan | None:
        """How to read and write `name` without zarr-python (storage/shards.py), or None."""
        if not self.direct or _store.is_url(self.url):
            return None
        if name not in self._plans:
            self._plans[name] = plan(os.path.join(self.url, name), self.array(name))
        return self._plans[name]

    def _index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < self.config.episodes:
            raise StoreError(f"{self.url}: episode {i} outside 0..{self.config.episodes - 1}")
        return i

    def complete_indices(self) -> np.ndarray:
        """Sorted indices of complete episodes. Costs one listing plus one read per episode that has a
        completion flag, not one per episode of the config (a store may be grown far past its data)."""
        return complete_indices(self.url, self.array("complete"), self.config.episodes)

    def complete_flags(self) -> tuple[np.ndarray, np.ndarray]:
        """(complete indices, indices whose completion flag is unreadable): see complete_flags()."""
        return complete_flags(self.url, self.array("complete"), self.config.episodes)

    def complete_count(self) -> int:
        return len(self.complete_indices())

    def complete_mask(self) -> np.ndarray:
        """Bool (episodes,): one byte per episode of the config; prefer complete_indices()."""
        mask = np.zeros(self.config.episodes, bool)
        mask[self.complete_indices()] = True
        return mask


class StoreReader(EpisodeIndex):
    def __init__(self, url, direct: bool = True):
        self.url = _store.normalise(url)
        self.direct = direct
        self.group = _store.open_group(self.url, "r")
        self.config, self.meta = _store.read_meta(self.group, self.url)
        self._arrays: dict[str, zarr.Array] = {}
        self._present: set[tuple[str, int]] = set()   # (array, episode) whose objects were found
        self.longest = self.config.episodes             # > episodes: an unfinished growth (writers finish it)
        for spec in array_specs(self.config):
            arr = self.array(spec.name)
            _store.check_array(arr, spec, self.url, self.config.episodes, longer_ok=True)
            self.longest = max(self.longest, arr.shape[0])

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
            except (ValueError, TypeError) as e:   # a damaged zarr.json (JSON or metadata errors)
                raise StoreError(f"{self.url}: {name}/zarr.json is unreadable ({type(e).__name__}: "
                                 f"{first_line(e)})") from None
        return self._arrays[name]

    def read(self, name: str, i: int, t0: int = 0, t1: int | None = None,
             allow_missing: bool = False) -> np.ndarray:
        """Episode i of array `name`; for per-frame arrays only frames t0:t1 (reads just those chunks).
        A missing object raises MissingEpisodeData, a damaged one EpisodeDataError (both name episode
        and array); allow_missing=True returns zarr's fill values for missing objects instead."""
        arr = self.array(name)
        i = self._index(i)
        if not allow_missing and (name, i) not in self._present:
            sizes = self.object_sizes(i, [name])
            missing = [k for k, n in sizes.items() if n is None]
            if missing:
                todo = ("run teco-encode" if name == "codes" else
                        "run `teco-store verify --mark-incomplete`, then the gen command, to regenerate it")
                raise MissingEpisodeData(f"{self.url}: episode {i}: array '{name}' has missing object(s) "
                                         f"{', '.join(missing[:3])}; {todo}", i, name)
            empty = [k for k, n in sizes.items() if n == 0]
            if empty:   # zarr reads an empty shard as a missing one (fill values); no object we write is empty
                raise EpisodeDataError(f"{self.url}: episode {i}: array '{name}' is unreadable (empty object(s) "
                                       f"{', '.join(empty[:3])}); run `teco-store verify`", i, name)
            self._present.add((name, i))
        try:
            if arr.ndim > 1 and (p := self.direct_plan(name)) is not None:
                lo, hi, _ = slice(t0, t1).indices(arr.shape[1])
                if lo < hi:
                    try:
                        return p.window(i, lo, hi)
                    except FileNotFoundError:   # deleted since the check: what zarr would make of it
                        if not allow_missing:
                            raise MissingEpisodeData(f"{self.url}: episode {i}: array '{name}' has a missing "
                                                     "object; run `teco-store verify`", i, name) from None
            return arr[i] if arr.ndim == 1 else arr[i, t0:t1]
        except EpisodeDataError:
            raise
        except Exception as e:   # checksum mismatch, truncated shard, undecodable bytes
            first = first_line(e)
            raise EpisodeDataError(f"{self.url}: episode {i}: array '{name}' is unreadable ({type(e).__name__}: "
                                   f"{first}); run `teco-store verify`", i, name) from None

    def episode(self, i: int, fields=("video", "actions", "pose")) -> dict[str, np.ndarray]:
        return {f: self.read(f, i) for f in fields}

    def object_sizes(self, i: int, names) -> dict[str, int | None]:
        """'name/key' -> size in bytes of each storage object of episode i (None: absent)."""
        keys = [f"{n}/{k}" for n in names for k in object_keys(self.array(n), i)]
        if not _store.is_url(self.url):
            def size(key):
                try:
                    return os.stat(os.path.join(self.url, *key.split("/"))).st_size
                except (FileNotFoundError, NotADirectoryError):
                    return None
        else:
            import fsspec
            fs, root = fsspec.core.url_to_fs(self.url)

            def size(key):
                try:
                    return int(fs.size(f"{root.rstrip('/')}/{key}"))
                except FileNotFoundError:
                    return None
        return {k: size(k) for k in keys}

    def missing_objects(self, i: int, names) -> list[str]:
        """Storage objects of episode i that are absent (keys under the store)."""
        return [k for k, n in self.object_sizes(i, names).items() if n is None]

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


def listed_episodes(url: str, name: str) -> np.ndarray:
    """Sorted episode indices i with an object under `name/c/i`: one listing, whatever the config says."""
    url = _store.normalise(url)
    if not _store.is_url(url):
        try:
            entries = os.listdir(os.path.join(url, name, "c"))
        except (FileNotFoundError, NotADirectoryError):
            entries = []
    else:
        import fsspec
        fs, root = fsspec.core.url_to_fs(url)
        path = f"{root.rstrip('/')}/{name}/c"
        fs.invalidate_cache(path)   # a cached listing misses objects written since (by zarr's own fs instance)
        try:
            entries = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
        except FileNotFoundError:
            entries = []
    # zarr's atomic writes leave "<key>.<uuid>.partial" only while writing (or after a crash): skip them
    return np.array(sorted(int(e) for e in entries if e.isdigit()), np.int64)


def complete_flags(url: str, complete: zarr.Array, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices < episodes whose `complete` flag is True, indices whose flag object is unreadable),
    reading only the flags that exist. A flag has no checksum (FORMAT.md); one that cannot be read
    (cut short, emptied) counts as incomplete instead of making the whole store unreadable."""
    if tuple(complete.chunks) != (1,):   # not our layout (one object per flag): read them all
        return np.flatnonzero(np.asarray(complete[:episodes], bool)), np.zeros(0, np.int64)
    idx = listed_episodes(url, "complete")
    idx = idx[idx < min(episodes, complete.shape[0])]
    if len(idx) == 0:
        return idx, idx
    try:
        return idx[np.asarray(complete.get_orthogonal_selection(idx), bool)], np.zeros(0, np.int64)
    except Exception:   # some flag object is damaged: read them one by one to find which
        values, bad = np.zeros(len(idx), bool), []
        for j, i in enumerate(idx):
            try:
                values[j] = bool(complete[int(i)])
            except Exception:
                bad.append(int(i))
        return idx[values], np.array(bad, np.int64)


def complete_indices(url: str, complete: zarr.Array, episodes: int) -> np.ndarray:
    """Indices < episodes whose `complete` flag is True; unreadable flags count as incomplete, with a warning."""
    done, unreadable = complete_flags(url, complete, episodes)
    if len(unreadable):
        log.warning("%s: the completion flags of episodes %s are unreadable; they count as incomplete "
                    "(`teco-store verify --mark-incomplete` rewrites them, the gen command then regenerates them)",
                    url, unreadable[:10].tolist())
    return done
