"""The one writer of episode stores.

Episode i's arrays are written by whichever process generated it, without locks: each lives in its
own shard/chunk objects. `complete[i]` is set only after all of them are written, so a crash leaves
the episode incomplete and a rerun rewrites it.
"""
from __future__ import annotations

import datetime
import time
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from . import store as _store
from .schema import (CODES_GRID, FORMAT_VERSION, TOOL_NAME, ArraySpec, StoreConfig,
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


def _check_array(arr: zarr.Array, spec: ArraySpec, url: str, n: int) -> None:
    want = (n, *spec.shape[1:])
    if tuple(arr.shape) != want or np.dtype(arr.dtype) != np.dtype(spec.dtype):
        raise StoreError(f"{url}: array '{spec.name}' is {arr.dtype}{tuple(arr.shape)}, expected "
                         f"{np.dtype(spec.dtype)}{want}")


class StoreWriter:
    def __init__(self, url: str, group: zarr.Group, config: StoreConfig):
        self.url, self.group, self.config = url, group, config
        self._arrays: dict[str, zarr.Array] = {}
        self._executor = None
        self._has_codes: bool | None = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(cls, url, config: StoreConfig) -> "StoreWriter":
        """Create the store, or reopen it and check it holds the same dataset with the same config.
        `config.episodes` larger than the store's grows it; smaller keeps the store's size."""
        url = _store.normalise(url)
        if _store.exists(url):
            group = _store.open_group(url, "r+")
            old, _ = _store.read_meta(group, url)
            if old.identity() != config.identity():
                diff = [k for k, v in config.identity().items() if old.identity().get(k) != v]
                raise StoreError(f"{url} was made with a different config (differs in: {', '.join(diff)}); "
                                 "use another --out path or the same settings as before")
            w = cls(url, group, old)
            w._validate_arrays()
            if config.episodes > old.episodes:
                w._grow(config.episodes)
            return w
        _store.make_parent(url)
        if not _store.is_url(url):
            import os
            if os.path.exists(url) and os.listdir(url):
                raise StoreError(f"{url} exists and is not an episode store; refusing to write into it")
        group = zarr.open_group(url, mode="w-", zarr_format=3)
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

    def _validate_arrays(self) -> None:
        n = self.config.episodes
        for spec in array_specs(self.config):
            try:
                arr = self.group[spec.name]
            except KeyError:
                raise StoreError(f"{self.url}: array '{spec.name}' is missing") from None
            _check_array(arr, spec, self.url, n)

    def _grow(self, n: int) -> None:
        for name in [s.name for s in array_specs(self.config)] + (["codes"] if "codes" in self.group else []):
            arr = self.group[name]
            arr.resize((n, *arr.shape[1:]))
        self.config.episodes = n
        self.update_meta(lambda m: m["config"].__setitem__("episodes", n))

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
        if len(actions) and (actions.min() < -1 or actions.max() >= len(c.action_names)):   # -1: no action (reset view)
            raise StoreError(f"episode {i}: action ids outside -1..{len(c.action_names) - 1}")
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
        # Each write waits on zarr's I/O loop and compression; issued together they overlap (~25% less
        # wall time per episode), and the episode is incomplete until every one has finished.
        arrays = {name: self.array(name) for name in writes}
        futures = [self._pool().submit(arrays[name].__setitem__, i, value) for name, value in writes.items()]
        for f in futures:
            f.result()

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

    def write_field(self, name: str, i: int, data: np.ndarray) -> None:
        self.array(name)[self._index(i)] = data

    def mark_complete(self, i: int, seed: int) -> None:
        i = self._index(i)
        self.array("seed")[i] = int(seed)
        self.set_complete(i, True)

    def set_complete(self, i: int, value: bool) -> None:
        self.array("complete")[self._index(i)] = bool(value)

    def _index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < self.config.episodes:
            raise StoreError(f"episode index {i} outside 0..{self.config.episodes - 1}")
        return i

    def complete_mask(self) -> np.ndarray:
        return np.asarray(self.array("complete")[:], bool)

    # -- attributes (single-writer: the driver) ---------------------------------------------------
    def update_meta(self, fn) -> dict:
        """Read-modify-write of our attribute; only the driver of a run calls this."""
        meta = dict(self.group.attrs.asdict()[_store.ATTR_KEY])
        fn(meta)
        self.group.attrs[_store.ATTR_KEY] = meta
        return meta

    def failed(self) -> dict:
        return dict(self.group.attrs.asdict()[_store.ATTR_KEY].get("failed") or {})

    def record_failed(self, i: int, reason: str | None) -> None:
        """Record (or clear, with reason=None) a failed episode in the store's attributes."""
        def f(meta):
            failed = dict(meta.get("failed", {}))
            if reason is None:
                failed.pop(str(i), None)
            else:
                failed[str(i)] = {"reason": reason[:500], "time": time.time()}
            meta["failed"] = failed
        self.update_meta(f)

    # -- VQ-GAN codes (teco-encode) ---------------------------------------------------------------
    def ensure_codes(self, grid: int = CODES_GRID, vqgan_hash: str = "", codebook_size: int = 0,
                     overwrite: bool = False) -> zarr.Array:
        """Create `codes` (N,T,grid,grid) or check the existing one was made by the same VQ-GAN.
        With overwrite, codes of another VQ-GAN are dropped and every episode must be re-encoded."""
        spec = codes_spec(self.config, grid)
        meta = self.group.attrs.asdict()[_store.ATTR_KEY]
        info = meta.get("codes")
        if "codes" in self.group:
            if info and info.get("vqgan_hash") != vqgan_hash and not overwrite:
                raise StoreError(f"{self.url} already holds codes of VQ-GAN {info.get('vqgan_hash')}, not "
                                 f"{vqgan_hash}; pass --overwrite to re-encode")
            if overwrite and info and info.get("vqgan_hash") != vqgan_hash:
                del self.group["codes"]
                self._has_codes = False
                self.group.attrs[_store.ATTR_KEY] = {**meta, "codes": None}
                self._arrays.pop("codes", None)
        if "codes" not in self.group:
            _create_array(self.group, spec, self.config.compression_level)
        self._has_codes = True
        arr = self.group["codes"]
        _check_array(arr, spec, self.url, self.config.episodes)
        self.update_meta(lambda m: m.__setitem__("codes", {"vqgan_hash": vqgan_hash, "grid": grid,
                                                          "codebook_size": int(codebook_size)}))
        return arr

