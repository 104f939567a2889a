"""DeepMind Lab's maze textures and skyboxes, as shipped by labmaze, prepared for the raycaster:
mipmap chains packed into one array (GL_LINEAR_MIPMAP_NEAREST-style sampling) and cube-map sky faces.

Texture lists are DMLab's default text-maze theme (text_maze_exporter.cc): 20 wall and 20 floor
textures over styles 01-05; texture group 0 (DMLab's '.' variation) always takes the first of each.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

WALLS = [(s, c) for s, cs in (("style_01", ("green", "green_bright", "red", "red_bright")),
                              ("style_02", ("yellow", "yellow_bright", "blue", "blue_bright")),
                              ("style_03", ("orange", "orange_bright", "gray", "gray_bright")),
                              ("style_04", ("green", "green_bright", "red", "red_bright")),
                              ("style_05", ("red", "red_bright", "yellow", "yellow_bright"))) for c in cs]
FLOORS = [(s, c) for s, cs in (("style_01", ("orange", "orange_bright", "blue", "blue_bright")),
                               ("style_02", ("blue", "blue_bright", "green", "green_bright")),
                               ("style_03", ("green", "green_bright", "blue", "blue_bright")),
                               ("style_04", ("blue", "blue_bright", "orange", "orange_bright")),
                               ("style_05", ("blue", "blue_bright", "orange", "orange_bright"))) for c in cs]
SKIES = ("sky_01", "sky_02", "sky_03")
# Cube faces in the renderer's order (+x, -x, +y, -y, +z, -z). The four side images join seamlessly
# as lf|ft|rt|bk left to right (checked on the pixels), so facing ft (+x, yaw 0) and turning right
# (toward -y) shows rt.
SKY_FACES = ("ft", "bk", "lf", "rt", "up", "dn")

BASE_SIZE = 256      # finest mip kept: a texel is 0.39 units, finer than a pixel at 64x64 from 16 units away
SKY_SIZE = 128


def assets_dir() -> str:
    import labmaze.assets
    return os.path.dirname(labmaze.assets.__file__)


def _load_rgb(path: str, size: int) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"texture {path} is missing from the labmaze package; reinstall labmaze")
    with Image.open(path) as im:
        if im.mode == "P":      # palette with transparency: PIL wants it expanded via RGBA; alpha is unused
            im = im.convert("RGBA")
        return np.asarray(im.convert("RGB").resize((size, size), Image.BOX), np.uint8)


def _mip_chain(img: np.ndarray) -> list[np.ndarray]:
    """Box-filtered halvings down to 4x4, float32."""
    levels = [img.astype(np.float32)]
    while levels[-1].shape[0] > 4:
        a = levels[-1]
        levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return levels


@dataclass(frozen=True)
class TextureSet:
    """All wall textures then all floor textures, each a packed mip chain of uint8 texels. Wall
    images are stored transposed (column-major): the raycaster walks them down screen columns."""
    texels: np.ndarray     # uint8 (n, sum(size_l^2), 3)
    offsets: np.ndarray    # int64 (L,): start of level l in a chain
    sizes: np.ndarray      # int64 (L,): side of level l
    n_walls: int


@functools.lru_cache(maxsize=1)
def texture_set() -> TextureSet:
    """Loaded once per process (about a second); every episode draws from it."""
    root = assets_dir()
    paths = [os.path.join(root, s, f"wall_{c}_d.png") for s, c in WALLS] + \
            [os.path.join(root, s, f"floor_{c}_d.png") for s, c in FLOORS]
    chains = [_mip_chain(_load_rgb(p, BASE_SIZE)) for p in paths]
    chains = [[lv.transpose(1, 0, 2) for lv in ch] if i < len(WALLS) else ch for i, ch in enumerate(chains)]
    sizes = np.array([lv.shape[0] for lv in chains[0]], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes ** 2)[:-1]]).astype(np.int64)
    texels = np.stack([np.concatenate([lv.reshape(-1, 3) for lv in ch]) for ch in chains])
    texels = np.clip(np.rint(texels), 0, 255).astype(np.uint8)
    return TextureSet(np.ascontiguousarray(texels), offsets, sizes, len(WALLS))


@functools.lru_cache(maxsize=len(SKIES))
def sky_faces(name: str) -> np.ndarray:
    """uint8 (6, SKY_SIZE, SKY_SIZE, 3) in SKY_FACES order, row 0 at the top of each image."""
    if name not in SKIES:
        raise ValueError(f"unknown sky {name!r}: choose one of {SKIES}")
    root = os.path.join(assets_dir(), name)
    return np.stack([_load_rgb(os.path.join(root, f"{f}.png"), SKY_SIZE) for f in SKY_FACES])


# Wall decals. DMLab's text levels put a decal on a share `wall_decal_frequency` = 0.1 of the wall faces
# that border open cells (count round(0.1 * faces), distinct images), a square of 1 builder unit = 32 game
# units at the middle of the face (text_level_exporter.cc GenerateWallDecal; themes.lua placeWallDecals).
# No pip package ships DMLab's decal images (dec_img_style0X_0YY; labmaze has walls, floors and skies
# only), so posters are generated: bold shapes on a coloured ground, drawn fresh for every maze.
DECAL_FREQUENCY = 0.1
DECAL_SIZE = 32.0
DECAL_CENTRE_Z = 50.0
POSTER_TEXELS = 64


@dataclass(frozen=True)
class PosterSet:
    """Posters of one maze: which wall face shows which poster, and the posters' packed mip chains
    (row-major, not transposed)."""
    face: np.ndarray       # int64 (ncx, ncy, 4): poster on wall cell (ix, iy)'s face toward -x, +x, -y, +y, or -1
    texels: np.ndarray     # uint8 (max(n, 1), sum(size_l^2), 3)
    offsets: np.ndarray    # int64 (L,)
    sizes: np.ndarray      # int64 (L,)

    @property
    def count(self) -> int:
        return int((self.face >= 0).sum())

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> "PosterSet":
        sizes = np.array([4], np.int64)
        return cls(np.full((*shape, 4), -1, np.int64), np.zeros((1, 16, 3), np.uint8), np.zeros(1, np.int64), sizes)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    import colorsys
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def poster_image(g: np.random.Generator, size: int = POSTER_TEXELS) -> np.ndarray:
    """float32 (size, size, 3): a ground colour, a frame and 2-4 bold shapes in other hues."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    hue = g.random()
    img = np.empty((size, size, 3), np.float32)
    img[:] = _hsv(hue, g.uniform(0.3, 0.9), g.uniform(0.5, 1.0))
    for _ in range(int(g.integers(2, 5))):
        colour = _hsv(hue + g.uniform(0.2, 0.8), g.uniform(0.6, 1.0), g.uniform(0.3, 1.0))
        cx, cy, r = g.uniform(0.25, 0.75), g.uniform(0.25, 0.75), g.uniform(0.12, 0.3)
        kind = int(g.integers(4))
        if kind == 0:                                          # disc
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
        elif kind == 1:                                        # square
            mask = (abs(xx - cx) < r) & (abs(yy - cy) < r)
        elif kind == 2:                                        # triangle, apex up
            mask = (yy < cy + r) & (yy > cy - r) & (abs(xx - cx) < (yy - (cy - r)) / 2)
        else:                                                  # stripes
            period = g.uniform(0.1, 0.25)
            mask = ((xx * np.cos(cx * 6) + yy * np.sin(cx * 6)) / period) % 1.0 < 0.5
            mask &= (abs(xx - cx) < r + 0.1) & (abs(yy - cy) < r + 0.1)
        img[mask] = colour
    frame = (xx < 0.06) | (xx > 0.94) | (yy < 0.06) | (yy > 0.94)
    img[frame] = _hsv(hue, 0.2, g.choice([0.1, 0.95]))
    return img


