"""The embedded (pip-only) Minecraft backend: a seeded swamp world, Minecraft's player physics
(1.11 constants, one step = one 20 Hz tick) and the numba raycaster.

Physics follows the game's EntityLivingBase.travel: ground acceleration 0.1 * 0.16277136 / 0.546^3
with friction 0.546 (=> 4.317 blocks/s walking), air acceleration 0.02, gravity 0.08 with drag 0.98,
jump velocity 0.42 (=> 1.25 blocks high), water drag 0.8 with 0.02 sinking and 0.04 per tick up while
jump is held, a 0.6 x 1.8 box moved axis by axis (y, x, z) and clipped against block boxes, and a
0.6-block auto step.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from generators.seeds import rng

from . import protocol as P
from . import world as W
from .render import RenderConfig, Renderer

EMBEDDED_VERSION = "2"         # 2: sea level 1 (puddles only), jumping turns

HALF_WIDTH = 0.3
BODY_HEIGHT = 1.8
EYE_HEIGHT = 1.62
STEP_HEIGHT = 0.6
GROUND_FRICTION = 0.6 * 0.91
GROUND_ACCEL = 0.1 * 0.16277136 / GROUND_FRICTION ** 3
AIR_ACCEL = 0.02
WATER_ACCEL = 0.02
FORWARD_INPUT = 0.98          # the game scales key input by 0.98
JUMP_VELOCITY = 0.42
JUMP_COOLDOWN = 10
EPS = 1e-7


class Player:
    """Feet-centre position (x, y, z) in blocks, velocity per tick, yaw/pitch in degrees (Minecraft's)."""

    def __init__(self, x: float, y: float, z: float, yaw: float, pitch: float = 0.0):
        self.x, self.y, self.z = float(x), float(y), float(z)
        self.vx = self.vy = self.vz = 0.0
        self.yaw, self.pitch = float(yaw), float(pitch)
        self.on_ground = False
        self.in_water = False
        self.collided_h = False
        self.jump_ticks = 0

    def box(self) -> tuple[float, float, float, float, float, float]:
        """(min x, min y, min z, max x, max y, max z) of the body."""
        return (self.x - HALF_WIDTH, self.y, self.z - HALF_WIDTH,
                self.x + HALF_WIDTH, self.y + BODY_HEIGHT, self.z + HALF_WIDTH)

    def turn(self, degrees: float) -> None:
        """Add to yaw, wrapped to [-180, 180). Exact for the dyadic yaws used here, so 18 turns of 20
        degrees return bit-identically to the start."""
        self.yaw = P.wrap_degrees(self.yaw + degrees)


def _collision_boxes(view: W.LocalView, lo: tuple, hi: tuple) -> list[tuple]:
    """Boxes of the solid blocks in the cells touching the world-space region lo..hi."""
    boxes = []
    for x in range(math.floor(lo[0]), math.floor(hi[0]) + 1):
        for z in range(math.floor(lo[2]), math.floor(hi[2]) + 1):
            for y in range(math.floor(lo[1]), math.floor(hi[1]) + 1):
                h = float(W.SOLID_HEIGHT[view.get(x, y, z)])
                if h > 0:
                    boxes.append((x, y, z, x + 1.0, y + h, z + 1.0))
    return boxes


def _clip(axis: int, d: float, e: tuple, boxes: list[tuple]) -> float:
    """Minecraft's calculate{X,Y,Z}Offset: shorten move d along axis so box e stops at the first block."""
    a, b = [(1, 2), (0, 2), (0, 1)][axis]
    for bx in boxes:
        if e[a + 3] > bx[a] + EPS and e[a] < bx[a + 3] - EPS and e[b + 3] > bx[b] + EPS and e[b] < bx[b + 3] - EPS:
            if d > 0 and e[axis + 3] <= bx[axis] + EPS:
                d = min(d, bx[axis] - e[axis + 3])
            elif d < 0 and e[axis] >= bx[axis + 3] - EPS:
                d = max(d, bx[axis + 3] - e[axis])
    return d


def _shift(e: tuple, axis: int, d: float) -> tuple:
    e = list(e)
    e[axis] += d
    e[axis + 3] += d
    return tuple(e)


def _sweep(e: tuple, dx: float, dy: float, dz: float, boxes: list[tuple]) -> tuple[tuple, float, float, float]:
    dy = _clip(1, dy, e, boxes)
    e = _shift(e, 1, dy)
    dx = _clip(0, dx, e, boxes)
    e = _shift(e, 0, dx)
    dz = _clip(2, dz, e, boxes)
    e = _shift(e, 2, dz)
    return e, dx, dy, dz


def touches_water(view: W.LocalView, e: tuple) -> bool:
    for x in range(math.floor(e[0]), math.floor(e[3] - EPS) + 1):
        for y in range(math.floor(e[1]), math.floor(e[4] - EPS) + 1):
            for z in range(math.floor(e[2]), math.floor(e[5] - EPS) + 1):
                if view.get(x, y, z) == W.WATER:
                    return True
    return False


def box_is_free(view: W.LocalView, e: tuple) -> bool:
    """No solid block overlaps box e."""
    return not any(e[0] < b[3] - EPS and e[3] > b[0] + EPS and e[1] < b[4] - EPS and e[4] > b[1] + EPS
                   and e[2] < b[5] - EPS and e[5] > b[2] + EPS
                   for b in _collision_boxes(view, e[:3], e[3:]))


def move(view: W.LocalView, p: Player, dx: float, dy: float, dz: float) -> None:
    """Entity.move: sweep the body box through the blocks, auto-step up to 0.6 when blocked on the ground."""
    e0 = p.box()
    lo = (min(e0[0], e0[0] + dx), min(e0[1], e0[1] + dy), min(e0[2], e0[2] + dz))
    hi = (max(e0[3], e0[3] + dx), max(e0[4], e0[4] + dy), max(e0[5], e0[5] + dz))
    boxes = _collision_boxes(view, lo, (hi[0], hi[1] + STEP_HEIGHT, hi[2]))
    e, mx, my, mz = _sweep(e0, dx, dy, dz, boxes)
    grounded = p.on_ground or (dy != my and dy < 0)
    if grounded and (mx != dx or mz != dz):
        # try the move lifted by the step height, then settle back down
        s = _clip(1, STEP_HEIGHT, e0, boxes)
        e2 = _shift(e0, 1, s)
        e2, sx, _, sz = _sweep(e2, dx, 0.0, dz, boxes)
        down = _clip(1, -s, e2, boxes)
        e2 = _shift(e2, 1, down)
        if sx * sx + sz * sz > mx * mx + mz * mz + EPS:
            e, mx, mz, my = e2, sx, sz, e2[1] - e0[1]
    p.collided_h = (mx != dx) or (mz != dz)
    p.on_ground = dy != my and dy < 0
    if my != dy:
        p.vy = 0.0
    if mx != dx:
        p.vx = 0.0
    if mz != dz:
        p.vz = 0.0
    p.x = (e[0] + e[3]) * 0.5
    p.y = e[1]
    p.z = (e[2] + e[5]) * 0.5


def tick(view: W.LocalView, p: Player, forward: bool, jump: bool) -> None:
    """One 20 Hz game tick of the player with the forward and jump keys as given."""
    if p.jump_ticks > 0:
        p.jump_ticks -= 1
    e = p.box()
    p.in_water = touches_water(view, (e[0] + 0.001, e[1] + 0.4, e[2] + 0.001, e[3] - 0.001, e[4] - 0.4, e[5] - 0.001))
    if jump:
        if p.in_water:
            p.vy += 0.04
        elif p.on_ground and p.jump_ticks == 0:
            p.vy = JUMP_VELOCITY
            p.jump_ticks = JUMP_COOLDOWN
    else:
        p.jump_ticks = 0
    fwd = FORWARD_INPUT if forward else 0.0
    yaw = math.radians(p.yaw)
    if p.in_water:
        accel = WATER_ACCEL
    else:
        accel = GROUND_ACCEL if p.on_ground else AIR_ACCEL
    friction = GROUND_FRICTION if (p.on_ground and not p.in_water) else 0.91
    p.vx += -math.sin(yaw) * fwd * accel
    p.vz += math.cos(yaw) * fwd * accel
    y_before = p.y
    if p.in_water:
        move(view, p, p.vx, p.vy, p.vz)
        p.vx *= 0.8
        p.vy = p.vy * 0.8 - 0.02
        p.vz *= 0.8
        if p.collided_h:
            e = p.box()
            lift = p.vy + 0.6 - p.y + y_before
            raised = (e[0] + p.vx, e[1] + lift, e[2] + p.vz, e[3] + p.vx, e[4] + lift, e[5] + p.vz)
            if box_is_free(view, raised) and not touches_water(view, raised):
                p.vy = 0.3      # the game's "climb out of water onto the bank"
    else:
        move(view, p, p.vx, p.vy, p.vz)
        p.vy = (p.vy - 0.08) * 0.98
        p.vx *= friction
        p.vz *= friction
    # drop sub-precision drift the way the game zeroes tiny motion
    for k in ("vx", "vy", "vz"):
        if abs(getattr(p, k)) < 0.003:
            setattr(p, k, 0.0)


def find_spawn(world: W.World, seed: int) -> tuple[float, float, float, float]:
    """A dry grass column near a seeded point, clear for the body and away from trunks:
    (x, y, z, yaw) with a dyadic yaw so turning is exact."""
    g = rng(seed, "spawn")
    x0, z0 = (int(v) for v in g.integers(-2048, 2048, 2))
    yaw = float(g.integers(0, 360 * 16)) / 16.0 - 180.0
    view = W.LocalView(world, 1)
    for r in range(0, 64):
        for dx in range(-r, r + 1):
            for dz in (-r, r) if abs(dx) != r else range(-r, r + 1):
                x, z = x0 + dx, z0 + dz
                h = world.height(x, z)
                view.follow(x + 0.5, z + 0.5)
                if view.get(x, h, z) != W.GRASS:
                    continue
                p = Player(x + 0.5, h + 1.0, z + 0.5, yaw)
                if box_is_free(view, p.box()) and all(view.get(x, y, z) != W.VINE for y in range(h + 1, h + 3)):
                    return x + 0.5, h + 1.0, z + 0.5, yaw
    raise RuntimeError(f"no dry spawn column within 64 blocks of ({x0}, {z0}) for seed {seed}")


class EmbeddedMinecraft:
    """Backend: reset(seed) builds a new world (Minecraft's force_reset) and spawns the player.

    `sea_level` is the world generator's (the collector's 1; 63 is Minecraft's default, a flooded swamp);
    `turn_jump` False turns in place without jumping (exactly reversible; the collector jumps)."""

    name = "embedded"
    version = EMBEDDED_VERSION

    def __init__(self, height: int = P.RESOLUTION, width: int = P.RESOLUTION,
                 turn_degrees: float = P.TURN_DEGREES, render: RenderConfig | None = None,
                 sea_level: int = W.SEA_LEVEL, turn_jump: bool = True):
        self.cfg = dataclasses.replace(render or RenderConfig(), height=int(height), width=int(width))
        self.turn_degrees = float(turn_degrees)
        self.sea_level = W.check_sea_level(sea_level)
        self.turn_jump = bool(turn_jump)
        self.radius_chunks = int(math.ceil(self.cfg.view_distance / W.CHUNK))
        self.world: W.World | None = None
        self.view: W.LocalView | None = None
        self.player: Player | None = None
        self.renderer: Renderer | None = None
        self.done = False        # the embedded world never ends an episode early

    def reset(self, seed: int, **_) -> np.ndarray:
        world_seed = int(rng(seed, "world").integers(0, 2 ** 63))
        self.world = W.World(world_seed, self.sea_level)
        x, y, z, yaw = find_spawn(self.world, seed)
        self.player = Player(x, y, z, yaw)
        self.player.on_ground = True      # feet rest on the spawn block, as a player MineRL hands over at reset
        self.view = W.LocalView(self.world, self.radius_chunks)
        self.view.follow(x, z)
        self.renderer = Renderer(self.cfg, cloud_seed=world_seed)
        self.done = False
        return self.observe()

    def step(self, action: int) -> np.ndarray:
        if self.player is None:
            raise RuntimeError("step() before reset()")
        a = int(action)
        if a == P.FORWARD:
            tick(self.view, self.player, forward=True, jump=True)
        elif a in (P.LEFT, P.RIGHT):
            # MineRL applies the camera delta, then runs the tick with the keys held (jump, as the collector)
            self.player.turn(-self.turn_degrees if a == P.LEFT else self.turn_degrees)
            tick(self.view, self.player, forward=False, jump=self.turn_jump)
        elif a == P.NOOP:
            tick(self.view, self.player, forward=False, jump=False)
        else:
            raise ValueError(f"unknown Minecraft action id {a}: expected 0..{len(P.ACTION_NAMES) - 1}")
        self.view.follow(self.player.x, self.player.z)
        return self.observe()

    def observe(self) -> np.ndarray:
        p = self.player
        return self.renderer.render(self.view, (p.x, p.y + EYE_HEIGHT, p.z), p.yaw, p.pitch)

    def pose(self) -> np.ndarray:
        p = self.player
        return np.array([p.x, p.y, p.z, p.yaw, p.pitch], np.float32)

    def layout(self):
        return None

    def close(self) -> None:
        self.world = self.view = self.player = self.renderer = None
