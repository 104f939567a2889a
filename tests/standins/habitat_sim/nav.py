"""habitat_sim.nav: NavMeshSettings, ShortestPath, PathFinder, GreedyGeodesicFollower."""
import enum
import math

import numpy as np

from . import errors
from .agent import _yaw


class NavMeshSettings:
    """The pybind11 class's documented fields and set_defaults() values (Recast's): assigning a field that
    does not exist raises AttributeError as on the real object; == compares every field within 1e-5."""
    _FLOATS = ("cell_size", "cell_height", "agent_height", "agent_radius", "agent_max_climb", "agent_max_slope",
               "region_min_size", "region_merge_size", "edge_max_len", "edge_max_error", "verts_per_poly",
               "detail_sample_dist", "detail_sample_max_error")
    _BOOLS = ("filter_low_hanging_obstacles", "filter_ledge_spans", "filter_walkable_low_height_spans",
              "include_static_objects")
    __slots__ = _FLOATS + _BOOLS

    def __init__(self):
        self.set_defaults()

    def set_defaults(self):
        self.cell_size, self.cell_height = 0.05, 0.2
        self.agent_height, self.agent_radius = 1.5, 0.1
        self.agent_max_climb, self.agent_max_slope = 0.2, 45.0
        self.region_min_size, self.region_merge_size = 20.0, 20.0
        self.edge_max_len, self.edge_max_error, self.verts_per_poly = 12.0, 1.3, 6.0
        self.detail_sample_dist, self.detail_sample_max_error = 6.0, 1.0
        self.filter_low_hanging_obstacles = self.filter_ledge_spans = self.filter_walkable_low_height_spans = True
        self.include_static_objects = False

    def __eq__(self, other):
        return isinstance(other, NavMeshSettings) and all(
            abs(float(getattr(self, k)) - float(getattr(other, k))) < 1e-5 for k in self._FLOATS) and all(
            bool(getattr(self, k)) == bool(getattr(other, k)) for k in self._BOOLS)

    def __ne__(self, other):
        return not self == other


class ShortestPath:
    def __init__(self):
        self.requested_start = np.zeros(3)
        self.requested_end = np.zeros(3)
        self.points = []
        self.geodesic_distance = float("inf")


class PathFinder:
    """Navmesh = the rectangle [x0, x1] x [z0, z1] at floor height y (eroded by the agent radius)."""

    def __init__(self):
        self.is_loaded = False
        self.nav_mesh_settings = None
        self._rect = None
        self._rng = np.random.default_rng(0)

    def build(self, bounds, settings: NavMeshSettings) -> bool:
        (x0, y0, z0), (x1, _, z1) = bounds
        r = settings.agent_radius
        if x1 - x0 <= 2 * r or z1 - z0 <= 2 * r:
            self.is_loaded, self._rect = False, None
            return False
        self._rect = (x0 + r, z0 + r, x1 - r, z1 - r, y0)
        self.is_loaded = True
        self.nav_mesh_settings = NavMeshSettings()          # a copy, as the real property returns
        for k in NavMeshSettings.__slots__:
            setattr(self.nav_mesh_settings, k, getattr(settings, k))
        return True

    @property
    def navigable_area(self) -> float:
        if not self.is_loaded:
            return 0.0
        x0, z0, x1, z1, _ = self._rect
        return (x1 - x0) * (z1 - z0)

    def seed(self, new_seed: int) -> None:
        self._rng = np.random.default_rng(int(new_seed))

    def get_random_navigable_point(self) -> np.ndarray:
        x0, z0, x1, z1, y = self._rect
        return np.array([self._rng.uniform(x0, x1), y, self._rng.uniform(z0, z1)], np.float32)

    def is_navigable(self, p) -> bool:
        x0, z0, x1, z1, y = self._rect
        return x0 <= p[0] <= x1 and z0 <= p[2] <= z1 and abs(p[1] - y) < 0.5

    def find_path(self, path: ShortestPath) -> bool:
        a, b = np.asarray(path.requested_start, float), np.asarray(path.requested_end, float)
        if not (self.is_loaded and self.is_navigable(a) and self.is_navigable(b)):
            path.geodesic_distance, path.points = float("inf"), []
            return False
        path.points = [a, b]
        path.geodesic_distance = float(np.linalg.norm(b - a))
        return True

    def try_step(self, start, end) -> np.ndarray:
        x0, z0, x1, z1, y = self._rect
        return np.array([min(max(end[0], x0), x1), y, min(max(end[2], z0), z1)])

    def try_step_no_sliding(self, start, end) -> np.ndarray:
        return end if self.is_navigable(end) else np.asarray(start, float)

    def distance_to_closest_obstacle(self, p, max_search_radius: float = 2.0) -> float:
        x0, z0, x1, z1, _ = self._rect
        return min(p[0] - x0, x1 - p[0], p[2] - z0, z1 - p[2], max_search_radius)


