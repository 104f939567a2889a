"""Video grids a person can look at: several videos tiled into one GIF or MP4 (chosen by the suffix).
Used by `teco-store preview` and by the samplers."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

FORMATS = (".gif", ".mp4")


def tile(videos: np.ndarray | Sequence[np.ndarray], rows: int | None = None, pad: int = 2,
         pad_value: int = 255) -> np.ndarray:
    """videos uint8 (N, T, H, W, 3) -> (T, rows*(H+pad)+pad, cols*(W+pad)+pad, 3), filled row by row;
    empty cells stay pad_value."""
    v = np.stack([np.asarray(x) for x in videos]) if not isinstance(videos, np.ndarray) else videos
    if v.ndim != 5 or v.shape[-1] != 3 or v.dtype != np.uint8:
        raise ValueError(f"videos must be uint8 (N, T, H, W, 3), got {v.dtype}{v.shape}")
    n, t, h, w, _ = v.shape
    if n == 0:
        raise ValueError("no videos to write")
    rows = rows or int(math.ceil(math.sqrt(n)))
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    cols = int(math.ceil(n / rows))
    rows = int(math.ceil(n / cols))
    out = np.full((t, rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[:, y:y + h, x:x + w] = v[k]
    return out


def _pad_to(frames: np.ndarray, multiple: int, value: int) -> np.ndarray:
    """Pad (T, H, W, 3) on the bottom/right so H and W divide by `multiple` (video codecs want 16)."""
    t, h, w, _ = frames.shape
    H, W = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (H, W) == (h, w):
        return frames
    out = np.full((t, H, W, 3), value, np.uint8)
    out[:, :h, :w] = frames
    return out


def write_grid(path, videos, rows: int | None = None, fps: float = 10.0, pad: int = 2, scale: int = 1) -> str:
    """Tile `videos` (uint8 (N, T, H, W, 3), array or list) into one animation at `path` (.gif or .mp4),
    each pixel repeated `scale` times (64x64 frames are small on a screen)."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write video '{path}': use a {' or '.join(FORMATS)} file name")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path}: folder {parent} does not exist")
    frames = tile(videos, rows, pad)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    if suffix == ".gif":
        import imageio.v3 as iio
        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    else:
        import imageio.v2 as iio2
        with iio2.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                             macro_block_size=16) as w:
            for f in _pad_to(frames, 16, 255):
                w.append_data(f)
    return path
