"""Video grids a person can look at: several videos tiled into one GIF or MP4 (chosen by the suffix).
Used by `teco-store preview` and by the samplers."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from cli_common import environment_error

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


LINE_H = 14                     # px per caption line (PIL's default font)
COND_COLOR = (40, 160, 60)      # border while the frames are conditioning (given) frames
PRED_COLOR = (220, 40, 40)      # border once they are predicted


def grid_shape(n: int, rows: int | None = None) -> tuple[int, int]:
    """(rows, cols) that tile() uses for n videos."""
    rows = rows or int(math.ceil(math.sqrt(n)))
    cols = int(math.ceil(n / rows))
    return int(math.ceil(n / cols)), cols


def annotate(frames: np.ndarray, cell: tuple[int, int], pad: int, cols: int, labels: Sequence[str] | None = None,
             boundary: int | None = None, title: str | None = None) -> np.ndarray:
    """Add to a tiled animation (T, H, W, 3) (cells of `cell` = (h, w) px, `pad` px apart, all already at
    display scale): a header naming each column (`labels`), and when `boundary` is given, the padding
    around every cell drawn green for frames < boundary (conditioning) and red from it on (predicted),
    with a caption saying which. Returns a new, taller array."""
    from PIL import Image, ImageDraw
    t_len, H, W, _ = frames.shape
    if boundary is not None:
        # the padding is everything outside the cells: colour it per frame
        inside = np.zeros((H, W), bool)
        ch, cw = cell
        for y in range(pad, H - ch + 1, ch + pad):
            for x in range(pad, W - cw + 1, cw + pad):
                inside[y:y + ch, x:x + cw] = True
        frames = frames.copy()
        for t in range(t_len):
            frames[t][~inside] = COND_COLOR if t < boundary else PRED_COLOR
    lines = (1 if labels else 0) + (1 if boundary is not None or title else 0)
    if not lines:
        return frames
    head = lines * LINE_H + 4
    out = np.full((t_len, H + head, W, 3), 255, np.uint8)
    out[:, head:] = frames
    base = Image.new("RGB", (W, head), "white")
    d = ImageDraw.Draw(base)
    if labels:
        for c, text in enumerate(labels[:cols]):
            x0 = pad + c * (cell[1] + pad)
            w = d.textlength(text)
            d.text((x0 + max(0, (cell[1] - w) / 2), 2), text, fill="black")
    base = np.asarray(base)
    for t in range(t_len):
        img = Image.fromarray(base.copy())
        if boundary is not None or title:
            d = ImageDraw.Draw(img)
            y = 2 + (LINE_H if labels else 0)
            parts = [title] if title else []
            if boundary is not None:
                state = "conditioning (given)" if t < boundary else f"predicted, +{t - boundary + 1}"
                parts.append(f"frame {t + 1}/{t_len}: {state}")
            d.text((pad, y), "   ".join(parts),
                   fill=(COND_COLOR if boundary is None or t < boundary else PRED_COLOR) if boundary is not None
                   else "black")
        out[t, :head] = np.asarray(img)
    return out


def label_cells(frames: np.ndarray, cell: tuple[int, int], pad: int, cols: int, labels: Sequence[str],
                top: int = 0) -> np.ndarray:
    """A white strip with a caption above every grid row of a tiled animation (T, H, W, 3), naming each
    cell (`labels` in tile()'s row-by-row order); the grid starts `top` px down. Returns a taller array."""
    from PIL import Image, ImageDraw
    t_len, H, W, _ = frames.shape
    ch, cw = cell
    rows = -(-len(labels) // cols)
    parts, y0 = [], 0
    for r in range(rows):
        y = top + pad + r * (ch + pad)
        strip = Image.new("RGB", (W, LINE_H), "white")
        d = ImageDraw.Draw(strip)
        for c, text in enumerate(labels[r * cols:(r + 1) * cols]):
            x0 = pad + c * (cw + pad)
            d.text((x0 + max(0, (cw - d.textlength(text)) / 2), 1), text, fill="black")
        parts += [frames[:, y0:y], np.broadcast_to(np.asarray(strip), (t_len, LINE_H, W, 3))]
        y0 = y
    return np.concatenate(parts + [frames[:, y0:]], axis=1)


def check_video_path(path) -> str:
    """What write_grid requires of `path` (a .gif/.mp4 name in an existing folder, not a folder), for callers
    that check it before the work that makes the video. -> its suffix."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write video '{path}': use a {' or '.join(FORMATS)} file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path}: folder {parent} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"cannot write {path}: it is a folder")
    return suffix


MAX_GRID_BYTES = 1 << 30   # an animation larger than this is a mistake (e.g. --scale 100), not a preview


def write_grid(path, videos, rows: int | None = None, fps: float = 10.0, pad: int = 2, scale: int = 1,
               labels: Sequence[str] | None = None, boundary: int | None = None, title: str | None = None,
               cell_labels: Sequence[str] | None = None) -> str:
    """Tile `videos` (uint8 (N, T, H, W, 3), array or list) into one animation at `path` (.gif or .mp4),
    each pixel repeated `scale` times (64x64 frames are small on a screen). Optional (annotate()):
    `labels` names the columns, `boundary` = the first predicted frame marks conditioning vs predicted
    frames with green / red cell borders and a caption, `title` a caption line; `cell_labels` names
    every cell (label_cells())."""
    path = os.fspath(path)
    suffix = check_video_path(path)
    parent = os.path.dirname(os.path.abspath(path))
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    frames = tile(videos, rows, pad)
    if frames.nbytes * scale ** 2 > MAX_GRID_BYTES:
        raise ValueError(f"the animation would take {frames.nbytes * scale ** 2 / 2**30:.1f} GiB of memory (limit "
                         f"{MAX_GRID_BYTES / 2**30:.0f} GiB): show fewer videos or frames, or a smaller scale")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    _, cols = grid_shape(len(videos), rows)
    cell = (np.shape(videos[0])[1] * scale, np.shape(videos[0])[2] * scale)
    grid_h = frames.shape[1]
    if labels is not None or boundary is not None or title:
        frames = annotate(frames, cell, pad * scale, cols, labels, boundary, title)
    if cell_labels is not None:      # below annotate()'s header
        frames = label_cells(frames, cell, pad * scale, cols, cell_labels, top=frames.shape[1] - grid_h)
    # written beside it, then renamed: a failed or interrupted write leaves no half animation under `path`
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.partial{suffix}")
    try:
        open(tmp, "wb").close()   # fails here, in one line, where imageio and ffmpeg would fail noisily
        if suffix == ".gif":
            import imageio.v3 as iio
            iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            import imageio.v2 as iio2
            with iio2.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                 macro_block_size=16) as w:
                for f in _pad_to(frames, 16, 255):
                    w.append_data(f)
        os.replace(tmp, path)
    except OSError as e:   # also ffmpeg's pipe breaking when it cannot write
        if os.path.exists(tmp):
            os.remove(tmp)
        if environment_error(e) is not None:
            raise type(e)(e.errno, e.strerror, path)   # full disk, read-only...: every command's message, on `path`
        raise ValueError(f"cannot write {path}: {e.strerror or str(e).split(' FFMPEG COMMAND')[0]}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