class GreedyFollowerCodes(enum.IntEnum):
    ERROR = -2
    STOP = -1
    FORWARD = 0
    LEFT = 1
    RIGHT = 2


class GreedyGeodesicFollower:
    """Turn toward the goal until within half a turn step, then move forward; stop within goal_radius."""

    def __init__(self, pathfinder, agent, goal_radius=None, *, stop_key=None, forward_key=None, left_key=None,
                 right_key=None, fix_thrashing=True, thrashing_threshold=16):
        self.pathfinder, self.agent = pathfinder, agent
        space = agent.agent_config.action_space

        def find(name):
            keys = [k for k, v in space.items() if v.name == name]
            assert len(keys) == 1, f"Could not find an action spec corresponding to {name}"
            return keys[0], space[keys[0]].actuation

        fk, self.forward_spec = find("move_forward")
        lk, self.left_spec = find("turn_left")
        rk, self.right_spec = find("turn_right")
        self.action_mapping = {GreedyFollowerCodes.STOP: stop_key,
                               GreedyFollowerCodes.FORWARD: fk if forward_key is None else forward_key,
                               GreedyFollowerCodes.LEFT: lk if left_key is None else left_key,
                               GreedyFollowerCodes.RIGHT: rk if right_key is None else right_key}
        self.goal_radius = 0.75 * self.forward_spec.amount if goal_radius is None else goal_radius
        self.last_goal = None

    def _code(self, pos, yaw, goal):
        path = ShortestPath()
        path.requested_start, path.requested_end = pos, goal
        if not self.pathfinder.find_path(path):
            return GreedyFollowerCodes.ERROR
        if path.geodesic_distance < self.goal_radius:
            return GreedyFollowerCodes.STOP
        d = np.asarray(goal, float) - np.asarray(pos, float)
        want = math.atan2(-d[0], -d[2])
        diff = (want - yaw + math.pi) % (2 * math.pi) - math.pi
        half = math.radians(self.left_spec.amount) / 2
        if abs(diff) <= half:
            return GreedyFollowerCodes.FORWARD
        return GreedyFollowerCodes.LEFT if diff > 0 else GreedyFollowerCodes.RIGHT

    def next_action_along(self, goal_pos):
        if self.last_goal is None or not np.allclose(goal_pos, self.last_goal):
            self.reset()
            self.last_goal = np.asarray(goal_pos, float)
        state = self.agent.state
        code = self._code(state.position, _yaw(state.rotation), goal_pos)
        if code == GreedyFollowerCodes.ERROR:
            raise errors.GreedyFollowerError()
        return self.action_mapping[code]

    def find_path(self, goal_pos):
        self.reset()
        state = self.agent.state
        pos, yaw, out = np.asarray(state.position, float), _yaw(state.rotation), []
        for _ in range(5000):
            code = self._code(pos, yaw, goal_pos)
            if code == GreedyFollowerCodes.ERROR:
                raise errors.GreedyFollowerError()
            out.append(self.action_mapping[code])
            if code == GreedyFollowerCodes.STOP:
                return out
            name = {GreedyFollowerCodes.FORWARD: "move_forward", GreedyFollowerCodes.LEFT: "turn_left",
                    GreedyFollowerCodes.RIGHT: "turn_right"}[code]
            spec = {"move_forward": self.forward_spec, "turn_left": self.left_spec, "turn_right": self.right_spec}[name]
            pos, yaw, _ = self.agent.controls(pos, yaw, name, spec.amount)
        raise errors.GreedyFollowerError()

    def reset(self):
        self.last_goal = None
