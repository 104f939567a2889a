"""One episode's objects on a local disk, read and written without zarr-python.

zarr-python spends 2-3.5 ms of Python and asyncio per window read around a ~1.5-2 ms decode (a random
16-frame training window was slower than the authors' uncompressed .npz files) and ~15 ms of CPU per
episode written around the compression; for the small arrays (actions, pose, per-episode fields, the seed
and completion flag) ~0.8 ms per window read, ~5 ms of CPU per DMLab episode written (72.7 vs 78.5 ms with
fsync, 4 interleaved runs each) and 3.5 ms of the run driver's CPU per episode marked complete (0.6 vs 4.1).
For the two layouts this toolkit makes (FORMAT.md):
  ShardPlan  an episode per shard, index at the end, inner chunks `bytes -> zstd -> crc32c`, index
             `bytes -> crc32c` (video, codes): reads the index and only the inner chunks a window needs
             with `os.pread`, checking both checksums;
  ChunkPlan  an episode per chunk, `bytes -> zstd -> crc32c` or `bytes` alone, no sharding (actions, pose,
             fields, seed, complete);
both encode a whole episode with the same numcodecs zstd that zarr uses, byte for byte what zarr writes.
Anything else (object stores, other codecs, stores made by other tools) is not handled here: `plan()`
returns None and the reader and writer use zarr. Equality with zarr, both ways, is tested
(tests/test_shards.py)."""
from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass

import google_crc32c
import numpy as np
from numcodecs import Zstd
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

_EMPTY = 2 ** 64 - 1     # an index entry of an inner chunk that was never written (fill value)
_ZSTD = Zstd()           # decoding needs no level


class ShardCorrupt(ValueError):
    """A checksum mismatch or a cut-short shard or chunk (the reader names the episode and array)."""


@dataclass(frozen=True)
class ShardPlan:
    """How to read and write one episode's shard of an array: its folder, chunk geometry and codec."""
    folder: str                  # <store>/<array>
    inner: tuple[int, ...]       # inner chunk shape, axis 0 = episode (1)
    per_shard: tuple[int, ...]   # inner chunks per shard along each axis
    dtype: np.dtype
    fill: object
    level: int                   # zstd level of the array's codec

    def path(self, i: int) -> str:
        return _key_path(self.folder, i, len(self.inner) - 1)   # plan() checked zarr's key encoding

    def window(self, i: int, t0: int, t1: int) -> np.ndarray:
        """Array[i, t0:t1] (0 <= t0 < t1 <= the array's length)."""
        path = self.path(i)
        n = math.prod(self.per_shard)
        ct = self.inner[1]
        first, last = t0 // ct, (t1 - 1) // ct
        out = np.empty((t1 - t0, *self.inner[2:]), self.dtype)
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            index_bytes = 16 * n + 4
            if size < index_bytes:
                raise ShardCorrupt(f"shard of {size} bytes is shorter than its index ({index_bytes})")
            index = _checked(os.pread(fd, index_bytes, size - index_bytes), "shard index")
            index = np.frombuffer(index, "<u8").reshape(n, 2)
            for c in range(first, last + 1):
                # the inner chunks of one episode's shard run along time only (per_shard = 1, k, 1, ...)
                off, nbytes = (int(x) for x in index[c])
                lo, hi = max(t0, c * ct), min(t1, (c + 1) * ct)
                if off == _EMPTY and nbytes == _EMPTY:
                    out[lo - t0:hi - t0] = self.fill
                    continue
                if off + nbytes > size - index_bytes:
                    raise ShardCorrupt(f"inner chunk {c} lies past the shard's end")
                raw = _ZSTD.decode(_checked(os.pread(fd, nbytes, off), f"inner chunk {c}"))
                chunk = np.frombuffer(raw, self.dtype).reshape(self.inner[1:])
                out[lo - t0:hi - t0] = chunk[lo - c * ct:hi - c * ct]
        finally:
            os.close(fd)
        return out

    def encode(self, episode: np.ndarray, pool=None) -> list:
        """The shard of one whole episode (array[i] = episode) as zarr writes it, as a list of buffers:
        inner chunks in order (the last padded with the fill value), each zstd + crc32c, then the index.
        `pool` (an Executor) compresses the chunks concurrently, as zarr does."""
        ct = self.inner[1]
        frames = self.per_shard[1] * ct
        episode = np.asarray(episode, self.dtype)
        if len(episode) < frames:
            pad = np.full((frames - len(episode), *episode.shape[1:]), self.fill, self.dtype)
            episode = np.concatenate([episode, pad])
        zstd = Zstd(level=self.level)
        parts = [np.ascontiguousarray(episode[c * ct:(c + 1) * ct]) for c in range(self.per_shard[1])]
        parts = list(pool.map(zstd.encode, parts)) if pool is not None else [zstd.encode(p) for p in parts]
        out, index, offset = [], np.empty((len(parts), 2), "<u8"), 0
        for c, body in enumerate(parts):
            out += [body, _crc(body)]
            index[c] = offset, len(body) + 4
            offset += len(body) + 4
        out += [index.tobytes(), _crc(index)]
        return out

    def write(self, i: int, episode: np.ndarray, pool=None) -> None:
        """Write episode i's shard atomically."""
        _write_atomic(self.path(i), self.encode(episode, pool))


