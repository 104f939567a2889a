"""The pip-only Habitat backend: trimesh scene loading, a voxel navigation grid (navgrid.py) in place of
habitat's Recast navmesh, moderngl rendering, and habitat-sim's GreedyGeodesicFollower planner re-implemented
on that grid (same motion primitives, reward terms and thrashing fix; see esp/nav/GreedyFollower.cpp)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..seeds import rng as seeded_rng
from .navgrid import NavGrid, NavSettings, build_navgrid
from .protocol import MOVE_FORWARD, STOP, TURN_LEFT, TURN_RIGHT, protocol_from_params, sample_start, wrap_yaw, yaw_forward
from .scenes import SceneUnusable, load_scene_mesh, scene_to_load, simplify_mesh

# The follower's internal codes, as habitat's GreedyFollowerCodes.
_ERROR, _STOP, _FORWARD, _LEFT, _RIGHT = -2, -1, 0, 1, 2
_TO_ACTION = {_STOP: STOP, _ERROR: STOP, _FORWARD: MOVE_FORWARD, _LEFT: TURN_LEFT, _RIGHT: TURN_RIGHT}


class Agent:
    """Position on the grid (node under the feet, exact x/y/z) and heading; moves like habitat's
    default controls filtered by pathfinder.try_step (sliding along walls)."""

    def __init__(self, grid: NavGrid, forward_step: float, turn_angle: float):
        self.grid, self.forward_step, self.turn_angle = grid, forward_step, turn_angle

    def forward(self, node: int, pos: np.ndarray, yaw: float) -> tuple[int, np.ndarray, bool]:
        d = yaw_forward(yaw) * self.forward_step
        target = np.array([pos[0] + d[0], pos[1], pos[2] + d[1]])
        new_node, new_pos = self.grid.move(node, pos, target)
        # habitat counts a collision when the filtered move is shorter than the requested one
        moved = (new_pos[0] - pos[0]) ** 2 + (new_pos[2] - pos[2]) ** 2
        return new_node, new_pos, moved + 1e-5 < self.forward_step ** 2


class GreedyFollower:
    """habitat_sim GreedyGeodesicFollower on a NavGrid: pick among primitives [turn]*n + [forward]
    (n up to a half turn, both sides) the one with the best reward: geodesic progress per step length,
    minus 0.0125 per turn, 0.25 for a collision and 0.05 for ending within 0.2 m of an obstacle."""

    CLOSE_TO_OBSTACLE = 0.2
    COLLISION_COST = 0.25
    GOOD_ENOUGH = 0.99

    def __init__(self, agent: Agent, goal_radius: float, fix_thrashing: bool = True, thrashing_threshold: int = 16):
        self.agent, self.goal_radius = agent, goal_radius
        self.fix_thrashing, self.thrashing_threshold = fix_thrashing, thrashing_threshold
        self.reset()

    def reset(self) -> None:
        self.actions: list[int] = []
        self.thrashing_actions: list[int] = []
        self.last_goal: np.ndarray | None = None
        self.field = None

    def _reward(self, node, pos, yaw, geo, prim_len) -> float:
        new_node, new_pos, collided = self.agent.forward(node, pos, yaw)
        after = self.field.at(new_pos, new_node)
        near = self.agent.grid.clearance[new_node] < self.CLOSE_TO_OBSTACLE
        return ((geo - after) / self.agent.forward_step - 0.0125 * prim_len
                - (self.COLLISION_COST if collided else 0.0) - (0.05 if near else 0.0))

    def _best_primitive(self, node, pos, yaw) -> list[int]:
        geo = self.field.at(pos, node)
        if not math.isfinite(geo):
            return [_ERROR]
        if geo < self.goal_radius:
            return [_STOP]
        best_reward, best = -self.COLLISION_COST, []
        left, right = [], []
        yaw_l = yaw_r = yaw
        turn = math.radians(self.agent.turn_angle)
        angle = 0.0
        while angle < math.pi:
            for prim, y in ((left, yaw_l), (right, yaw_r)):
                r = self._reward(node, pos, y, geo, len(prim))
                if r > best_reward:
                    best_reward, best = r, prim + [_FORWARD]
            if best_reward > self.GOOD_ENOUGH:
                break
            left.append(_LEFT)
            right.append(_RIGHT)
            yaw_l += self.agent.turn_angle
            yaw_r -= self.agent.turn_angle
            angle += turn
        return best

    def _thrashing(self) -> bool:
        acts = self.actions
        if len(acts) < self.thrashing_threshold:
            return False
        last = acts[-1]
        thrashing = last in (_LEFT, _RIGHT)
        i = 2
        while i < self.thrashing_threshold + 1 and thrashing:
            prev = acts[-i]
            thrashing = (prev == _RIGHT and last == _LEFT) or (prev == _LEFT and last == _RIGHT)
            last = prev
            i += 1
        return thrashing

    def next_action(self, node: int, pos: np.ndarray, yaw: float, goal: np.ndarray) -> int:
        """Dataset action id toward `goal`; STOP within goal_radius or when the goal is unreachable."""
        if self.last_goal is None or not np.allclose(goal, self.last_goal):
            self.reset()
            self.last_goal = np.array(goal, float)
            self.field = self.agent.grid.field(self.last_goal)
        if self.fix_thrashing and self.thrashing_actions:
            code = self.thrashing_actions.pop()
        else:
            prim = self._best_primitive(node, pos, yaw)
            if not prim:
                code = _ERROR
            elif self.fix_thrashing and self._thrashing():
                self.thrashing_actions = prim[::-1]
                code = self.thrashing_actions.pop()
            else:
                code = prim[0]
        self.actions.append(code)
        return _TO_ACTION[code]


class EmbeddedBackend:
    """Backend protocol (generators.backend.Backend) over scene files; `layout()` is the NavWorld."""

    name = "embedded"
    version = "2"   # 2: the collector's effective navmesh (climb 0.2 m, slope 45, height 1.5 m; was 0.5 / 60 / 1.4)

    def __init__(self, params: dict[str, Any]):
        self.cfg = protocol_from_params(params)
        self.scenes: list[str] = list(params["scenes"])
        self.up = params.get("up_axis", "auto")
        self.shading = params.get("shading", "flat")
        self.render_simplify = float(params.get("render_simplify", 0.0))
        self.nav = NavSettings(cell_size=float(params.get("cell_size", 0.05)), agent_height=self.cfg.agent_height,
                               agent_radius=self.cfg.agent_radius, max_climb=self.cfg.max_climb,
                               max_slope=self.cfg.max_slope)
        self.renderer = None
        self.scene_index: int | None = None
        self.grid: NavGrid | None = None
        self.unusable: dict[int, str] = {}
        self.node, self.pos, self.yaw = -1, np.zeros(3), 0.0

    # ---------------------------------------------------------------------------------- scenes
    def load_scene(self, index: int) -> None:
        """Make scene `index` current (no-op if it already is). SceneUnusable if it cannot be used."""
        path = scene_to_load(index, self.scene_index, self.scenes, self.unusable)
        if path is None:
            return
        try:
            mesh = load_scene_mesh(path, self.up)
            grid = build_navgrid(mesh.positions, mesh.faces, self.nav)
            if grid.size == 0:
                raise SceneUnusable(f"{path}: no navigable area for a {self.nav.agent_height} m tall agent")
        except SceneUnusable as e:
            self.unusable[index] = str(e)
            raise
        if self.renderer is None:
            from .render import Renderer
            r = self.cfg.resolution
            self.renderer = Renderer(r, r, self.cfg.hfov, shading=self.shading)
        self.renderer.load(simplify_mesh(mesh, self.render_simplify))      # navigation keeps the full mesh
        self.grid, self.scene_index = grid, index
        self.agent = Agent(grid, self.cfg.forward_step, self.cfg.turn_angle)
        self.follower = GreedyFollower(self.agent, self.cfg.success_distance)

    # --------------------------------------------------------------------------------- Backend
    def reset(self, seed: int, scene: int = 0, **_: Any) -> np.ndarray:
        self.load_scene(int(scene))
        pos, yaw = sample_start(self, seeded_rng(seed, "start"))
        self.node, self.pos, self.yaw = self.grid.locate(pos), pos, yaw
        self.follower.reset()
        return self._render()

    def step(self, action: int) -> np.ndarray:
        a = int(action)
        if a == MOVE_FORWARD:
            self.node, self.pos, _ = self.agent.forward(self.node, self.pos, self.yaw)
        elif a == TURN_LEFT:
            self.yaw += self.cfg.turn_angle
        elif a == TURN_RIGHT:
            self.yaw -= self.cfg.turn_angle
        elif a != STOP:
            raise ValueError(f"action {a} is not used by the habitat protocol (0 stop, 1 forward, 2 left, 3 right)")
        return self._render()

    def pose(self) -> np.ndarray:
        return np.array([self.pos[0], self.pos[1], self.pos[2], wrap_yaw(self.yaw)], np.float32)

    def layout(self) -> "EmbeddedBackend":
        return self

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self.scene_index, self.grid = None, None

    def _render(self) -> np.ndarray:
        eye = np.array([self.pos[0], self.pos[1] + self.cfg.sensor_height, self.pos[2]])
        return self.renderer.render(eye, self.yaw)

    # -------------------------------------------------------------------------------- NavWorld
    def agent_position(self) -> np.ndarray:
        return self.pos.copy()

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        return self.grid.random_point(rng)

    def geodesic_distances(self, source: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Geodesic metres from source; inf when unreachable or farther than max_goal_dist + 1 m (the
        search stops there: the protocol never uses longer ones)."""
        field = self.grid.field(np.asarray(source, float), limit=self.cfg.max_goal_dist + 1.0)
        return np.array([field.at(p) for p in np.asarray(points, float)])

    def next_action(self, goal: np.ndarray) -> int:
        return self.follower.next_action(self.node, self.pos, self.yaw, np.asarray(goal, float))
