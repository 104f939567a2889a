"""The embedded Minecraft world: swamp terrain as a pure function of (world seed, sea level, block coordinates).

Blocks live in 16x16 chunk columns spanning world heights [Y0, Y0 + HEIGHT); chunks are generated on
demand (numba) and cached, and `LocalView` assembles the chunks around the player into one array for
physics and rendering. Coordinates follow Minecraft: x east, y up, z south.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numba import njit

# Block ids (uint8). The renderer and the physics look blocks up in the per-id tables below.
AIR, GRASS, DIRT, SAND, CLAY, STONE, WATER, LOG, LEAVES, LILY, VINE, TALLGRASS, ORCHID = range(13)
BLOCK_NAMES = ["air", "grass", "dirt", "sand", "clay", "stone", "water", "log", "leaves", "lily_pad",
               "vine", "tall_grass", "blue_orchid"]
N_BLOCKS = len(BLOCK_NAMES)

# Collision height of each block's box (0: walk through). Lily pads are Minecraft's 0.09375 slab.
SOLID_HEIGHT = np.array([0, 1, 1, 1, 1, 1, 0, 1, 1, 0.09375, 0, 0, 0], np.float64)

CHUNK = 16
Y0 = 48                 # lowest stored world y; everything below is never visible
HEIGHT = 32             # stored layers: world y in [48, 80)
SEA_LEVEL = 1           # the collector's generator option "seaLevel": no sea water anywhere near the surface
VANILLA_SEA_LEVEL = 63  # Minecraft's default: water fills every column up to y = 62 (the old, flooded look)
PUDDLE_Y = 62           # BiomeSwamp's hard-coded y: a top block here becomes water, whatever the sea level
LILY_NOISE = 0.12       # ... with a lily pad on it where the puddle noise is below this
TREE_CELL = 8           # one candidate swamp oak per 8x8 columns
TREE_REACH = 4          # canopy radius 3 + 1: trees this far outside a chunk can still touch it

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_KX = np.uint64(0x9E3779B97F4A7C15)
_KZ = np.uint64(0xC2B2AE3D27D4EB4F)
_KS = np.uint64(0x165667B19E3779F9)
_MASK32 = 0xFFFFFFFF


@njit(cache=True)
def _mix(h):
    # splitmix64 finaliser: integer-only, so identical on every machine
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


@njit(cache=True)
def hash3(seed, x, z, salt):
    """uint64 hash of a world seed, two integer coordinates and a salt naming the random quantity."""
    h = _mix(np.uint64(seed) ^ (np.uint64(salt) * _KS))
    h = _mix(h ^ (np.uint64(x & _MASK32) * _KX))
    return _mix(h ^ (np.uint64(z & _MASK32) * _KZ))


@njit(cache=True)
def unit3(seed, x, z, salt):
    """Float in [0, 1) from hash3."""
    return float(hash3(seed, x, z, salt) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def value_noise(seed, x, z, salt):
    """Smoothly interpolated lattice noise in [0, 1)."""
    x0 = np.floor(x)
    z0 = np.floor(z)
    fx = x - x0
    fz = z - z0
    ix = np.int64(x0)
    iz = np.int64(z0)
    sx = fx * fx * (3.0 - 2.0 * fx)
    sz = fz * fz * (3.0 - 2.0 * fz)
    a = unit3(seed, ix, iz, salt)
    b = unit3(seed, ix + 1, iz, salt)
    c = unit3(seed, ix, iz + 1, salt)
    d = unit3(seed, ix + 1, iz + 1, salt)
    return (a + (b - a) * sx) + ((c + (d - c) * sx) - (a + (b - a) * sx)) * sz


@njit(cache=True)
def fbm(seed, x, z, salt, octaves):
    total = 0.0
    amp = 1.0
    norm = 0.0
    for o in range(octaves):
        total += amp * value_noise(seed, x, z, salt + o)
        norm += amp
        amp *= 0.5
        x *= 2.0
        z *= 2.0
    return total / norm


@njit(cache=True)
def column_height(seed, x, z):
    """World y of the top terrain block of column (x, z), before any water: a flat swamp in 61..65."""
    n = fbm(seed, x / 26.0, z / 26.0, 10, 3)
    h = 62 + np.int64(np.floor(n * 6.0 - 2.6))
    return max(61, min(h, 65))


@njit(cache=True)
def puddle_noise(seed, x, z):
    """Stands in for BiomeSwamp's grass-colour noise sampled at (x/4, z/4): a value in (-1, 1)."""
    return 2.0 * value_noise(seed, x * 0.25, z * 0.25, 45) - 1.0


@njit(cache=True)
def is_puddle(seed, sea_level, x, z):
    """BiomeSwamp.genTerrainBlocks: a column whose top block is at y = 62 and not already sea water
    turns that block into water where the noise is positive."""
    h = column_height(seed, x, z)
    return h == PUDDLE_Y and h >= sea_level - 1 and puddle_noise(seed, x, z) > 0.0


