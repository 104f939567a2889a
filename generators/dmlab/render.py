"""First-person frames of a DMLab grid maze by exact column raycasting (numba, CPU, deterministic).

With equal-height walls on a flat floor and a level camera, each screen column meets at most one
wall, so a DDA per column plus per-pixel floor casting is exact: the same picture a rasteriser
gives for this geometry. Textures are sampled GL_LINEAR_MIPMAP_NEAREST-style (bilinear in the
nearest mip level, chosen from screen-space derivatives), as ioquake3 does by default. The sky is
a cube map looked up per pixel. Lighting is flat with a fixed darkening of north/south wall faces
(DMLab's lightmaps are not modelled). Posters (DMLab's wall decals) are squares of DECAL_SIZE units
centred on chosen wall faces, drawn over the wall texture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .maze import CELL_SIZE
from .protocol import EYE_Z, FLOOR_Z, FOV_DEG, WALL_HEIGHT, WALL_INSET
from .textures import BASE_SIZE, DECAL_CENTRE_Z, DECAL_SIZE, PosterSet, TextureSet

Y_FACE_SHADE = 0.85


@dataclass
class Camera:
    """Per-resolution tables: view-ray offsets and the (yaw-independent) floor mip levels."""
    u: np.ndarray            # float64 (W,): rightward tangent of each column's centre
    v: np.ndarray            # float64 (H,): upward tangent of each row's centre
    floor_level: np.ndarray  # int64 (H, W): mip level of floor texels (rows below the horizon)

    @classmethod
    def make(cls, height: int, width: int, n_levels: int, fov_deg: float = FOV_DEG) -> "Camera":
        tx = np.tan(np.radians(fov_deg) / 2)
        ty = tx * height / width                    # Quake III: fov_y from fov_x and the aspect ratio
        u = (2 * (np.arange(width) + 0.5) / width - 1) * tx
        v = (1 - 2 * (np.arange(height) + 0.5) / height) * ty
        h = EYE_Z - FLOOR_Z
        with np.errstate(divide="ignore"):
            tf = np.where(v < 0, h / -v, np.inf)[:, None]                  # ray parameter at the floor
            du = tf * (2 * tx / width)                                     # world units per column step
            dv = np.where(v < 0, h / v ** 2, np.inf)[:, None] * np.sqrt(1 + u ** 2)[None] * (2 * ty / height)
        lam = np.log2(np.maximum(np.maximum(du, dv), 1e-9) * (BASE_SIZE / CELL_SIZE))
        level = np.clip(np.floor(lam + 0.5), 0, n_levels - 1).astype(np.int64)
        return cls(u, v, level)


@njit(cache=True, inline="always")
def _bilinear(texels, tex, off, size, s, t):
    """Bilinear sample of texture `tex`, mip (off, size), at texture coords (s, t), wrapping (repeat)."""
    x = s * size - 0.5
    y = t * size - 0.5
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    m = size - 1                                      # sizes are powers of two: wrap with a mask
    ix0 = int(x0) & m
    iy0 = int(y0) & m
    ix1 = (ix0 + 1) & m
    iy1 = (iy0 + 1) & m
    i00, i01 = off + iy0 * size + ix0, off + iy0 * size + ix1
    i10, i11 = off + iy1 * size + ix0, off + iy1 * size + ix1
    w00, w01, w10, w11 = (1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy
    T = texels[tex]                                   # (texels, 3) view
    return (w00 * T[i00, 0] + w01 * T[i01, 0] + w10 * T[i10, 0] + w11 * T[i11, 0],
            w00 * T[i00, 1] + w01 * T[i01, 1] + w10 * T[i10, 1] + w11 * T[i11, 1],
            w00 * T[i00, 2] + w01 * T[i01, 2] + w10 * T[i10, 2] + w11 * T[i11, 2])


@njit(cache=True, inline="always")
def _bilinear_clamp(texels, tex, off, size, s, t):
    """Bilinear sample at (s, t) in [0, 1)^2 of a row-major image, clamped at the edges (posters do not tile)."""
    x = min(max(s * size - 0.5, 0.0), size - 1.0)
    y = min(max(t * size - 0.5, 0.0), size - 1.0)
    x0 = min(int(x), size - 2)
    y0 = min(int(y), size - 2)
    fx = x - x0
    fy = y - y0
    i00 = off + y0 * size + x0
    i10 = i00 + size
    w00, w01, w10, w11 = (1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy
    T = texels[tex]
    return (w00 * T[i00, 0] + w01 * T[i00 + 1, 0] + w10 * T[i10, 0] + w11 * T[i10 + 1, 0],
            w00 * T[i00, 1] + w01 * T[i00 + 1, 1] + w10 * T[i10, 1] + w11 * T[i10 + 1, 1],
            w00 * T[i00, 2] + w01 * T[i00 + 1, 2] + w10 * T[i10, 2] + w11 * T[i10 + 1, 2])


@njit(cache=True, inline="always")
def _sky(sky, dx, dy, dz):
    """Cube-map lookup along (dx, dy, dz); faces ordered +x, -x, +y, -y, +z, -z."""
    ax, ay, az = abs(dx), abs(dy), abs(dz)
    if ax >= ay and ax >= az:
        face = 0 if dx > 0 else 1
        fwd, right = ax, (-dy if dx > 0 else dy)
        up = dz
    elif ay >= az:
        face = 2 if dy > 0 else 3
        fwd, right = ay, (dx if dy > 0 else -dx)
        up = dz
    else:
        face = 4 if dz > 0 else 5
        fwd, right = az, -dy
        up = -dx if dz > 0 else dx
    n = sky.shape[1]
    x = 0.5 * (1 + right / fwd) * n - 0.5
    y = 0.5 * (1 - up / fwd) * n - 0.5
    x = min(max(x, 0.0), n - 1.0)
    y = min(max(y, 0.0), n - 1.0)
    x0 = min(int(x), n - 2)
    y0 = min(int(y), n - 2)
    fx = x - x0
    fy = y - y0
    w00, w01, w10, w11 = (1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy
    F = sky[face]                                     # (n, n, 3) view
    return (w00 * F[y0, x0, 0] + w01 * F[y0, x0 + 1, 0] + w10 * F[y0 + 1, x0, 0] + w11 * F[y0 + 1, x0 + 1, 0],
            w00 * F[y0, x0, 1] + w01 * F[y0, x0 + 1, 1] + w10 * F[y0 + 1, x0, 1] + w11 * F[y0 + 1, x0 + 1, 1],
            w00 * F[y0, x0, 2] + w01 * F[y0, x0 + 1, 2] + w10 * F[y0 + 1, x0, 2] + w11 * F[y0 + 1, x0 + 1, 2])


@njit(cache=True, inline="always")
def _to_u8(val):
    return 255 if val >= 255.0 else (0 if val < 0.0 else np.uint8(val))


@njit(cache=True, inline="always")
def _store(out, r, c, rgb, scale):
    out[r, c, 0] = _to_u8(rgb[0] * scale + 0.5)
    out[r, c, 1] = _to_u8(rgb[1] * scale + 0.5)
    out[r, c, 2] = _to_u8(rgb[2] * scale + 0.5)


@njit(cache=True)
def render_frame(out, x, y, yaw_deg, solid, wall_tex, floor_tex, texels, offsets, sizes,
                 sky, u_cols, v_rows, floor_level, poster_id, p_texels, p_offsets, p_sizes):
    """Draw into `out` uint8 (H, W, 3) the view from (x, y) at the eye height facing `yaw_deg`.
    poster_id int (ncx, ncy, 4): poster on wall cell (ix, iy)'s face toward -x, +x, -y, +y, or -1."""
    H, W = out.shape[0], out.shape[1]
    nl = sizes.shape[0]
    yaw = np.radians(yaw_deg)
    fx, fy = np.cos(yaw), np.sin(yaw)
    rx, ry = np.sin(yaw), -np.cos(yaw)                # the camera's right
    ncx, ncy = solid.shape[0], solid.shape[1]
    tpu = sizes[0] / CELL_SIZE                        # base-level texels per world unit
    for c in range(W):
        u = u_cols[c]
        dx, dy = fx + u * rx, fy + u * ry              # ray direction; its forward component is 1
        # DDA through the cell grid
        ix, iy = int(np.floor(x / CELL_SIZE)), int(np.floor(y / CELL_SIZE))
        ddx = abs(CELL_SIZE / dx) if dx != 0 else 1e30
        ddy = abs(CELL_SIZE / dy) if dy != 0 else 1e30
        if dx < 0:
            sx, tx = -1, (x - ix * CELL_SIZE) / -dx
        else:
            sx, tx = 1, ((ix + 1) * CELL_SIZE - x) / dx if dx != 0 else 1e30
        if dy < 0:
            sy, ty = -1, (y - iy * CELL_SIZE) / -dy
        else:
            sy, ty = 1, ((iy + 1) * CELL_SIZE - y) / dy if dy != 0 else 1e30
        px, py, axis = ix, iy, 0
        for _ in range(4 * (ncx + ncy) + 4):
            px, py = ix, iy
            if tx < ty:
                ix += sx
                tx += ddx
                axis = 0
            else:
                iy += sy
                ty += ddy
                axis = 1
            if ix < 0 or iy < 0 or ix >= ncx or iy >= ncy or solid[ix, iy]:
                break
        # the wall surface sits WALL_INSET in front of the cell boundary
        if axis == 0:
            bound = (ix * CELL_SIZE if sx > 0 else (ix + 1) * CELL_SIZE) - sx * WALL_INSET
            t = (bound - x) / dx
            hit = y + t * dy
            # ds/du along the face: world units per unit of u (screen-space derivative for the mip)
            dsdu = t * (ry - dy * rx / dx)
        else:
            bound = (iy * CELL_SIZE if sy > 0 else (iy + 1) * CELL_SIZE) - sy * WALL_INSET
            t = (bound - y) / dy
            hit = x + t * dx
            dsdu = t * (rx - dx * ry / dy)
        t = max(t, 1e-6)
        s_tex = hit / CELL_SIZE - np.floor(hit / CELL_SIZE)
        foot = max(abs(dsdu) * (u_cols[1] - u_cols[0]) if W > 1 else 0.0, t * abs(v_rows[0] - v_rows[1]))
        lam = np.log2(max(foot * tpu, 1e-9))
        wl = min(max(int(np.floor(lam + 0.5)), 0), nl - 1)
        tex = wall_tex[min(max(px, 0), ncx - 1), min(max(py, 0), ncy - 1)]
        shade = 1.0 if axis == 0 else Y_FACE_SHADE
        # poster on the face this column sees; pu runs left to right as the viewer sees the face
        poster = -1
        pu = 0.0
        pl = 0
        if 0 <= ix < ncx and 0 <= iy < ncy:
            side = (0 if sx > 0 else 1) if axis == 0 else (2 if sy > 0 else 3)
            poster = poster_id[ix, iy, side]
            if poster >= 0:
                along = (s_tex - 0.5) * CELL_SIZE / DECAL_SIZE + 0.5
                pu = 1.0 - along if side == 0 or side == 3 else along
                if pu < 0.0 or pu >= 1.0:
                    poster = -1
        if poster >= 0:
            npl = p_sizes.shape[0]
            pl = min(max(int(np.floor(np.log2(max(foot * p_sizes[0] / DECAL_SIZE, 1e-9)) + 0.5)), 0), npl - 1)
        for r in range(H):
            v = v_rows[r]
            z = EYE_Z + v * t
            if z > WALL_HEIGHT:
                _store(out, r, c, _sky(sky, dx, dy, v), 1.0)
            elif poster >= 0 and abs(z - DECAL_CENTRE_Z) < 0.5 * DECAL_SIZE:
                pv = (DECAL_CENTRE_Z + 0.5 * DECAL_SIZE - z) / DECAL_SIZE
                _store(out, r, c, _bilinear_clamp(p_texels, poster, p_offsets[pl], p_sizes[pl], pu, pv), shade)
            elif z >= FLOOR_Z:
                # wall texels are stored transposed: (t, s) addresses them
                _store(out, r, c, _bilinear(texels, tex, offsets[wl], sizes[wl], (WALL_HEIGHT - z) / CELL_SIZE, s_tex),
                       shade)
            else:
                tf = (EYE_Z - FLOOR_Z) / -v
                wx, wy = x + tf * dx, y + tf * dy
                cx = min(max(int(np.floor(wx / CELL_SIZE)), 0), ncx - 1)
                cy = min(max(int(np.floor(wy / CELL_SIZE)), 0), ncy - 1)
                fl = floor_level[r, c]
                s = wx / CELL_SIZE
                tt = -wy / CELL_SIZE                  # Quake III floor planar mapping: t runs along -y
                _store(out, r, c, _bilinear(texels, floor_tex[cx, cy], offsets[fl], sizes[fl], s, tt), 1.0)


def render(out: np.ndarray, x: float, y: float, yaw_deg: float, solid: np.ndarray, wall_tex: np.ndarray,
           floor_tex: np.ndarray, textures: TextureSet, sky: np.ndarray, cam: Camera,
           posters: PosterSet | None = None) -> np.ndarray:
    if posters is None:
        posters = PosterSet.empty(solid.shape)
    render_frame(out, float(x), float(y), float(yaw_deg), solid, wall_tex, floor_tex, textures.texels,
                 textures.offsets, textures.sizes, sky, cam.u, cam.v, cam.floor_level,
                 posters.face, posters.texels, posters.offsets, posters.sizes)
    return out
