"""The DMLab-40k collection protocol (TECO, Yan et al. 2022) and the DeepMind Lab constants that
both backends must agree on.

The paper's final collection script (wilson1yan/lab, python/random_agent_traverse.py at "ready") drives
its `demos/random_maze` (9x9 mazes) at 64x64 and 30 fps with five actions, each repeated for 4 engine
steps (`env.step(vector, num_steps=4)`), and a goal agent: 30 raw steps looking left on the spot, then
one-way legs to the farthest unvisited cells (GoalAgent below, maze.Traversal). The first 10 steps are
dropped, the next 300 recorded. generators/dmlab/PROTOCOL.md lists every rule against ours.

Turn angle (derived from DMLab's engine source, engine/code/deepmind/dmlab_connect.c and the
client's CL_FinishMove):
  * `fps` sets the engine frame to round(0.96 * 1000 / fps) ms: 32 ms at 30 fps (kEngineTimePerExternalTime).
  * LOOK_LEFT_RIGHT_PIXELS_PER_FRAME = p becomes a yaw rate of float32(-p * 0.11 * 60 / 1000) deg/ms
    (kPixelsPerFrameToDegreesPerMilliseconds), applied each engine frame as
    yaw = AngleNormalize360(yaw + rate * frame_ms), which snaps yaw to a 360/65536 deg grid.
  * p = -20 at 30 fps: +4.224 deg asked per frame, snapped to +4.21875 (768 grid steps); p = +20 snaps
    to -4.22424 (769 steps: truncation is toward zero on the positive [0, 360) value; 768 on the step
    that wraps through 0). With 4 frames per recorded step: left 16.875 deg, right 16.897 deg (16.891
    across yaw 0; 16.896 unsnapped). `turn_per_step` computes it.
Forward speed (Quake III Arena's bg_pmove.c, unchanged in DMLab): MOVE_BACK_FORWARD = 1 is cmd
forwardmove 127 = wish speed g_speed = 320 units/s; per engine frame ground friction 6 (stop speed
100), acceleration 10 (q2 style), then velocity snapped to integers. From rest the agent is 3.3, 9.2,
17.3 and 27.0 units on after the first four 32 ms frames (27 units for a first recorded step), then
covers 41 units per recorded step at the 320 units/s top speed; released, it coasts 25, 10, 1.5 units
over the next steps. The embedded backend integrates exactly this (generators/dmlab/physics.py).
Geometry (deepmind/level_generation, Quake III game code): 100-unit cells, walls 100 high and 1 unit
proud of the cell boundary into open cells, floor top at z = 1, player box 30x30 (half width 15),
origin 24 above the floor, eye 26 above the origin (DEFAULT_VIEWHEIGHT), horizontal FOV 90 (cg_fov).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Backend
from .maze import Traversal

ACTION_NAMES = ["look_left", "look_right", "forward", "look_left_forward", "look_right_forward"]
LOOK_LEFT, LOOK_RIGHT, FORWARD, LOOK_LEFT_FORWARD, LOOK_RIGHT_FORWARD = range(5)
# (look direction: -1 left / +1 right / 0, forward 0/1); look pixels = direction * look_rate
ACTION_TABLE = ((-1, 0), (1, 0), (0, 1), (-1, 1), (1, 1))

# DeepMind Lab's 7-int action vector layout (action_spec order).
DMLAB_ACTION_NAMES = ["LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "LOOK_DOWN_UP_PIXELS_PER_FRAME", "STRAFE_LEFT_RIGHT",
                      "MOVE_BACK_FORWARD", "FIRE", "JUMP", "CROUCH"]
MAX_LOOK_PIXELS = 512                      # kMaxLookAngularVelocity
PIXELS_PER_FRAME_TO_DEG_PER_MS = 0.11 * 60 / 1000
ENGINE_TIME_PER_EXTERNAL_TIME = 0.96

# Quake III player movement (bg_pmove.c, g_main.c, bg_public.h)
PLAYER_SPEED = 320.0
PM_ACCELERATE = 10.0
PM_FRICTION = 6.0
PM_STOPSPEED = 100.0
PLAYER_HALF_WIDTH = 15.0
PLAYER_MINS_Z = -24.0
VIEWHEIGHT = 26.0

# Level geometry (units; a maze cell is 100)
WALL_HEIGHT = 100.0
WALL_INSET = 1.0                           # wall brushes reach 1 unit into open cells
FLOOR_Z = 1.0                              # top of the floor brush
ORIGIN_Z = FLOOR_Z - PLAYER_MINS_Z         # 25: DEBUG.POS.TRANS z of a standing player
EYE_Z = ORIGIN_Z + VIEWHEIGHT              # 51
FOV_DEG = 90.0


def action_vector(action: int, look_rate: int = 20) -> np.ndarray:
    """Dataset action id -> DMLab action vector, np.intc (7,)."""
    if not 0 <= action < len(ACTION_TABLE):
        raise ValueError(f"action must be in 0..{len(ACTION_TABLE) - 1}, got {action}")
    look, fwd = ACTION_TABLE[action]
    v = np.zeros(7, np.intc)
    v[0], v[3] = look * look_rate, fwd
    return v


def engine_frame_msec(fps: float) -> int:
    """Engine milliseconds per frame for DMLab's `fps` setting (dmlab_setting)."""
    return int(ENGINE_TIME_PER_EXTERNAL_TIME * 1000.0 / fps + 0.5)


