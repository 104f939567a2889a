"""The one writer of episode stores.

Episode i's arrays are written by whichever process generated it, without locks: each lives in its
own shard/chunk objects. `complete[i]` is set only after all of them are written and (on local
disks) fsynced, so a crash or power loss leaves the episode incomplete and a rerun rewrites it.

Store-wide changes (attributes, growth, the `codes` array) happen under the store lock (storage/lock.py)
and re-read what is on disk first, so two writers never write back each other's stale copy. Growth
resizes every array and only then records the new count: readers accept arrays longer than the count,
and the next writer to open an interrupted growth finishes it.
"""
from __future__ import annotations

import copy
import datetime
import json
import math
import os
import time
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from . import store as _store
from .lock import locked
from .reader import EpisodeIndex, listed_episodes, object_keys
from .schema import (FORMAT_VERSION, TOOL_NAME, ArraySpec, StoreConfig,
                     StoreError, _normalise, array_specs, codes_spec)

TOOL_VERSION = "0.1.0"


def _codecs(spec: ArraySpec, level: int):
    if spec.name == "complete":   # 1 byte per episode: a checksum would triple it and adds nothing
        return None
    return [ZstdCodec(level=level), Crc32cCodec()]


def _create_array(group: zarr.Group, spec: ArraySpec, level: int) -> zarr.Array:
    return group.create_array(spec.name, shape=spec.shape, chunks=spec.chunks, shards=spec.shards,
                              dtype=spec.dtype, fill_value=spec.fill_value,
                              compressors=_codecs(spec, level), overwrite=False)


def check_config(config: StoreConfig) -> None:
    """Refuse a config that would make an unresumable store: NaN/inf (not JSON; NaN != NaN on reopen)
    or a negative seed (every episode would fail). Raised before anything is written."""
    imported = config.backend == "import" and config.seed == -1   # `teco-store import`: no base seed
    if isinstance(config.seed, bool) or not isinstance(config.seed, (int, np.integer)) or \
            not (0 <= config.seed < 2 ** 63 or imported):
        raise StoreError(f"seed must be an integer in 0..2**63-1, got {config.seed!r}")

    def walk(x, where):
        if isinstance(x, (float, np.floating)) and not math.isfinite(x):
            raise StoreError(f"config value {where} is {x}, not a finite number")
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif isinstance(x, (list, tuple)):
            for k, v in enumerate(x):
                walk(v, f"{where}[{k}]")
    walk(config.to_json(), "")
    try:
        json.dumps(_normalise(config.to_json()), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"config cannot be stored as JSON: {e}") from None


def actions_valid(actions: np.ndarray, k: int) -> bool:
    """actions[t] produced frame t: ids 0..k-1, and -1 ("no action": the view at reset) only at t = 0."""
    a = np.asarray(actions)
    if a.size == 0:
        return True
    return bool(-1 <= a[..., 0].min() and a[..., 0].max() < k
                and (a.shape[-1] == 1 or (a[..., 1:].min() >= 0 and a[..., 1:].max() < k)))


def check_same_config(url: str, old: StoreConfig, new: StoreConfig) -> None:
    """A store is only ever reopened with the config it was made with (its size may grow)."""
    diff = "; ".join(config_differences(old.identity(), new.identity()))
    if diff:
        raise StoreError(f"{url} was made with a different config (differs in: {diff}); "
                         "use another --out path or the same settings as before")


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for each differing leaf of two JSON configs (nested keys dotted, e.g. params.look_rate;
    long values cut)."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(k, _ABSENT), new.get(k, _ABSENT), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name + ".")
        elif a != b:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out


_ABSENT = object()   # a key one config lacks (shown as "(none)")


def _short(v, n: int = 60) -> str:
    s = '"(none)"' if v is _ABSENT else json.dumps(v)
    return s if len(s) <= n else s[:n - 3] + "..."


def _unfinished_creation(url: str, group: zarr.Group, config: StoreConfig) -> bool:
    """True for a group whose creation by `create(url, config)` was cut short: no attributes yet, nothing
    but (some of) the store's empty arrays. Nothing in it can be lost, so it is made again."""
    if group.attrs.asdict():
        return False
    names = {s.name for s in array_specs(config)}
    members = dict(group.members())
    if set(members) - names or not all(isinstance(m, zarr.Array) for m in members.values()):
        return False
    if not _store.is_url(url) and set(os.listdir(url)) - names - {"zarr.json"}:
        return False   # someone else's files too
    return all(len(listed_episodes(url, name)) == 0 for name in members)


