"""Streaming torch dataset of random windows from complete episodes; never loads a whole store."""
from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .reader import StoreReader
from .schema import StoreError

log = logging.getLogger(__name__)

PER_FRAME = ("video", "codes", "actions", "pose")


def shard_info() -> tuple[int, int]:
    """(shard id, shard count) over DDP ranks x DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world * nw


def shard_episodes(episodes: Sequence[int], shard: int, shards: int) -> list[int]:
    """Disjoint round-robin split; with fewer episodes than shards each shard gets one (shared) episode,
    so no worker starves on a tiny store."""
    episodes = list(episodes)
    if not episodes:
        return []
    if len(episodes) >= shards:
        return episodes[shard::shards]
    return [episodes[shard % len(episodes)]]


class WindowDataset(IterableDataset):
    """Yields {"video"|"codes"|"actions"|"pose": tensor (L, ...), "episode": int, "start": int}.

    infinite=True: random episode, random window, forever (training). infinite=False: one random
    window per episode of this shard, then stop (evaluation passes).
    on_error="skip" drops an episode that fails to read (checksum, truncation, wrong shape) with a
    warning naming it; "raise" stops with a StoreError naming it.

    Each DataLoader worker (and DDP rank) draws from its own share of the episodes with its own generator
    (seed, epoch, shard): the windows are reproducible for the same seed, epoch and worker x rank count, and
    a batch may come from few episodes when a store has few. set_epoch() reaches workers that are started
    for the epoch, not `persistent_workers=True` ones. len() is the windows of one pass (infinite=False).

        from torch.utils.data import DataLoader
        from storage import WindowDataset
        ds = WindowDataset("data/dmlab.zarr", window=16, fields=("video", "actions"))
        for batch in DataLoader(ds, batch_size=8, num_workers=2):
            batch["video"]   # uint8 (8, 16, 64, 64, 3); batch["actions"] int64 (8, 16)
    """

    def __init__(self, url, window: int, fields: Sequence[str] = ("video", "actions"),
                 episodes: Sequence[int] | None = None, seed: int = 0, infinite: bool = True,
                 on_error: str = "skip"):
        reader = StoreReader(url)
        cfg = reader.config
        if not 1 <= window <= cfg.length:
            raise ValueError(f"window {window} must be within 1..{cfg.length} (the store's episode length)")
        for f in fields:
            if not reader.has(f):
                hint = " (run teco-encode first)" if f == "codes" else ""
                raise StoreError(f"{reader.url} has no array '{f}'{hint}")
        if on_error not in ("skip", "raise"):
            raise ValueError("on_error must be 'skip' or 'raise'")
        complete = set(reader.complete_indices().tolist())
        if episodes is None:
            episodes = sorted(complete)
        else:
            bad = [i for i in episodes if i not in complete]
            if bad:
                raise StoreError(f"{reader.url}: episodes {bad[:10]} are not complete")
        if not episodes:
            raise StoreError(f"{reader.url} has no complete episodes")
        self.url, self.window, self.fields = reader.url, int(window), tuple(fields)
        self.episodes, self.seed, self.infinite, self.on_error = list(episodes), seed, infinite, on_error
        self.length = cfg.length
        self.epoch = 0
        self._reader: StoreReader | None = None   # opened lazily in each worker process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def read_window(self, reader: StoreReader, i: int, t: int) -> dict:
        """One window; a missing or damaged object raises EpisodeDataError naming episode and array
        (StoreReader.read never returns fill values for missing data)."""
        out = {}
        for f in self.fields:
            x = reader.read(f, i, t, t + self.window) if f in PER_FRAME else reader.read(f, i)
            x = np.asarray(x)
            if f in PER_FRAME and x.shape[0] != self.window:
                raise StoreError(f"episode {i}: '{f}' has {x.shape[0]} frames at {t}, expected {self.window}")
            if f == "codes" and (x < 0).any():
                raise StoreError(f"episode {i}: codes not written (run teco-encode)")
            out[f] = torch.from_numpy(x.astype(np.int64) if x.dtype.kind in "iu" and f != "video" else x)
        out["episode"], out["start"] = int(i), int(t)
        return out

    def _picks(self, mine: list[int], bad: set[int], rng: np.random.Generator) -> Iterator[int]:
        if not self.infinite:
            yield from mine
            return
        while True:
            alive = [e for e in mine if e not in bad]
            if not alive:
                raise StoreError(f"{self.url}: every episode of this loader shard failed to read: {sorted(bad)}")
            yield alive[int(rng.integers(len(alive)))]

    def __iter__(self) -> Iterator[dict]:
        shard, shards = shard_info()
        if self.infinite:
            mine = shard_episodes(self.episodes, shard, shards)
        else:   # one pass must not repeat an episode across shards
            mine = self.episodes[shard::shards]
        reader = self._reader = self._reader or StoreReader(self.url)
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        span = self.length - self.window + 1
        bad: set[int] = set()
        for i in self._picks(mine, bad, rng):
            t = int(rng.integers(span))
            try:
                item = self.read_window(reader, i, t)
            except Exception as e:   # zarr raises various types for damaged chunks
                if self.on_error == "raise":
                    raise StoreError(f"{self.url}: episode {i} is unreadable: {type(e).__name__}: {e}") from None
                log.warning("skipping episode %d of %s: %s: %s", i, self.url, type(e).__name__, e)
                bad.add(i)
                continue
            yield item

    def __len__(self) -> int:   # windows per pass for infinite=False (DataLoader progress bars)
        return len(self.episodes)
