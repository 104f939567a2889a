"""The DMLab-40k collection protocol (TECO, Yan et al. 2022) and the DeepMind Lab constants that
both backends must agree on.

The paper's collection script drives deepmind_lab's `demos/random_maze` at 64x64 and 30 fps with five
actions, each repeated for 4 engine steps (`env.step(vector, num_steps=4)`), and a "goal agent":
40 steps turning left on the spot, then walks between cell-centre landmarks of a BFS path to a cell
`goal_dist` steps away and back. The first 10 steps are dropped, the next 300 recorded.

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
from .maze import MazeLayout, round_trip

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


@dataclass(frozen=True)
class GoalAgentConfig:
    goal_dist: int = 4              # BFS cells to each goal
    turn_steps: int = 40            # initial look-left steps
    heading_tol: float = 10.0       # degrees: move forward when the landmark is this close to straight ahead
    landmark_radius: float = 10.0   # units: a landmark is reached within this distance
    goal_mode: str = "resample"     # "resample": new goal after each round trip; "repeat": the script's loop

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "GoalAgentConfig":
        return cls(goal_dist=int(p["goal_dist"]), turn_steps=int(p["turn_steps"]),
                   heading_tol=float(p["heading_tol"]), landmark_radius=float(p["landmark_radius"]),
                   goal_mode=str(p["goal_mode"]))


class GoalAgent:
    """The paper's goal agent as a rollout policy; one instance per episode.

    Like the script, it turns toward the next landmark by the shorter way and, once within
    `heading_tol`, keeps turning that way while moving forward (look_{left,right}_forward), which is
    why the plain `forward` action never occurs in DMLab-40k. Bearings use atan2 (the script's own
    formula points due north for a landmark exactly due south).
    """

    def __init__(self, cfg: GoalAgentConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.layout: MazeLayout | None = None
        self.landmarks: np.ndarray = np.zeros((0, 2))
        self.idx = 0

    def _plan(self, x: float, y: float) -> None:
        start = self.layout.cell_of(x, y)
        cells = round_trip(self.layout, start, self.cfg.goal_dist, self.rng)
        self.landmarks = np.array([self.layout.centre(r, c) for r, c in cells])
        self.idx = 0

    def __call__(self, t: int, obs: np.ndarray, pose: np.ndarray, backend: Backend) -> int:
        x, y, yaw = float(pose[0]), float(pose[1]), float(pose[3])
        if self.layout is None:
            self.layout = backend.layout()
            self._plan(x, y)
        target = self.landmarks[self.idx]
        if np.hypot(target[0] - x, target[1] - y) <= self.cfg.landmark_radius:
            self.idx += 1
            if self.idx == len(self.landmarks):     # back where the trip started
                if self.cfg.goal_mode == "repeat":
                    self.idx = 0
                else:
                    self._plan(x, y)
        if t < self.cfg.turn_steps:
            return LOOK_LEFT
        tx, ty = self.landmarks[self.idx]
        bearing = np.degrees(np.arctan2(ty - y, tx - x))
        diff = (bearing - yaw + 180.0) % 360.0 - 180.0      # > 0: landmark to the left
        left = diff > 0
        if abs(diff) < self.cfg.heading_tol:
            return LOOK_LEFT_FORWARD if left else LOOK_RIGHT_FORWARD
        return LOOK_LEFT if left else LOOK_RIGHT