def yaw_rate(look_pixels: int) -> float:
    """Degrees of yaw per engine millisecond for LOOK_LEFT_RIGHT_PIXELS_PER_FRAME (float32 as in dmlab_act)."""
    return float(np.float32(-look_pixels * PIXELS_PER_FRAME_TO_DEG_PER_MS))


def angle_normalize_360(angle: float) -> float:
    """Quake III AngleNormalize360: float32 argument, snapped to 360/65536 deg, in [0, 360)."""
    return float(np.float32((360.0 / 65536) * (int(float(np.float32(angle)) * (65536 / 360.0)) & 65535)))


def short_to_angle(angle: float) -> float:
    """Quake III SHORT2ANGLE(ANGLE2SHORT(angle)): the player state's yaw, in [-180, 180)."""
    s = int(angle * (65536 / 360.0)) & 65535
    return (s - 65536 if s >= 32768 else s) * (360.0 / 65536)


def turn_per_step(look_pixels: int, fps: float = 30, repeat: int = 4, start_yaw: float = 90.0) -> float:
    """Signed yaw change (deg) of one recorded step, as DMLab's client computes it from `start_yaw`."""
    rate, msec = yaw_rate(look_pixels), engine_frame_msec(fps)
    yaw = angle_normalize_360(start_yaw)
    start = yaw
    for _ in range(repeat):
        yaw = angle_normalize_360(yaw + rate * msec)
    return float((yaw - start + 180.0) % 360.0 - 180.0)


BEARINGS = ("script", "atan2")


def script_bearing(dx: float, dy: float) -> float:
    """Bearing (deg, DMLab yaw: 0 east, 90 north) of (dx, dy) as the final script computes it: arctan of
    |dy/dx| folded into the quadrant. For dx == 0 it takes 90 (dy >= 0) or -90, and its quadrant folding
    then flips -90 to +90: a waypoint due south reads as due north. This happens at every spawn whose first
    waypoint is due south (spawns are exact cell centres), so it is kept; `atan2_bearing` is the flag."""
    if dx == 0:
        a = 90.0 if dy >= 0 else -90.0
    else:
        a = float(np.degrees(np.arctan(abs(dy / dx))))
    if dx >= 0 and dy >= 0:
        return a
    if dx >= 0 and dy <= 0:
        return -a
    if dx <= 0 and dy >= 0:
        return 180.0 - a
    return -180.0 + a


def atan2_bearing(dx: float, dy: float) -> float:
    return float(np.degrees(np.arctan2(dy, dx)))


def turn_toward(yaw: float, target: float) -> int:
    """LOOK_LEFT or LOOK_RIGHT by the script's half-circle ranges: right when the target lies within 180
    degrees clockwise of `yaw` (ranges closed, right tested first), else left."""
    if target > 0:
        right = target <= yaw <= 180 or -180 <= yaw <= -180 + target
        left = target - 180 <= yaw <= target
    else:
        right = target <= yaw <= target + 180
        left = -180 <= yaw <= target or 180 - abs(target) <= yaw <= 180
    if right:
        return LOOK_RIGHT
    if left:
        return LOOK_LEFT
    raise ValueError(f"yaw {yaw} or bearing {target} is outside [-180, 180]")


