"""Headless CPU renderer of the embedded Minecraft world: a numba voxel DDA raycaster.

Each pixel's ray walks the block grid of a `LocalView` (Amanatides-Woo), samples a procedural 16x16
pixel-art texture at the face it hits (nearest texel, as Minecraft does), applies Minecraft's per-face
shading, composites translucent swamp water, alpha-cutout leaves/vines/lily pads and cross-shaped
plants, and blends into Minecraft-like distance fog and a sky with blocky clouds.
Deterministic: no fastmath, no threads, integer hashing only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from . import world as W

# Render kinds per block id.
K_AIR, K_OPAQUE, K_WATER, K_CUTOUT, K_LILY, K_CROSS = range(6)
KIND = np.zeros(W.N_BLOCKS, np.int64)
for _b in (W.GRASS, W.DIRT, W.SAND, W.CLAY, W.STONE, W.LOG):
    KIND[_b] = K_OPAQUE
KIND[W.WATER] = K_WATER
KIND[W.LEAVES] = K_CUTOUT
KIND[W.VINE] = K_CUTOUT
KIND[W.LILY] = K_LILY
KIND[W.TALLGRASS] = K_CROSS
KIND[W.ORCHID] = K_CROSS

# Blocks that darken neighbouring faces (Minecraft's smooth lighting / ambient occlusion).
OCCLUDES = np.zeros(W.N_BLOCKS, np.int64)
for _b in (W.GRASS, W.DIRT, W.SAND, W.CLAY, W.STONE, W.LOG, W.LEAVES):
    OCCLUDES[_b] = 1

# Texture tiles.
(T_GRASS_TOP, T_GRASS_SIDE, T_DIRT, T_SAND, T_CLAY, T_STONE, T_WATER, T_LOG_SIDE, T_LOG_TOP, T_LEAVES,
 T_LILY, T_VINE, T_TALLGRASS, T_ORCHID) = range(14)

# tile of (block, face): face 0 = top, 1 = bottom, 2 = side
TILE = np.zeros((W.N_BLOCKS, 3), np.int64)
TILE[W.GRASS] = (T_GRASS_TOP, T_DIRT, T_GRASS_SIDE)
TILE[W.DIRT] = T_DIRT
TILE[W.SAND] = T_SAND
TILE[W.CLAY] = T_CLAY
TILE[W.STONE] = T_STONE
TILE[W.WATER] = T_WATER
TILE[W.LOG] = (T_LOG_TOP, T_LOG_TOP, T_LOG_SIDE)
TILE[W.LEAVES] = T_LEAVES
TILE[W.LILY] = T_LILY
TILE[W.VINE] = T_VINE
TILE[W.TALLGRASS] = T_TALLGRASS
TILE[W.ORCHID] = T_ORCHID

# Minecraft's colours for the swamp biome (grass/foliage colour 0x6A7039, lily pad 0x208030).
SWAMP_GRASS = np.array([106, 112, 57], np.float64)
SWAMP_FOLIAGE = np.array([96, 104, 50], np.float64)
LILY_GREEN = np.array([32, 128, 48], np.float64)


@dataclass(frozen=True)
class RenderConfig:
    """Camera and atmosphere; defaults are Minecraft's (FOV 70 degrees vertical, eye 1.62 above feet)."""
    height: int = 128
    width: int = 128
    fov_deg: float = 70.0
    view_distance: float = 64.0       # fog reaches full strength here (4 chunks)
    fog_start: float = 40.0
    sky: tuple = (123, 164, 255)      # swamp sky colour at noon
    fog: tuple = (192, 216, 255)      # horizon / fog colour at noon
    cloud_height: float = 128.0
    water_alpha: float = 0.62