def wall_faces(solid: np.ndarray) -> np.ndarray:
    """int (F, 3) of (ix, iy, side) for every wall face bordering an open cell, in index order."""
    faces = []
    nx, ny = solid.shape
    for ix in range(nx):
        for iy in range(ny):
            if not solid[ix, iy]:
                continue
            for side, (ox, oy) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
                jx, jy = ix + ox, iy + oy
                if 0 <= jx < nx and 0 <= jy < ny and not solid[jx, jy]:
                    faces.append((ix, iy, side))
    return np.array(faces, np.int64).reshape(-1, 3)


def poster_set(solid: np.ndarray, g: np.random.Generator, frequency: float = DECAL_FREQUENCY) -> PosterSet:
    """Posters on round(frequency * faces) random wall faces of a maze (bool (ncx, ncy) solid grid)."""
    faces = wall_faces(solid)
    count = int(np.floor(0.5 + frequency * len(faces)))
    if count == 0:
        return PosterSet.empty(solid.shape)
    chosen = faces[g.permutation(len(faces))[:count]]
    face = np.full((*solid.shape, 4), -1, np.int64)
    face[chosen[:, 0], chosen[:, 1], chosen[:, 2]] = np.arange(count)
    chains = [_mip_chain(poster_image(g)) for _ in range(count)]
    sizes = np.array([lv.shape[0] for lv in chains[0]], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes ** 2)[:-1]]).astype(np.int64)
    texels = np.stack([np.concatenate([lv.reshape(-1, 3) for lv in ch]) for ch in chains])
    return PosterSet(face, np.clip(np.rint(texels), 0, 255).astype(np.uint8), offsets, sizes)
