"""Habitat-200k collection protocol, after the paper's own collector (wilson1yan/collect-habitat, collect.py):
a random navigable start with a random heading, then legs of habitat's greedy geodesic follower to goals
drawn among the farthest of 100 random navigable points 1-15 m away (75% of legs kept on the same floor);
once 8 points are known (start included), goals are revisits of known points. Stop is never recorded.
As in the collector, frame 0 is the view after the first action (the start view is not stored), so every
recorded action produced its frame (storage/FORMAT.md). generators/habitat/PROTOCOL.md lists every setting.

Both backends expose a `NavWorld` through `layout()`; the policy here never knows which one it drives.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cli_common import strict_from_json

from ..backend import Backend
from ..rollout import EpisodeDiscarded
from ..spec import check_at_least

# habitat-lab's HabitatSimActions ids, the ids of the paper's stored actions (TECO's habitat action_dim is 6).
ACTION_NAMES = ["stop", "move_forward", "turn_left", "turn_right", "look_up", "look_down"]
STOP, MOVE_FORWARD, TURN_LEFT, TURN_RIGHT = 0, 1, 2, 3
POSE_NAMES = ["x", "y", "z", "yaw"]   # metres in habitat's frame (y up), yaw in degrees about +y (0 = facing -z)


@dataclass
class ProtocolConfig:
    """Defaults are the paper's collector: habitat-lab's default simulator config (0.25 m step, 10 degree
    turns, HFOV 90, RGB sensor at 1.25 m) with its AGENT_0.RADIUS = 0.01 override. That radius differs from
    habitat-sim's default 0.1, so habitat-sim 0.2.1 replaces the scene's baked navmesh (compute_navmesh.py:
    height 1.4 m, climb 0.5 m, slope 60 degrees) by one rebuilt with Recast's defaults and the agent's
    radius and height (simulator.py _config_pathfinder): height 1.5 m, radius 0.01 m, climb 0.2 m, slope 45."""
    length: int = 300                 # frames per episode
    resolution: int = 128             # square RGB sensor, rendered at this size (no resize)
    hfov: float = 90.0                # degrees
    sensor_height: float = 1.25       # metres above the agent's feet (habitat-lab RGB_SENSOR.POSITION)
    forward_step: float = 0.25        # metres
    turn_angle: float = 10.0          # degrees
    agent_height: float = 1.5         # the navmesh habitat-sim rebuilt for the collector's agent
    agent_radius: float = 0.01
    max_climb: float = 0.2
    max_slope: float = 45.0
    success_distance: float = 0.2     # the follower's goal radius
    min_goal_dist: float = 1.0        # geodesic metres
    max_goal_dist: float = 15.0
    min_geo_ratio: float = 1.0        # geodesic / euclidean; 1.1 is habitat's pointnav filter, the paper skips it
    goal_candidates: int = 100        # random navigable points drawn per new goal
    goal_farthest: int = 50           # the goal is drawn among this many farthest valid candidates
    same_floor_prob: float = 0.75     # chance a leg keeps |dy| <= same_floor_dy
    same_floor_dy: float = 0.5
    revisit_points: int = 8           # once this many points are known, goals are revisits
    max_leg_steps: int = 500          # habitat's get_action_shortest_path cap
    max_attempts: int = 10            # redraws of a discarded episode (same scene, next attempt seed)
    skip: int = 1                     # unrecorded actions before frame 0; 1 = the collector (start view not stored)

    def __post_init__(self):
        check_at_least(dataclasses.asdict(self), {name: 1 for name in (
            "length", "resolution", "goal_candidates", "goal_farthest", "revisit_points", "max_leg_steps",
            "max_attempts")} | {"skip": 0})
        for name in ("forward_step", "turn_angle", "agent_height", "success_distance", "hfov"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.hfov < 180:
            raise ValueError(f"hfov must be in (0, 180) degrees, got {self.hfov}")
        if not 0 <= self.min_goal_dist < self.max_goal_dist:
            raise ValueError(f"need 0 <= min_goal_dist < max_goal_dist, got {self.min_goal_dist}, {self.max_goal_dist}")
        if self.agent_radius < 0 or self.max_climb < 0 or not 0 < self.max_slope < 90:
            raise ValueError("agent_radius and max_climb must be >= 0 and max_slope in (0, 90) degrees")
        if self.revisit_points < 2:
            raise ValueError(f"revisit_points must be >= 2 (start and one goal), got {self.revisit_points}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ProtocolConfig":
        return strict_from_json(cls, d, "habitat protocol")


class NavWorld(Protocol):
    """What the policy asks of a backend's navigation layer (habitat_sim's pathfinder + greedy follower)."""

    def agent_position(self) -> np.ndarray:
        """(3,) float64, the agent's feet."""

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """(3,) a uniformly random navigable point (area-weighted)."""

    def geodesic_distances(self, source: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(K,) shortest-path metres from `source` to each of `points` (K, 3); inf where unreachable."""

    def next_action(self, goal: np.ndarray) -> int:
        """The greedy geodesic follower's next action id toward `goal`; STOP once within success distance
        or when no path exists (habitat-lab's ShortestPathFollower with stop_on_error)."""


def yaw_forward(yaw_deg: float) -> np.ndarray:
    """Unit (x, z) direction an agent with this yaw faces (habitat: yaw 0 faces -z, turn_left adds yaw)."""
    a = np.deg2rad(yaw_deg)
    return np.array([-np.sin(a), -np.cos(a)])


def wrap_yaw(yaw_deg: float) -> float:
    return float((yaw_deg + 180.0) % 360.0 - 180.0)


def sample_start(world: NavWorld, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A random navigable start and a uniform heading, both from `rng`."""
    return np.asarray(world.random_point(rng), np.float64), float(rng.uniform(0.0, 360.0))


def pick_goal(world: NavWorld, source: np.ndarray, rng: np.random.Generator, cfg: ProtocolConfig) -> np.ndarray:
    """Draw candidates, keep those at geodesic [min, max] (same floor with probability same_floor_prob,
    optional geodesic/euclidean ratio), pick uniformly among the `goal_farthest` farthest."""
    same_floor = rng.random() < cfg.same_floor_prob
    cands = np.stack([np.asarray(world.random_point(rng), np.float64) for _ in range(cfg.goal_candidates)])
    if same_floor:
        cands = cands[np.abs(cands[:, 1] - source[1]) <= cfg.same_floor_dy]
    if len(cands) == 0:
        raise EpisodeDiscarded("no goal candidate on the start's floor")
    geo = np.asarray(world.geodesic_distances(source, cands), np.float64)
    ok = np.isfinite(geo) & (geo >= cfg.min_goal_dist) & (geo <= cfg.max_goal_dist)
    if cfg.min_geo_ratio > 1.0:
        euc = np.linalg.norm(cands - source, axis=1)
        ok &= geo >= cfg.min_geo_ratio * np.maximum(euc, 1e-9)
    if not ok.any():
        raise EpisodeDiscarded(f"no goal {cfg.min_goal_dist}-{cfg.max_goal_dist} m away among {len(cands)} candidates")
    cands, geo = cands[ok], geo[ok]
    order = np.argsort(geo, kind="stable")[-cfg.goal_farthest:]
    return cands[order[rng.integers(len(order))]]


class GoalTourPolicy:
    """The paper's trajectory: legs to new goals until `revisit_points` points are known, then revisits.
    One instance per episode; every draw comes from its own generator."""

    def __init__(self, cfg: ProtocolConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.points: list[np.ndarray] = []
        self.goal: np.ndarray | None = None
        self.leg_steps = 0
        self.legs = 0

    def _new_leg(self, world: NavWorld) -> None:
        here = np.asarray(world.agent_position(), np.float64)
        if not self.points:
            self.points.append(here)
        if len(self.points) >= self.cfg.revisit_points:
            self.goal = self.points[int(self.rng.integers(len(self.points)))]
        else:
            self.goal = pick_goal(world, here, self.rng, self.cfg)
            self.points.append(self.goal)
        self.leg_steps = 0
        self.legs += 1

    def __call__(self, t: int, obs: np.ndarray, pose: np.ndarray, backend: Backend) -> int:
        world: NavWorld = backend.layout()
        # Legs that end at once (a revisit of the point the agent stands on) produce no action: bounded retries.
        for _ in range(64):
            if self.goal is None or self.leg_steps >= self.cfg.max_leg_steps:
                self._new_leg(world)
            action = int(world.next_action(self.goal))
            if action == STOP:
                self.goal = None
                continue
            self.leg_steps += 1
            return action
        raise EpisodeDiscarded(f"64 legs in a row ended without an action at step {t}")


def protocol_from_params(params: dict[str, Any]) -> ProtocolConfig:
    return ProtocolConfig.from_json(params["protocol"])