@dataclass(frozen=True)
class GoalAgentConfig:
    turn_steps: int = 30            # raw steps looking left, the skipped ones included
    heading_tol: float = 10.0       # degrees: plain forward when the waypoint is this close to straight ahead
    waypoint_radius: float = 40.0   # units: a waypoint (cell centre) is reached within this distance
    bearing: str = "script"         # "script" (its dx == 0 quirk) or "atan2"
    # probe variant (deviation, 0 = the authors' agent): on reaching a leg's goal, walk back this many cells
    # of the leg, turn round and walk them again, so the last stretch of each leg is seen twice from the
    # same places and headings, ~2 x (cells walked + a half turn) frames apart
    retrace_cells: int = 0

    def __post_init__(self):
        if self.bearing not in BEARINGS:
            raise ValueError(f"bearing must be one of {BEARINGS}, got {self.bearing!r}")
        if self.retrace_cells < 0:
            raise ValueError(f"retrace-cells must be >= 0, got {self.retrace_cells}")

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "GoalAgentConfig":
        return cls(turn_steps=int(p["turn_steps"]), heading_tol=float(p["heading_tol"]),
                   waypoint_radius=float(p["waypoint_radius"]), bearing=str(p["bearing"]),
                   retrace_cells=int(p.get("retrace_cells", 0)))


class GoalAgent:
    """The final collection script's agent as a rollout policy; one instance per episode.

    Before each action: if within `waypoint_radius` of the current waypoint, advance to the next one (one
    per step); past the last one, plan a new one-way leg from here (`maze.Traversal`). Then look left for
    the first `turn_steps` raw steps; afterwards `forward` when the heading is within `heading_tol` of the
    waypoint's bearing, else turn toward it. The look+forward actions stay in the action space, unused.
    Probe variant (`retrace_cells` = K > 0, not the authors'): on reaching a leg's goal, walk back to the
    cell K before it (fewer on short legs), then to the goal again, then plan the next leg.
    """

    def __init__(self, cfg: GoalAgentConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.traversal: Traversal | None = None
        self.path: np.ndarray = np.zeros((0, 2))
        self.idx = 0
        self.bearing = script_bearing if cfg.bearing == "script" else atan2_bearing
        self.leg: list = []         # probe variant: the leg's cell centres, start first
        self.phase = "out"          # probe variant: "out" -> "back" -> "again" -> next leg

    def _plan(self, x: float, y: float) -> None:
        lay = self.traversal.layout
        start = lay.cell_of(x, y)
        self.path = np.array([lay.centre(r, c) for r, c in self.traversal.plan(start, self.rng)])
        self.idx = 0
        self.leg, self.phase = [lay.centre(*start)] + [tuple(p) for p in self.path], "out"

    def _next_leg(self, x: float, y: float) -> None:
        """Past the last waypoint: the next leg, or with retrace_cells the way back and out again."""
        k = min(self.cfg.retrace_cells, len(self.leg) - 1)
        if k and self.phase == "out":
            self.path, self.phase = np.array(self.leg[-1 - k:-1][::-1]), "back"
        elif k and self.phase == "back":
            self.path, self.phase = np.array(self.leg[-k:]), "again"
        else:
            self._plan(x, y)
            return
        self.idx = 0

    def __call__(self, t: int, obs: np.ndarray, pose: np.ndarray, backend: Backend) -> int:
        x, y, yaw = float(pose[0]), float(pose[1]), float(pose[3])
        if self.traversal is None:
            self.traversal = Traversal(backend.layout())
            self._plan(x, y)
        if np.hypot(self.path[self.idx][0] - x, self.path[self.idx][1] - y) <= self.cfg.waypoint_radius:
            self.idx += 1
            if self.idx == len(self.path):
                self._next_leg(x, y)
        if t < self.cfg.turn_steps:
            return LOOK_LEFT
        tx, ty = self.path[self.idx]
        target = self.bearing(tx - x, ty - y)
        if min(abs(yaw - target), abs(yaw - 360 - target), abs(yaw + 360 - target)) < self.cfg.heading_tol:
            return FORWARD
        return turn_toward(yaw, target)
