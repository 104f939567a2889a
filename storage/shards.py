"""One episode's shard file on a local disk, read and written without zarr-python.

zarr-python spends 2-3.5 ms of Python and asyncio per window read around a ~1.5-2 ms decode (a random
16-frame training window was slower than the authors' uncompressed .npz files) and ~15 ms of CPU per
episode written around the compression. For the one layout this toolkit makes (FORMAT.md: an episode per
shard, index at the end, inner chunks `bytes -> zstd -> crc32c`, index `bytes -> crc32c`) this module
reads the index and only the inner chunks a window needs with `os.pread`, checking both checksums, and
encodes a whole episode's shard with the same numcodecs zstd that zarr uses, byte for byte what zarr
writes. Anything else (object stores, other codecs, stores made by other tools) is not handled here:
`plan()` returns None and the reader and writer use zarr. Equality with zarr, both ways, is tested
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
    """A checksum mismatch or a cut-short shard (the reader names the episode and array)."""


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
        return os.path.join(self.folder, "c", str(i), *["0"] * (len(self.inner) - 1))

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
        """Write episode i's shard atomically (a temporary file renamed over it, as zarr's LocalStore does)."""
        path = self.path(i)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb") as f:
                f.writelines(self.encode(episode, pool))
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


def plan(folder: str, arr) -> ShardPlan | None:
    """A ShardPlan for zarr array `arr` stored at local `folder`, or None unless it has exactly our layout:
    one shard per episode along axis 0 holding the whole rest of the array, index at the end, inner chunks
    split along time only, `bytes(little) -> zstd -> crc32c` inside, `bytes(little) -> crc32c` index."""
    codecs = arr.metadata.codecs if hasattr(arr.metadata, "codecs") else ()
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sh = codecs[0]
    inner_ok = [type(c) for c in sh.codecs] == [BytesCodec, ZstdCodec, Crc32cCodec]
    index_ok = [type(c) for c in sh.index_codecs] == [BytesCodec, Crc32cCodec]
    little = all(getattr(c.endian, "value", c.endian) in (None, "little")   # None: 1-byte types
                 for c in (*sh.codecs, *sh.index_codecs) if isinstance(c, BytesCodec))
    shard, inner = tuple(arr.shards), tuple(sh.chunk_shape)
    if not (inner_ok and index_ok and little and sh.index_location.value == "end"
            and arr.ndim >= 2 and shard[0] == inner[0] == 1 and shard[2:] == inner[2:] == tuple(arr.shape[2:])
            and shard[1] >= arr.shape[1] and shard[1] % inner[1] == 0):
        return None
    if getattr(sh.codecs[1], "checksum", False):   # zstd's own content checksum: let zarr handle it
        return None
    per_shard = tuple(s // c for s, c in zip(shard, inner))
    dtype = np.dtype(arr.dtype).newbyteorder("<")
    return ShardPlan(folder, inner, per_shard, dtype, arr.fill_value, int(sh.codecs[1].level))