@dataclass(frozen=True)
class ChunkPlan:
    """How to read and write an array stored as one chunk per episode (no sharding): the object
    `c/<i>/0/...` is the episode's bytes -> zstd -> crc32c, or its bare bytes (level None: `complete`)."""
    folder: str                  # <store>/<array>
    shape: tuple[int, ...]       # one episode's shape (the array's without axis 0; () per-episode fields)
    dtype: np.dtype
    level: int | None            # zstd level of the array's codec; None: bytes only

    def path(self, i: int) -> str:
        return _key_path(self.folder, i, len(self.shape))

    def window(self, i: int, t0: int, t1: int) -> np.ndarray:
        """Array[i, t0:t1] (0 <= t0 < t1 <= the array's length)."""
        with open(self.path(i), "rb") as f:
            data = f.read()
        raw = data if self.level is None else _ZSTD.decode(_checked(data, "chunk"))
        if len(raw) != self.dtype.itemsize * math.prod(self.shape):
            raise ShardCorrupt(f"chunk decodes to {len(raw)} bytes, not one episode's")
        return np.frombuffer(raw, self.dtype).reshape(self.shape)[t0:t1].copy()

    def encode(self, episode, pool=None) -> list:
        """The chunk of one whole episode as zarr writes it: [zstd body, crc32c] or [bytes] (`pool` is
        not needed)."""
        data = np.ascontiguousarray(np.broadcast_to(np.asarray(episode, self.dtype), self.shape))
        if self.level is None:
            return [data.tobytes()]
        body = Zstd(level=self.level).encode(data)
        return [body, _crc(body)]

    def write(self, i: int, episode, pool=None) -> None:
        """Write episode i's chunk atomically."""
        _write_atomic(self.path(i), self.encode(episode))


def _key_path(folder: str, i: int, rest: int) -> str:
    """The object of episode i when it is the only one along the other `rest` axes (zarr's default keys)."""
    return os.path.join(folder, "c", str(i), *["0"] * rest)


def _write_atomic(path: str, parts: list) -> None:
    """A temporary file renamed over `path`, as zarr's LocalStore writes: never a half-written object."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.partial"
    try:
        with open(tmp, "wb") as f:
            f.writelines(parts)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _crc(data) -> bytes:
    return np.uint32(google_crc32c.value(np.frombuffer(data, np.uint8))).astype("<u4").tobytes()


def _checked(data: bytes, what: str) -> memoryview:
    """The payload of `data` (payload + little-endian crc32c), after checking it."""
    if len(data) < 4:
        raise ShardCorrupt(f"{what} is cut short")
    body = memoryview(data)[:-4]
    if _crc(body) != data[-4:]:
        raise ShardCorrupt(f"{what}: crc32c checksum mismatch")
    return body


def plan(folder: str, arr) -> ShardPlan | ChunkPlan | None:
    """How to read and write zarr array `arr` stored at local `folder` directly, or None unless it has
    exactly one of our layouts (zarr's default chunk keys, little-endian bytes, zstd without its own
    checksum, then crc32c):
      ShardPlan  one shard per episode along axis 0 holding the whole rest of the array, index at the end,
                 inner chunks split along time only, `bytes -> zstd -> crc32c` inside, `bytes -> crc32c` index;
      ChunkPlan  no sharding, one chunk per episode holding the whole rest of the array, `bytes -> zstd -> crc32c`
                 or `bytes` alone."""
    meta = arr.metadata
    codecs = tuple(getattr(meta, "codecs", ()))
    keys = getattr(meta, "chunk_key_encoding", None)
    probe = (7,) + (0,) * (arr.ndim - 1)
    if keys is None or keys.encode_chunk_key(probe) != "/".join(["c", *map(str, probe)]):
        return None
    dtype = np.dtype(arr.dtype).newbyteorder("<")
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sh = codecs[0]
        shard, inner = tuple(arr.shards), tuple(sh.chunk_shape)
        if not (_ours(sh.codecs) and [type(c) for c in sh.index_codecs] == [BytesCodec, Crc32cCodec]
                and _little(sh.index_codecs) and sh.index_location.value == "end"
                and arr.ndim >= 2 and shard[0] == inner[0] == 1 and shard[2:] == inner[2:] == tuple(arr.shape[2:])
                and shard[1] >= arr.shape[1] and shard[1] % inner[1] == 0):
            return None
        per_shard = tuple(s // c for s, c in zip(shard, inner))
        return ShardPlan(folder, inner, per_shard, dtype, arr.fill_value, int(sh.codecs[1].level))
    if arr.shards is None and tuple(arr.chunks) == (1, *arr.shape[1:]):
        if _ours(codecs):
            return ChunkPlan(folder, tuple(arr.shape[1:]), dtype, int(codecs[1].level))
        if [type(c) for c in codecs] == [BytesCodec] and _little(codecs):   # `complete`: one byte, as is
            return ChunkPlan(folder, tuple(arr.shape[1:]), dtype, None)
    return None


def _little(codecs) -> bool:
    return all(getattr(c.endian, "value", c.endian) in (None, "little")   # None: 1-byte types
               for c in codecs if isinstance(c, BytesCodec))


def _ours(codecs) -> bool:
    """`bytes(little) -> zstd -> crc32c`, zstd without its own content checksum (that one: zarr reads it)."""
    return ([type(c) for c in codecs] == [BytesCodec, ZstdCodec, Crc32cCodec] and _little(codecs)
            and not getattr(codecs[1], "checksum", False))
