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