def _fresh_meta(url: str) -> tuple[zarr.Group, dict]:
    """The group and our attribute as they are on disk now (not a copy cached at open)."""
    group = _store.open_group(url, "r+")
    meta = group.attrs.asdict().get(_store.ATTR_KEY)
    if not isinstance(meta, dict):
        raise StoreError(f"{url} is a Zarr group but not an episode store (attribute '{_store.ATTR_KEY}' missing)")
    _store.check_meta_types(meta, url)
    return group, meta


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreWriter(EpisodeIndex):
    def __init__(self, url: str, group: zarr.Group, config: StoreConfig):
        self.url, self.group, self.config = url, group, config
        self._arrays: dict[str, zarr.Array] = {}
        self._executor = None
        self.serial_compression = False   # True: a video shard's chunks compressed one after another (one core)
        self._has_codes: bool | None = None
        self.fsync = not _store.is_url(url)   # object stores are durable once a PUT returns

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(cls, url, config: StoreConfig) -> "StoreWriter":
        """Create the store, or reopen it and check it holds the same dataset with the same config.
        `config.episodes` larger than the store's grows it; smaller keeps the store's size."""
        url = _store.normalise(url)
        check_config(config)
        unfinished = False
        if _store.exists(url):
            group = _store.open_group(url, "r+")
            unfinished = _unfinished_creation(url, group, config)
            if not unfinished:
                old, _ = _store.read_meta(group, url)
                check_same_config(url, old, config)
                w = cls(url, group, old)
                w._validate_arrays()
                if config.episodes > w.config.episodes:
                    w._grow(config.episodes)
                return w
        _store.make_parent(url)
        if not _store.is_url(url) and not unfinished:
            if os.path.exists(url) and not os.path.isdir(url):
                raise StoreError(f"{url} is a file, not a store: choose another --out path")
            if os.path.exists(url) and os.listdir(url):
                raise StoreError(f"{url} exists and is not an episode store; refusing to write into it")
        # the attributes come last: until then the group is an unfinished creation, made again from scratch
        group = zarr.open_group(url, mode="w" if unfinished else "w-", zarr_format=3)
        for spec in array_specs(config):
            _create_array(group, spec, config.compression_level)
        group.attrs[_store.ATTR_KEY] = {
            "format_version": FORMAT_VERSION, "tool": TOOL_NAME, "tool_version": TOOL_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": _normalise(config.to_json()), "failed": {},
        }
        return cls(url, group, config)

    @classmethod
    def open(cls, url) -> "StoreWriter":
        url = _store.normalise(url)
        group = _store.open_group(url, "r+")
        cfg, _ = _store.read_meta(group, url)
        w = cls(url, group, cfg)
        w._validate_arrays()
        return w

    def _array_names(self, group: zarr.Group | None = None) -> list[str]:
        group = group or self.group
        return [s.name for s in array_specs(self.config)] + (["codes"] if "codes" in group else [])

    def _validate_arrays(self) -> None:
        """Check every array; arrays longer than the recorded count are an interrupted growth: finish it."""
        n = self.config.episodes
        longest = n
        for spec in array_specs(self.config):
            try:
                arr = self.group[spec.name]
            except KeyError:
                raise StoreError(f"{self.url}: array '{spec.name}' is missing") from None
            _store.check_array(arr, spec, self.url, n, longer_ok=True)
            longest = max(longest, arr.shape[0])
        if "codes" in self.group:
            longest = max(longest, self.group["codes"].shape[0])
        if longest > n:
            self._grow(longest)

    def _grow(self, n: int) -> None:
        """Resize every array to n episodes, then record n. Interrupted anywhere, the store stays
        readable at its old count (readers accept longer arrays) and the next writer finishes it."""
        with locked(self.url):
            group, meta = _fresh_meta(self.url)
            n = max(n, int(meta["config"]["episodes"]))
            for name in self._array_names(group):
                arr = group[name]
                if arr.shape[0] < n:
                    arr.resize((n, *arr.shape[1:]))
            self.group = group
            self._forget()
            self._has_codes = None
            self.update_meta(lambda m: m["config"].__setitem__("episodes", max(n, int(m["config"]["episodes"]))))

    # -- writing episodes -------------------------------------------------------------------------
    def array(self, name: str) -> zarr.Array:
        if name not in self._arrays:
            try:
                # a chunk equal to the fill value must still be written: a missing object means lost data
                self._arrays[name] = self.group[name].with_config({"write_empty_chunks": True})
            except KeyError:
                raise StoreError(f"{self.url}: no array '{name}'") from None
        return self._arrays[name]

    def write_episode(self, i: int, video: np.ndarray, actions: np.ndarray, pose: np.ndarray,
                      fresh: bool = False, **episode_fields: Any) -> None:
        """Write episode i's arrays (not marked complete: the caller does that once this returns).
        On a local disk every object written is fsynced before this returns.

        fresh=True promises episode i is not marked complete (the runner's workers: the driver hands
        out only incomplete episodes while it holds the store lock) and saves one write."""
        c = self.config
        i = self._index(i)
        video = np.asarray(video)
        if video.shape != (c.length, c.height, c.width, 3) or video.dtype != np.uint8:
            raise StoreError(f"episode {i}: video is {video.dtype}{video.shape}, store wants uint8"
                             f"{(c.length, c.height, c.width, 3)}")
        actions = np.asarray(actions)
        if actions.shape != (c.length,) or not np.issubdtype(actions.dtype, np.integer):
            raise StoreError(f"episode {i}: actions are {actions.dtype}{actions.shape}, store wants int ({c.length},)")
        if not actions_valid(actions, len(c.action_names)):
            raise StoreError(f"episode {i}: action ids outside 0..{len(c.action_names) - 1} "
                             "(-1, no action, only at frame 0)")
        p = max(c.pose_dim, 1)
        pose = np.asarray(pose, np.float32)
        if c.pose_dim == 0 and pose.size == 0:
            pose = np.full((c.length, 1), np.nan, np.float32)
        if pose.shape != (c.length, p):
            raise StoreError(f"episode {i}: pose is {pose.shape}, store wants ({c.length}, {p})")
        missing = set(c.episode_fields) - set(episode_fields)
        if missing or set(episode_fields) - set(c.episode_fields):
            raise StoreError(f"episode {i}: per-episode fields {sorted(episode_fields)} do not match the "
                             f"store's {sorted(c.episode_fields)}")
        if not fresh:
            self.set_complete(i, False)   # rewriting a complete episode makes it incomplete first
        writes = {"video": video, "actions": actions.astype(np.int32), "pose": pose, **episode_fields}
        if self.has_codes:                # codes of the old frames would be stale: back to "not encoded"
            writes["codes"] = np.int16(-1)
        # On a local disk every array has a direct plan: the same bytes without zarr-python's overhead.
        # Through zarr (object stores) each write waits on zarr's I/O loop and compression; issued together
        # they overlap (~25% less wall time per episode). The episode is incomplete until all have finished.
        futures = [self._pool().submit(self._put, name, i, value) for name, value in writes.items()
                   if self.direct_plan(name) is None]
        pool = None if self.serial_compression else self._pool()
        for name, value in writes.items():
            if self.direct_plan(name) is not None:
                self._put(name, i, value, pool)
        for f in futures:
            f.result()
        self.sync_episode(i, list(writes))

    def sync_episode(self, i: int, names) -> None:
        """fsync episode i's objects of `names` and their folders (local stores), so that marking it
        complete afterwards can never reach the disk before its data does."""
        if not self.fsync:
            return
        folders = set()
        for name in names:
            for key in object_keys(self.array(name), i):
                path = os.path.join(self.url, name, *key.split("/"))
                _fsync_path(path)
                parts = key.split("/")[:-1]   # the episode's folders may be new: their entries too
                for k in range(len(parts), -1, -1):
                    folders.add(os.path.join(self.url, name, *parts[:k]))
        for d in sorted(folders, key=len, reverse=True):
            _fsync_path(d)

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-writer")
        return self._executor

    @property
    def has_codes(self) -> bool:
        if self._has_codes is None:
            self._has_codes = "codes" in self.group
        return self._has_codes

    def _forget(self, *names: str) -> None:
        """Drop the cached arrays and direct plans of `names` (all without names): they changed on disk."""
        for cache in (self._arrays, self._plans):
            for name in names or list(cache):
                cache.pop(name, None)

    def _put(self, name: str, i: int, value, pool=None) -> None:
        """array[i] = value (one whole episode, or a value for all of it): directly where a plan exists
        (storage/shards.py: the bytes zarr writes, without its overhead), else through zarr."""
        plan = self.direct_plan(name)
        if plan is None:
            self.array(name)[i] = value
        else:
            plan.write(i, np.broadcast_to(value, self.array(name).shape[1:]), pool)

    def write_field(self, name: str, i: int, data: np.ndarray) -> None:
        self._put(name, self._index(i), data)

    def mark_complete(self, i: int, seed: int) -> None:
        i = self._index(i)
        self._put("seed", i, np.int64(seed))
        self.set_complete(i, True)

    def set_complete(self, i: int, value: bool) -> None:
        self._put("complete", self._index(i), bool(value))

    # -- attributes (merged with what is on disk, under the store lock) ----------------------------
    def meta(self) -> dict:
        """Our attribute as it is on disk now."""
        return _fresh_meta(self.url)[1]

    def update_meta(self, fn) -> dict:
        """Apply fn to our attribute as it is on disk now, under the store lock. A no-op change writes
        nothing and needs no lock (a rerun with nothing to do works on a read-only mount)."""
        _, current = _fresh_meta(self.url)
        new = copy.deepcopy(current)
        fn(new)
        if new == current:
            return current
        with locked(self.url):
            group, current = _fresh_meta(self.url)
            new = copy.deepcopy(current)
            fn(new)
            if new != current:
                try:
                    json.dumps(new, allow_nan=False)
                except (TypeError, ValueError) as e:
                    raise StoreError(f"{self.url}: attribute update is not valid JSON: {e}") from None
                group.attrs[_store.ATTR_KEY] = new
            self.group = group
        n = int(new["config"]["episodes"])
        if n != self.config.episodes:   # another writer grew the store since we opened it
            self.config.episodes = n
            self._forget()
        return new

    def failed(self) -> dict:
        return dict(self.meta().get("failed") or {})

    def record_failed(self, i: int, reason: str | None) -> None:
        """Record (or clear, with reason=None) a failed episode in the store's attributes."""
        def f(meta):
            failed = dict(meta.get("failed") or {})
            if reason is None:
                failed.pop(str(i), None)
            else:
                failed[str(i)] = {"reason": reason[:500], "time": time.time()}
            meta["failed"] = failed
        if reason is None and str(i) not in self.failed():
            return
        self.update_meta(f)

    # -- VQ-GAN codes (teco-encode) ---------------------------------------------------------------
    def ensure_codes(self, grid: int, vqgan_hash: str = "", codebook_size: int = 0,
                     overwrite: bool = False) -> zarr.Array:
        """Create `codes` (N,T,grid,grid; the grid is the VQ-GAN's) or check the existing one was made by the same VQ-GAN.
        With overwrite, codes of another VQ-GAN are dropped and every episode must be re-encoded.
        On a store already holding this VQ-GAN's codes nothing is written (no lock, no write access)."""
        spec = codes_spec(self.config, grid)
        want = {"vqgan_hash": vqgan_hash, "grid": grid, "codebook_size": int(codebook_size)}
        _, meta = _fresh_meta(self.url)
        info = meta.get("codes")
        group = _store.open_group(self.url, "r+")
        if "codes" in group and info and info.get("vqgan_hash") != vqgan_hash and not overwrite:
            raise StoreError(f"{self.url} already holds codes of VQ-GAN {info.get('vqgan_hash')}, not "
                             f"{vqgan_hash}; pass --overwrite to re-encode")
        if "codes" in group and info and all(info.get(k) == v for k, v in want.items()):
            arr = group["codes"]
            _store.check_array(arr, spec, self.url, self.config.episodes, longer_ok=True)
            self.group, self._has_codes = group, True
            self._forget("codes")
            return arr
        with locked(self.url):
            group, meta = _fresh_meta(self.url)
            info = meta.get("codes")
            if "codes" in group and info and info.get("vqgan_hash") != vqgan_hash:
                if not overwrite:
                    raise StoreError(f"{self.url} already holds codes of VQ-GAN {info.get('vqgan_hash')}, not "
                                     f"{vqgan_hash}; pass --overwrite to re-encode")
                del group["codes"]
                group.attrs[_store.ATTR_KEY] = {**meta, "codes": None}
            self._forget("codes")
            if "codes" not in group:
                _create_array(group, codes_spec(self.config, grid), self.config.compression_level)
            self.group, self._has_codes = group, True
            arr = group["codes"]
            _store.check_array(arr, spec, self.url, self.config.episodes, longer_ok=True)
            self.update_meta(lambda m: m.__setitem__("codes", {**(m.get("codes") or {}), **want}))
        return arr