def _noise(g: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return g.uniform(lo, hi, (16, 16))


def _rgba(base, shade: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    rgb = np.clip(np.asarray(base, np.float64)[None, None, :] * shade[..., None], 0, 255)
    a = np.full((16, 16, 1), 255.0) if alpha is None else alpha[..., None] * 255.0
    return np.concatenate([rgb, a], -1).astype(np.uint8)


def make_textures(seed: int = 1337) -> np.ndarray:
    """Procedural 16x16 RGBA tiles (fixed palette + fixed seed: every world shares one texture pack,
    like Minecraft). Returns uint8 (n_tiles, 16, 16, 4)."""
    g = np.random.default_rng(seed)
    tiles = np.zeros((14, 16, 16, 4), np.uint8)

    tiles[T_GRASS_TOP] = _rgba(SWAMP_GRASS, _noise(g, 0.78, 1.12))
    dirt_shade = _noise(g, 0.8, 1.1) * np.where(g.random((16, 16)) < 0.12, 0.72, 1.0)
    tiles[T_DIRT] = _rgba((134, 96, 67), dirt_shade)
    side = tiles[T_DIRT].copy()
    fringe = g.integers(2, 6, 16)                       # ragged grass edge, per texel column
    for u in range(16):
        side[:fringe[u], u, :3] = np.clip(SWAMP_GRASS * g.uniform(0.78, 1.1, fringe[u])[:, None], 0, 255)
    tiles[T_GRASS_SIDE] = side
    tiles[T_SAND] = _rgba((219, 207, 163), _noise(g, 0.88, 1.06))
    tiles[T_CLAY] = _rgba((160, 166, 179), _noise(g, 0.9, 1.05))
    tiles[T_STONE] = _rgba((125, 125, 125), _noise(g, 0.75, 1.15))

    v = np.arange(16)[:, None]
    u = np.arange(16)[None, :]
    ripple = 0.9 + 0.12 * np.sin((u * 0.9 + v * 0.45) + g.uniform(0, 6.3)) * np.sin(v * 0.7)
    tiles[T_WATER] = _rgba((58, 84, 62), ripple * _noise(g, 0.95, 1.05))

    bark = np.repeat(g.uniform(0.75, 1.1, 16)[None, :], 16, 0) * _noise(g, 0.9, 1.05)
    tiles[T_LOG_SIDE] = _rgba((104, 83, 50), bark)
    r = np.sqrt((u - 7.5) ** 2 + (v - 7.5) ** 2)
    rings = np.where(r > 6.6, 0.62, 0.92 + 0.1 * np.sin(r * 2.2))
    tiles[T_LOG_TOP] = _rgba((176, 142, 86), rings * _noise(g, 0.95, 1.05))

    leaf_alpha = (g.random((16, 16)) > 0.22).astype(np.float64)
    tiles[T_LEAVES] = _rgba(SWAMP_FOLIAGE, _noise(g, 0.6, 1.1), leaf_alpha)

    ang = np.arctan2(v - 7.5, u - 7.5)
    lily_alpha = ((r < 7.2) & ~((ang > 1.2) & (ang < 1.75))).astype(np.float64)
    tiles[T_LILY] = _rgba(LILY_GREEN, (0.85 + 0.1 * np.cos(ang * 5)) * _noise(g, 0.9, 1.08), lily_alpha)

    vine_alpha = np.zeros((16, 16))
    for strand in range(6):
        x = int(g.integers(0, 16))
        for row in range(int(g.integers(8, 17))):
            vine_alpha[row, x] = 1.0
            x = int(np.clip(x + g.integers(-1, 2), 0, 15))
    tiles[T_VINE] = _rgba(SWAMP_FOLIAGE * 0.9, _noise(g, 0.7, 1.1), vine_alpha)

    grass_alpha = np.zeros((16, 16))
    for blade in range(9):
        x = float(g.uniform(1, 15))
        lean = float(g.uniform(-0.25, 0.25))
        for row in range(15, 15 - int(g.integers(6, 15)), -1):
            grass_alpha[row, int(np.clip(round(x), 0, 15))] = 1.0
            x += lean
    tiles[T_TALLGRASS] = _rgba(SWAMP_GRASS * 1.05, _noise(g, 0.8, 1.1), grass_alpha)

    orchid = np.zeros((16, 16, 4))
    orchid[6:16, 7:9] = (60, 120, 40, 255)                           # stem
    petals = ((u - 7.5) ** 2 + (v - 4.5) ** 2) < 12
    orchid[petals] = (42, 160, 230, 255)
    orchid[(np.abs(u - 7.5) < 1.2) & (np.abs(v - 4.5) < 1.2)] = (200, 220, 90, 255)
    tiles[T_ORCHID] = orchid.astype(np.uint8)
    return tiles


TEXTURES = make_textures()


@njit(cache=True)
def _cloud(seed, x, z):
    """Minecraft-style blocky cloud mask: 12x12-block cells from a thresholded noise field."""
    cx = np.int64(np.floor(x / 12.0))
    cz = np.int64(np.floor(z / 12.0))
    n = W.fbm(seed, cx / 6.0, cz / 6.0, 90, 2)
    return n > 0.58


@njit(cache=True)
def _texel(tex, tile, u, v):
    iu = np.int64(u * 16.0)
    iv = np.int64((1.0 - v) * 16.0)
    if iu < 0:
        iu = 0
    elif iu > 15:
        iu = 15
    if iv < 0:
        iv = 0
    elif iv > 15:
        iv = 15
    return tex[tile, iv, iu]


@njit(cache=True)
def _face_uv(axis, step, hx, hy, hz, ix, iy, iz):
    """(u, v, face class, shade) of the face the ray entered a cell through."""
    if axis == 1:
        u = hx - ix
        v = hz - iz
        if step < 0:
            return u, v, 0, 1.0          # top face
        return u, v, 1, 0.5              # bottom face
    if axis == 0:
        return hz - iz, hy - iy, 2, 0.6   # east/west faces
    return hx - ix, hy - iy, 2, 0.8       # north/south faces


@njit(cache=True)
def _occ(blocks, occludes, axis, ax, ay, az, a, b):
    """Occlusion of the neighbour offset by (a, b) along the face's (u, v) directions:
    (z, y) for x faces, (x, z) for y faces, (x, y) for z faces, as in _face_uv."""
    if axis == 0:
        x, y, z = ax, ay + b, az + a
    elif axis == 1:
        x, y, z = ax + a, ay, az + b
    else:
        x, y, z = ax + a, ay + b, az
    if x < 0 or y < 0 or z < 0 or x >= blocks.shape[0] or y >= blocks.shape[1] or z >= blocks.shape[2]:
        return 0
    return occludes[blocks[x, y, z]]


@njit(cache=True)
def _corner(a, b, c):
    # Minecraft's vertex AO: two occluding sides hide the corner completely
    return 3 if a == 1 and b == 1 else a + b + c


@njit(cache=True)
def _ambient_occlusion(blocks, occludes, ax, ay, az, axis, u, v):
    """Brightness factor at (u, v) of the face whose open side is cell (ax, ay, az): each face corner
    is darkened by its occluding neighbours, bilinearly blended across the face."""
    left = _occ(blocks, occludes, axis, ax, ay, az, -1, 0)
    right = _occ(blocks, occludes, axis, ax, ay, az, 1, 0)
    down = _occ(blocks, occludes, axis, ax, ay, az, 0, -1)
    up = _occ(blocks, occludes, axis, ax, ay, az, 0, 1)
    c00 = _corner(left, down, _occ(blocks, occludes, axis, ax, ay, az, -1, -1))
    c10 = _corner(right, down, _occ(blocks, occludes, axis, ax, ay, az, 1, -1))
    c01 = _corner(left, up, _occ(blocks, occludes, axis, ax, ay, az, -1, 1))
    c11 = _corner(right, up, _occ(blocks, occludes, axis, ax, ay, az, 1, 1))
    level = (c00 * (1 - u) + c10 * u) * (1 - v) + (c01 * (1 - u) + c11 * u) * v
    return 1.0 - level * (0.5 / 3.0)


@njit(cache=True, inline="always")   # inlined at numba level: no call in the pixel loop
def _hit_lily(tex, tile, blk, t, t_exit, px, py, pz, dx, dy, dz, ix, iy, iz):
    """(hit, distance, r, g, b) of a lily pad: a thin plane just above the cell floor."""
    if dy < 0:
        tp = (iy + 0.015625 - py) / dy
        if tp >= t and tp <= t_exit:
            c = _texel(tex, tile[blk, 0], px + tp * dx - ix, pz + tp * dz - iz)
            if c[3] > 127:
                return True, tp, float(c[0]), float(c[1]), float(c[2])
    return False, t, 0.0, 0.0, 0.0


@njit(cache=True, inline="always")   # inlined at numba level: no call in the pixel loop
def _hit_plant_plane(tex, tile, blk, t, t_exit, best, num, den, px, py, dx, dy, ix, iy):
    """(hit, distance, r, g, b) of one diagonal plane of a cross plant, (x - ix) +- (z - iz) = const,
    where the ray meets it at num / den: a hit only if opaque and nearer than `best`."""
    if den != 0:
        tp = num / den
        if tp >= t and tp <= t_exit and tp < best:
            c = _texel(tex, tile[blk, 2], px + tp * dx - ix, py + tp * dy - iy)
            if c[3] > 127:
                return True, tp, c[0] * 0.9, c[1] * 0.9, c[2] * 0.9
    return False, best, 0.0, 0.0, 0.0


@njit(cache=True, inline="always")   # inlined at numba level: no call in the pixel loop
def _hit_cross(tex, tile, blk, t, t_exit, px, py, pz, dx, dy, dz, ix, iy, iz):
    """(hit, distance, r, g, b) of a cross-shaped plant: the nearer of two diagonal planes."""
    hit1, best, r, g, b = _hit_plant_plane(tex, tile, blk, t, t_exit, 1e30, (ix - px) - (iz - pz), dx - dz,
                                           px, py, dx, dy, ix, iy)
    hit2, tp, r2, g2, b2 = _hit_plant_plane(tex, tile, blk, t, t_exit, best, 1.0 + (ix - px) + (iz - pz),
                                            dx + dz, px, py, dx, dy, ix, iy)
    if hit2:
        return True, tp, r2, g2, b2
    if hit1:
        return True, best, r, g, b
    return False, t, 0.0, 0.0, 0.0


@njit(cache=True, inline="always")   # inlined at numba level: no call in the pixel loop
def _sky_colour(dx, dy, dz, ex, ey, ez, sky, fog, cloud_height, cloud_seed):
    """A ray that leaves upwards: fog blended into the sky colour with height, then the clouds."""
    s = min(max(dy * 2.5, 0.0), 1.0)
    r = fog[0] + (sky[0] - fog[0]) * s
    g = fog[1] + (sky[1] - fog[1]) * s
    b = fog[2] + (sky[2] - fog[2]) * s
    if dy > 0.02:
        tc = (cloud_height - ey) / dy
        cxw = ex + tc * dx
        czw = ez + tc * dz
        if _cloud(cloud_seed, cxw, czw):
            dist = np.sqrt((tc * dx) ** 2 + (tc * dz) ** 2)
            a = 0.85 * min(max(1.0 - (dist - 96.0) / 160.0, 0.0), 1.0)
            r += (250.0 - r) * a
            g += (250.0 - g) * a
            b += (250.0 - b) * a
    return r, g, b


@njit(cache=True)
def render_view(blocks, top, ox, oy, oz, ex, ey, ez, yaw_deg, pitch_deg, fov_deg, view_distance, fog_start,
                sky, fog, cloud_height, water_alpha, cloud_seed, tex, tile, kind, occludes, out):
    """Render into out (H, W, 3) uint8 from eye (ex, ey, ez) in world coordinates; blocks[x - ox, y - oy, z - oz],
    empty from layer `top` up.
    Yaw 0 looks along +z, yaw 90 along -x; positive pitch looks down (Minecraft). Per pixel: a voxel walk
    (Amanatides-Woo) to the first surface through water, then sky, water and fog."""
    H = out.shape[0]
    Wd = out.shape[1]
    nx = blocks.shape[0]
    ny = blocks.shape[1]
    nz = blocks.shape[2]
    yaw = np.radians(yaw_deg)
    pitch = np.radians(pitch_deg)
    fx = -np.sin(yaw) * np.cos(pitch)
    fy = -np.sin(pitch)
    fz = np.cos(yaw) * np.cos(pitch)
    rx = -np.cos(yaw)                       # camera right
    ry = 0.0
    rz = -np.sin(yaw)
    ux = ry * fz - rz * fy                  # up = right x forward
    uy = rz * fx - rx * fz
    uz = rx * fy - ry * fx
    th = np.tan(np.radians(fov_deg) * 0.5)
    aspect = Wd / H
    px = ex - ox
    py = ey - oy
    pz = ez - oz
    cx0 = np.int64(np.floor(px))
    cy0 = np.int64(np.floor(py))
    cz0 = np.int64(np.floor(pz))
    fog_span = max(view_distance - fog_start, 1e-6)

    for i in range(H):
        sv = (1.0 - 2.0 * (i + 0.5) / H) * th
        for j in range(Wd):
            su = (2.0 * (j + 0.5) / Wd - 1.0) * th * aspect
            dx = fx + su * rx + sv * ux
            dy = fy + su * ry + sv * uy
            dz = fz + su * rz + sv * uz
            norm = np.sqrt(dx * dx + dy * dy + dz * dz)
            dx /= norm
            dy /= norm
            dz /= norm
            ix = cx0
            iy = cy0
            iz = cz0
            sx = 1 if dx > 0 else -1
            sy = 1 if dy > 0 else -1
            sz = 1 if dz > 0 else -1
            tdx = abs(1.0 / dx) if dx != 0 else 1e30
            tdy = abs(1.0 / dy) if dy != 0 else 1e30
            tdz = abs(1.0 / dz) if dz != 0 else 1e30
            tmx = ((ix + 1 - px) if dx > 0 else (px - ix)) * tdx
            tmy = ((iy + 1 - py) if dy > 0 else (py - iy)) * tdy
            tmz = ((iz + 1 - pz) if dz > 0 else (pz - iz)) * tdz

            r = 0.0
            g = 0.0
            b = 0.0
            hit = False
            t = 0.0
            t_first = -1.0                  # distance of the first surface (fog)
            in_water = False
            wr = 0.0
            wg = 0.0
            wb = 0.0
            t_water = 0.0
            sky_ray = False
            while True:
                if tmx < tmy and tmx < tmz:
                    axis = 0
                    t = tmx
                    ix += sx
                    tmx += tdx
                    step = sx
                elif tmy < tmz:
                    axis = 1
                    t = tmy
                    iy += sy
                    tmy += tdy
                    step = sy
                else:
                    axis = 2
                    t = tmz
                    iz += sz
                    tmz += tdz
                    step = sz
                if t > view_distance:
                    sky_ray = dy > 0
                    break
                if iy >= top and dy >= 0:
                    sky_ray = True
                    break
                if ix < 0 or iz < 0 or ix >= nx or iz >= nz or iy < 0 or iy >= ny:
                    break
                blk = blocks[ix, iy, iz]
                if blk == 0:
                    continue
                k = kind[blk]
                if k == 1:                  # opaque cube
                    u, v, fc, sh = _face_uv(axis, step, px + t * dx, py + t * dy, pz + t * dz, ix, iy, iz)
                    c = _texel(tex, tile[blk, fc], u, v)
                    if axis == 0:
                        sh *= _ambient_occlusion(blocks, occludes, ix - step, iy, iz, 0, u, v)
                    elif axis == 1:
                        sh *= _ambient_occlusion(blocks, occludes, ix, iy - step, iz, 1, u, v)
                    else:
                        sh *= _ambient_occlusion(blocks, occludes, ix, iy, iz - step, 2, u, v)
                    r = c[0] * sh
                    g = c[1] * sh
                    b = c[2] * sh
                    hit = True
                elif k == 2:                # water: remember the surface, keep going to the bed
                    if not in_water:
                        in_water = True
                        u, v, fc, sh = _face_uv(axis, step, px + t * dx, py + t * dy, pz + t * dz, ix, iy, iz)
                        c = _texel(tex, tile[blk, fc], u, v)
                        wr = c[0] * sh
                        wg = c[1] * sh
                        wb = c[2] * sh
                        t_water = t
                        if t_first < 0:
                            t_first = t
                    continue
                elif k == 3:                # alpha-cutout cube (leaves, vines)
                    u, v, fc, sh = _face_uv(axis, step, px + t * dx, py + t * dy, pz + t * dz, ix, iy, iz)
                    c = _texel(tex, tile[blk, fc], u, v)
                    if c[3] > 127:
                        r = c[0] * sh
                        g = c[1] * sh
                        b = c[2] * sh
                        hit = True
                elif k == 4:
                    hit, t, r, g, b = _hit_lily(tex, tile, blk, t, min(tmx, min(tmy, tmz)), px, py, pz, dx, dy, dz,
                                                ix, iy, iz)
                else:
                    hit, t, r, g, b = _hit_cross(tex, tile, blk, t, min(tmx, min(tmy, tmz)), px, py, pz, dx, dy, dz,
                                                 ix, iy, iz)
                if hit:
                    if t_first < 0:
                        t_first = t
                    break

            if not hit:
                if sky_ray:
                    r, g, b = _sky_colour(dx, dy, dz, ex, ey, ez, sky, fog, cloud_height, cloud_seed)
                else:
                    r = fog[0]
                    g = fog[1]
                    b = fog[2]
            if in_water:
                # water thickens with the distance travelled under its surface
                a = min(water_alpha + (t - t_water) * 0.12, 0.95) if hit else 0.95
                r = wr * a + r * (1.0 - a)
                g = wg * a + g * (1.0 - a)
                b = wb * a + b * (1.0 - a)
            if t_first >= 0:
                f = min(max((t_first - fog_start) / fog_span, 0.0), 1.0)
                r += (fog[0] - r) * f
                g += (fog[1] - g) * f
                b += (fog[2] - b) * f
            out[i, j, 0] = np.uint8(min(max(r + 0.5, 0.0), 255.0))
            out[i, j, 1] = np.uint8(min(max(g + 0.5, 0.0), 255.0))
            out[i, j, 2] = np.uint8(min(max(b + 0.5, 0.0), 255.0))
    return out


class Renderer:
    """Renders a LocalView from an eye position; owns the output buffer and the render tables."""

    def __init__(self, cfg: RenderConfig = RenderConfig(), cloud_seed: int = 0):
        self.cfg = cfg
        self.cloud_seed = np.uint64(int(cloud_seed) & 0xFFFFFFFFFFFFFFFF)
        self._sky = np.asarray(cfg.sky, np.float64)
        self._fog = np.asarray(cfg.fog, np.float64)

    def render(self, view: W.LocalView, eye: tuple[float, float, float], yaw_deg: float,
               pitch_deg: float) -> np.ndarray:
        """uint8 (H, W, 3), a fresh array."""
        c = self.cfg
        out = np.empty((c.height, c.width, 3), np.uint8)
        render_view(view.blocks, view.top, view.ox, view.oy, view.oz, float(eye[0]), float(eye[1]), float(eye[2]),
                    float(yaw_deg), float(pitch_deg), c.fov_deg, c.view_distance, c.fog_start,
                    self._sky, self._fog, c.cloud_height, c.water_alpha, self.cloud_seed,
                    TEXTURES, TILE, KIND, OCCLUDES, out)
        return out