@njit(cache=True)
def _fill_columns(seed, sea_level, x0, z0, out):
    """Terrain, water, surface plants of the 16x16 columns starting at (x0, z0); out is (16, HEIGHT, 16).
    Sea water fills air below `sea_level` (none with the collector's sea level 1); the swamp's puddles
    at y = 62 come on top of that at any sea level."""
    for lx in range(CHUNK):
        for lz in range(CHUNK):
            x = x0 + lx
            z = z0 + lz
            h = column_height(seed, x, z)
            flooded = h < sea_level - 1
            for y in range(Y0, h + 1):
                ly = y - Y0
                if y <= h - 4:
                    out[lx, ly, lz] = STONE
                elif y < h:
                    out[lx, ly, lz] = DIRT
                elif not flooded:
                    out[lx, ly, lz] = GRASS
                else:
                    bed = fbm(seed, x / 7.0, z / 7.0, 30, 2)
                    out[lx, ly, lz] = CLAY if bed > 0.62 else (SAND if bed < 0.3 else DIRT)
            if flooded:
                for y in range(h + 1, min(sea_level, Y0 + HEIGHT)):
                    out[lx, y - Y0, lz] = WATER
                if sea_level - Y0 < HEIGHT and unit3(seed, x, z, 40) < 0.07:
                    out[lx, sea_level - Y0, lz] = LILY
            elif is_puddle(seed, sea_level, x, z):
                out[lx, h - Y0, lz] = WATER           # one block deep, on grass
                out[lx, h - 1 - Y0, lz] = GRASS
                if puddle_noise(seed, x, z) < LILY_NOISE:
                    out[lx, h + 1 - Y0, lz] = LILY
            else:
                r = unit3(seed, x, z, 41)
                if r < 0.012:
                    out[lx, h + 1 - Y0, lz] = ORCHID
                elif r < 0.14:
                    out[lx, h + 1 - Y0, lz] = TALLGRASS


@njit(cache=True)
def _put(out, x0, z0, x, y, z, block, only_air):
    lx = x - x0
    lz = z - z0
    ly = y - Y0
    if lx < 0 or lx >= CHUNK or lz < 0 or lz >= CHUNK or ly < 0 or ly >= HEIGHT:
        return
    if only_air and out[lx, ly, lz] != AIR and out[lx, ly, lz] != TALLGRASS and out[lx, ly, lz] != ORCHID:
        return
    out[lx, ly, lz] = block


@njit(cache=True)
def _get(out, x0, z0, x, y, z):
    lx = x - x0
    lz = z - z0
    ly = y - Y0
    if lx < 0 or lx >= CHUNK or lz < 0 or lz >= CHUNK or ly < 0 or ly >= HEIGHT:
        return AIR
    return out[lx, ly, lz]


@njit(cache=True)
def tree_at(seed, sea_level, gx, gz):
    """Swamp oak of tree cell (gx, gz): (exists, trunk x, trunk z, base y, trunk height). As the game's
    swamp oak, a trunk on a puddle starts in the water, on the ground below it."""
    if unit3(seed, gx, gz, 50) >= 0.55:
        return False, 0, 0, 0, 0
    tx = gx * TREE_CELL + np.int64(unit3(seed, gx, gz, 51) * TREE_CELL)
    tz = gz * TREE_CELL + np.int64(unit3(seed, gx, gz, 52) * TREE_CELL)
    h = column_height(seed, tx, tz)
    if is_puddle(seed, sea_level, tx, tz):
        h -= 1
    height = 5 + np.int64(unit3(seed, gx, gz, 53) * 4.0)
    return True, tx, tz, h + 1, height


@njit(cache=True)
def _stamp_trees(seed, sea_level, x0, z0, out):
    """Every tree that reaches into the chunk, in global cell order so overlaps resolve the same way
    whichever chunk is generated first."""
    g0x = (x0 - TREE_REACH) // TREE_CELL
    g1x = (x0 + CHUNK + TREE_REACH) // TREE_CELL
    g0z = (z0 - TREE_REACH) // TREE_CELL
    g1z = (z0 + CHUNK + TREE_REACH) // TREE_CELL
    for gx in range(g0x, g1x + 1):
        for gz in range(g0z, g1z + 1):
            ok, tx, tz, base, height = tree_at(seed, sea_level, gx, gz)
            if not ok:
                continue
            top = base + height          # Minecraft's WorldGenSwamp: logs base..top-1, leaves top-3..top
            # leaves: radius 3 for the lower two layers, 2 for the upper two; corners thinned at random
            for y in range(top - 3, top + 1):
                k = y - top
                r = 3 if k <= -2 else 2
                for dx in range(-r, r + 1):
                    for dz in range(-r, r + 1):
                        if abs(dx) == r and abs(dz) == r:
                            if k == 0 or unit3(seed, tx + dx, tz + dz, 60 + y) < 0.5:
                                continue
                        _put(out, x0, z0, tx + dx, y, tz + dz, LEAVES, True)
            for y in range(base, top):
                _put(out, x0, z0, tx, y, tz, LOG, False)
            # vines hang from the rim of the lowest leaf layer
            y = top - 3
            for dx in range(-3, 4):
                for dz in range(-3, 4):
                    if abs(dx) != 3 and abs(dz) != 3:
                        continue
                    if abs(dx) == 3 and abs(dz) == 3:
                        continue
                    if unit3(seed, tx + dx, tz + dz, 70) >= 0.4:
                        continue
                    length = 1 + np.int64(unit3(seed, tx + dx, tz + dz, 71) * 4.0)
                    for vy in range(y - 1, y - 1 - length, -1):
                        b = _get(out, x0, z0, tx + dx, vy, tz + dz)
                        if b != AIR and b != VINE:
                            break
                        _put(out, x0, z0, tx + dx, vy, tz + dz, VINE, True)


