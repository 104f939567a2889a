"""Video grids a person can look at: GIF or MP4 chosen by the file suffix."""
from __future__ import annotations

import os

import numpy as np


def tile(videos: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 (N, T, H, W, 3) -> (T, rows*(H+pad)-pad, cols*(W+pad)-pad, 3), white gutters."""
    videos = np.asarray(videos)
    n, t, h, w, _ = videos.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((t, rows * (h + pad) - pad, cols * (w + pad) - pad, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        out[:, r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = videos[k]
    return out


def write_video(path: str, frames: np.ndarray, fps: int = 15, scale: int = 1) -> str:
    """Write uint8 (T, H, W, 3) frames to .gif or .mp4 (nearest-neighbour upscaled by `scale`)."""
    import imageio.v3 as iio

    ext = os.path.splitext(path)[1].lower()
    if ext not in (".gif", ".mp4"):
        raise ValueError(f"{path}: output must end in .gif or .mp4")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"folder {parent} does not exist")
    frames = np.asarray(frames, np.uint8)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    if ext == ".mp4":   # yuv420p wants even sides
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        iio.imwrite(path, frames, fps=fps, codec="libx264", macro_block_size=1)
    else:
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    return path


def write_grid(path: str, videos: np.ndarray, cols: int | None = None, fps: int = 15, scale: int = 1) -> str:
    return write_video(path, tile(videos, cols), fps=fps, scale=scale)
