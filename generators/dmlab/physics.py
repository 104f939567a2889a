"""DeepMind Lab's player motion on a flat grid maze: yaw updates as DMLab's client makes them, Quake III's
ground movement (friction, acceleration, integer velocity snap) and a slide move against wall boxes.
All constants and their sources are in protocol.py. Numba, no fastmath: deterministic.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .protocol import PLAYER_HALF_WIDTH, PLAYER_SPEED, PM_ACCELERATE, PM_FRICTION, PM_STOPSPEED, WALL_INSET
from .maze import CELL_SIZE, MazeLayout

# state vector layout: float64 (5,)
X, Y, VX, VY, YAW = range(5)
SURFACE_CLIP = 0.125       # Quake III keeps traced boxes this far off a surface
BOX_HALF = PLAYER_HALF_WIDTH + WALL_INSET   # player box against cell-aligned wall blocks


def solid_grid(layout: MazeLayout) -> np.ndarray:
    """bool (cols, rows) indexed [floor(x / 100), floor(y / 100)] in world axes."""
    return np.ascontiguousarray(layout.walls[::-1, :].T)


@njit(cache=True)
def _angle_normalize_360(angle):
    a = np.float64(np.float32(angle))
    return np.float64(np.float32((360.0 / 65536) * (np.int64(a * (65536 / 360.0)) & 65535)))


@njit(cache=True)
def state_yaw(yaw_client):
    """Player-state yaw (deg, [-180, 180)) from the client's [0, 360) yaw, as SHORT2ANGLE(ANGLE2SHORT())."""
    s = np.int64(yaw_client * (65536 / 360.0)) & 65535
    if s >= 32768:
        s -= 65536
    return s * (360.0 / 65536)


@njit(cache=True)
def _is_solid(solid, ix, iy):
    if ix < 0 or iy < 0 or ix >= solid.shape[0] or iy >= solid.shape[1]:
        return True
    return solid[ix, iy]


@njit(cache=True)
def _slab(lo, hi, p, d):
    """Fractions t at which p + t * d enters and leaves the open interval (lo, hi); (inf, -inf) if never."""
    if d > 0:
        return (lo - p) / d, (hi - p) / d
    if d < 0:
        return (hi - p) / d, (lo - p) / d
    if lo < p < hi:
        return -np.inf, np.inf
    return np.inf, -np.inf


@njit(cache=True)
def _sweep(solid, x, y, dx, dy):
    """First contact of the player box moving by (dx, dy): (fraction in [0, 1], axis 0/1), or (2.0, -1)."""
    h = BOX_HALF
    best, axis = 2.0, -1
    ix0 = int(np.floor((min(x, x + dx) - h) / CELL_SIZE))
    ix1 = int(np.floor((max(x, x + dx) + h) / CELL_SIZE))
    iy0 = int(np.floor((min(y, y + dy) - h) / CELL_SIZE))
    iy1 = int(np.floor((max(y, y + dy) + h) / CELL_SIZE))
    for ix in range(ix0, ix1 + 1):
        for iy in range(iy0, iy1 + 1):
            if not _is_solid(solid, ix, iy):
                continue
            # Minkowski box of this wall cell around the player's centre point
            bx0, bx1 = ix * CELL_SIZE - h, (ix + 1) * CELL_SIZE + h
            by0, by1 = iy * CELL_SIZE - h, (iy + 1) * CELL_SIZE + h
            tx0, tx1 = _slab(bx0, bx1, x, dx)
            ty0, ty1 = _slab(by0, by1, y, dy)
            t0, t1 = max(tx0, ty0), min(tx1, ty1)
            if t0 < t1 and t1 > 0.0 and t0 <= 1.0 and t0 < best:
                best = max(t0, 0.0)
                axis = 0 if tx0 >= ty0 else 1
    return best, axis


@njit(cache=True)
def _slide_move(solid, s, dt):
    """PM_SlideMove for axis-aligned walls: move, stop SURFACE_CLIP short of a wall, drop the blocked
    velocity component, go on with the time left (up to 4 bumps)."""
    time_left = dt
    for _ in range(4):
        dx, dy = s[VX] * time_left, s[VY] * time_left
        if dx == 0.0 and dy == 0.0:
            return
        frac, axis = _sweep(solid, s[X], s[Y], dx, dy)
        if axis < 0:
            s[X] += dx
            s[Y] += dy
            return
        # back off along the motion so the blocked axis ends SURFACE_CLIP from the wall
        d_axis = dx if axis == 0 else dy
        back = SURFACE_CLIP / abs(d_axis)
        frac = max(frac - back, 0.0)
        s[X] += dx * frac
        s[Y] += dy * frac
        time_left -= time_left * frac
        if axis == 0:
            s[VX] = 0.0
        else:
            s[VY] = 0.0


@njit(cache=True)
def player_step(s, solid, rate_deg_per_ms, forward, frames, msec):
    """Advance state `s` (float64 (5,): x, y, vx, vy, client yaw) by `frames` engine frames holding
    one action: a yaw rate (deg/ms) and forward 0/1. In place."""
    dt = msec * 0.001
    for _ in range(frames):
        s[YAW] = _angle_normalize_360(s[YAW] + rate_deg_per_ms * msec)
        yaw = np.radians(state_yaw(s[YAW]))
        # PM_Friction (on the ground, no knockback)
        speed = np.hypot(s[VX], s[VY])
        if speed < 1.0:
            s[VX] = 0.0
            s[VY] = 0.0
        else:
            control = max(speed, PM_STOPSPEED)
            newspeed = max(speed - control * PM_FRICTION * dt, 0.0) / speed
            s[VX] *= newspeed
            s[VY] *= newspeed
        # PM_Accelerate toward the view direction at g_speed
        if forward:
            wx, wy = np.cos(yaw), np.sin(yaw)
            addspeed = PLAYER_SPEED - (s[VX] * wx + s[VY] * wy)
            if addspeed > 0:
                accelspeed = min(PM_ACCELERATE * dt * PLAYER_SPEED, addspeed)
                s[VX] += accelspeed * wx
                s[VY] += accelspeed * wy
        if s[VX] != 0.0 or s[VY] != 0.0:
            _slide_move(solid, s, dt)
        # trap_SnapVector(ps->velocity)
        s[VX] = np.rint(s[VX])
        s[VY] = np.rint(s[VY])


@njit(cache=True)
def box_clear(solid, x, y):
    """True when the player box at (x, y) overlaps no wall block (collision invariant)."""
    h = BOX_HALF
    for ix in range(int(np.floor((x - h) / CELL_SIZE)), int(np.floor((x + h) / CELL_SIZE)) + 1):
        for iy in range(int(np.floor((y - h) / CELL_SIZE)), int(np.floor((y + h) / CELL_SIZE)) + 1):
            if _is_solid(solid, ix, iy):
                if x + h > ix * CELL_SIZE and x - h < (ix + 1) * CELL_SIZE and \
                        y + h > iy * CELL_SIZE and y - h < (iy + 1) * CELL_SIZE:
                    return False
    return True