@njit(cache=True)
def generate_chunk(seed, cx, cz, sea_level=SEA_LEVEL):
    """Blocks of chunk (cx, cz): uint8 (16, HEIGHT, 16) indexed [x, y - Y0, z]."""
    out = np.zeros((CHUNK, HEIGHT, CHUNK), np.uint8)
    _fill_columns(seed, sea_level, cx * CHUNK, cz * CHUNK, out)
    _stamp_trees(seed, sea_level, cx * CHUNK, cz * CHUNK, out)
    return out


def check_sea_level(sea_level: int) -> int:
    """Minecraft's seaLevel range is 1..255; the embedded world stores y < Y0 + HEIGHT only."""
    if not 1 <= int(sea_level) <= Y0 + HEIGHT - 1:
        raise ValueError(f"the embedded world supports sea levels 1..{Y0 + HEIGHT - 1}, got {sea_level}")
    return int(sea_level)


class World:
    """Chunk cache of one world seed and sea level."""

    def __init__(self, seed: int, sea_level: int = SEA_LEVEL, max_chunks: int = 1024):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.sea_level = check_sea_level(sea_level)
        self.max_chunks = max_chunks
        self._chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def chunk(self, cx: int, cz: int) -> np.ndarray:
        key = (int(cx), int(cz))
        c = self._chunks.get(key)
        if c is None:
            c = generate_chunk(np.uint64(self.seed), key[0], key[1], self.sea_level)
            self._chunks[key] = c
            if len(self._chunks) > self.max_chunks:
                self._chunks.popitem(last=False)
        else:
            self._chunks.move_to_end(key)
        return c

    def region(self, cx0: int, cz0: int, ncx: int, ncz: int) -> np.ndarray:
        """Chunks [cx0, cx0 + ncx) x [cz0, cz0 + ncz) as one uint8 (16 ncx, HEIGHT, 16 ncz) array."""
        out = np.empty((ncx * CHUNK, HEIGHT, ncz * CHUNK), np.uint8)
        for i in range(ncx):
            for k in range(ncz):
                out[i * CHUNK:(i + 1) * CHUNK, :, k * CHUNK:(k + 1) * CHUNK] = self.chunk(cx0 + i, cz0 + k)
        return out

    def height(self, x: int, z: int) -> int:
        """Top terrain block of column (x, z) before water (a puddle's water replaces this block)."""
        return int(column_height(np.uint64(self.seed), int(x), int(z)))


class LocalView:
    """The blocks around the player as one array, recentred (from the chunk cache) whenever the
    player enters another chunk. `blocks[x - ox, y - oy, z - oz]` is world block (x, y, z)."""

    def __init__(self, world: World, radius_chunks: int):
        self.world, self.radius = world, int(radius_chunks)
        self.center: tuple[int, int] | None = None
        self.blocks = np.zeros((0, HEIGHT, 0), np.uint8)
        self.ox = self.oz = 0
        self.oy = Y0
        self.top = 0

    @classmethod
    def from_array(cls, blocks: np.ndarray, ox: int, oy: int, oz: int) -> "LocalView":
        """A fixed view over a hand-made block array (tests, tools); never recentres."""
        v = cls.__new__(cls)
        v.world, v.radius, v.center = None, 0, None
        v.blocks, v.ox, v.oy, v.oz = np.ascontiguousarray(blocks, np.uint8), int(ox), int(oy), int(oz)
        v.top = v._top()
        return v

    def _top(self) -> int:
        """1 + the highest non-empty layer: rays climbing past it can only reach the sky."""
        layers = np.flatnonzero(self.blocks.any(axis=(0, 2)))
        return int(layers[-1]) + 1 if len(layers) else 0

    def follow(self, x: float, z: float) -> None:
        if self.world is None:
            return
        c = (int(np.floor(x)) // CHUNK, int(np.floor(z)) // CHUNK)
        if c != self.center:
            r = self.radius
            self.blocks = self.world.region(c[0] - r, c[1] - r, 2 * r + 1, 2 * r + 1)
            self.ox, self.oz = (c[0] - r) * CHUNK, (c[1] - r) * CHUNK
            self.top = self._top()
            self.center = c

    def get(self, x: int, y: int, z: int) -> int:
        """Block at integer world coordinates; stone below and air above/outside the stored range."""
        i, j, k = x - self.ox, y - self.oy, z - self.oz
        if j < 0:
            return STONE
        if j >= self.blocks.shape[1] or i < 0 or k < 0 or i >= self.blocks.shape[0] or k >= self.blocks.shape[2]:
            return AIR
        return int(self.blocks[i, j, k])
