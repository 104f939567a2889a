"""What a store holds: array specs, chunking and the config recorded in the group attributes."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cli_common import UserError, strict_from_json

FORMAT_VERSION = 1
TOOL_NAME = "teco-worlds"


LAYOUT_FIELDS = ("chunk_frames", "compression_level")   # how bytes are stored, not what they mean


class StoreError(UserError, RuntimeError):
    """A store is missing, of the wrong dataset/shape/version, or damaged. The message names the problem."""


@dataclass
class StoreConfig:
    """Everything that fixes what an episode's bytes mean. Reopening a store with a different
    config is refused, so two runs can never silently mix data."""
    dataset: str                       # "dmlab" | "minecraft" | "habitat" | name given at import
    episodes: int                      # N
    length: int                        # T frames per episode
    height: int
    width: int
    action_names: list[str]            # action id -> name
    pose_names: list[str]              # pose[..., k] -> meaning, e.g. ["x", "y", "z", "yaw"]
    backend: str = "embedded"
    backend_version: str = "0"
    seed: int = 0                      # base seed; episode i uses generators.seeds.episode_seed(seed, i)
    params: dict[str, Any] = field(default_factory=dict)      # policy / protocol parameters
    episode_fields: dict[str, str] = field(default_factory=dict)  # extra per-episode scalars: name -> dtype
    # Layout, by measurement (bench/storage.py, DMLab frames; FORMAT.md "Why this chunking"): zstd-5 on
    # 75-frame chunks stores 0.379 of raw (the authors' compressed .npz download ~0.37), zstd-1 0.502 at
    # about half the encode cost. Larger chunks compress a little better, but every random window read
    # decodes whole chunks (100 frames: 0.376 of raw, ~70% slower windows).
    chunk_frames: int = 75             # frames per inner chunk of video/codes (one shard per episode)
    compression_level: int = 5         # zstd level

    def __post_init__(self):
        for name in ("episodes", "length", "height", "width", "chunk_frames"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.action_names:
            raise ValueError("action_names must not be empty")

    @property
    def pose_dim(self) -> int:
        return len(self.pose_names)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "StoreConfig":
        return strict_from_json(cls, d, "store")

    def identity(self) -> dict:
        """The fields that must match when a store is reopened: all but `episodes` (which may grow) and
        the layout (`chunk_frames`, `compression_level`), which a reopened store keeps from its creation,
        so a store made with other defaults still resumes."""
        d = self.to_json()
        for k in ("episodes", *LAYOUT_FIELDS):
            d.pop(k)
        return _normalise(d)


def _normalise(x):
    """JSON round trip turns tuples into lists and int keys into str: compare in that form."""
    if isinstance(x, dict):
        return {str(k): _normalise(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_normalise(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


@dataclass(frozen=True)
class ArraySpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    fill_value: Any


def inner_chunk(cfg: StoreConfig) -> int:
    return min(cfg.chunk_frames, cfg.length)


def padded_length(cfg: StoreConfig) -> int:
    """Shards must hold a whole number of inner chunks; the shard is padded past T (the array is not)."""
    c = inner_chunk(cfg)
    return math.ceil(cfg.length / c) * c


def array_specs(cfg: StoreConfig) -> list[ArraySpec]:
    """The arrays created with the store. One episode = one shard (video) or one chunk (others), so
    a worker writes an episode without a lock and without touching another episode's bytes."""
    n, t, h, w = cfg.episodes, cfg.length, cfg.height, cfg.width
    c, tp = inner_chunk(cfg), padded_length(cfg)
    specs = [
        ArraySpec("video", (n, t, h, w, 3), "uint8", (1, c, h, w, 3), (1, tp, h, w, 3), 0),
        ArraySpec("actions", (n, t), "int32", (1, t), None, -1),
        ArraySpec("pose", (n, t, max(cfg.pose_dim, 1)), "float32", (1, t, max(cfg.pose_dim, 1)), None, float("nan")),
        ArraySpec("seed", (n,), "int64", (1,), None, -1),
        ArraySpec("complete", (n,), "bool", (1,), None, False),
    ]
    for name, dtype in cfg.episode_fields.items():
        specs.append(ArraySpec(name, (n,), dtype, (1,), None, -1))
    return specs


def codes_spec(cfg: StoreConfig, grid: int) -> ArraySpec:
    """VQ-GAN codes written by `teco-encode`: int16 (N, T, grid, grid), one shard per episode; the grid
    is the VQ-GAN's (teco reads it from the VQ-GAN config, next to the codebook size)."""
    c, tp = inner_chunk(cfg), padded_length(cfg)
    return ArraySpec("codes", (cfg.episodes, cfg.length, grid, grid), "int16",
                     (1, c, grid, grid), (1, tp, grid, grid), -1)


EPISODE_ARRAYS = ("video", "actions", "pose")   # written by the worker; `complete` only after these
