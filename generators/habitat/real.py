"""The real backend: habitat-sim (conda install habitat-sim -c conda-forge -c aihabitat), driven through its
documented Python API with the paper's settings: one pinhole RGB CameraSensorSpec, move_forward / turn_left /
turn_right ActionSpecs, a navmesh recomputed for the agent's height and radius when the loaded one differs,
pathfinder random points and ShortestPath geodesics, and the simulator's GreedyGeodesicFollower."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..seeds import rng as seeded_rng
from .protocol import MOVE_FORWARD, STOP, TURN_LEFT, TURN_RIGHT, protocol_from_params, sample_start, wrap_yaw
from .scenes import SceneUnusable, scene_to_load

SENSOR = "color_sensor"
AGENT_HEIGHT = 1.5   # habitat-lab's AGENT_0.HEIGHT (the body; the navmesh uses the protocol's agent_height)
_NAMES = {MOVE_FORWARD: "move_forward", TURN_LEFT: "turn_left", TURN_RIGHT: "turn_right"}


def yaw_from_coeffs(q) -> float:
    """Heading in degrees of a habitat rotation given as coeffs [x, y, z, w]: the angle about +y of the
    rotated forward axis -z (0 = facing -z, positive = turned left)."""
    x, y, z, w = (float(c) for c in q)
    return math.degrees(math.atan2(2 * (x * z + w * y), 1 - 2 * (x * x + y * y)))


class HabitatSimBackend:
    """Backend protocol over habitat_sim.Simulator; `layout()` is the NavWorld the protocol drives."""

    name = "habitat_sim"

    def __init__(self, params: dict[str, Any]):
        import habitat_sim
        from habitat_sim.utils.common import quat_from_coeffs, quat_to_coeffs

        self.hs = habitat_sim
        self.quat_from_coeffs, self.quat_to_coeffs = quat_from_coeffs, quat_to_coeffs
        self.version = str(getattr(habitat_sim, "__version__", "unknown"))
        self.cfg = protocol_from_params(params)
        self.scenes: list[str] = list(params["scenes"])
        self.dataset = params.get("scene_dataset_config") or ""
        self.sim = None
        self.scene_index: int | None = None
        self.unusable: dict[int, str] = {}

    # -------------------------------------------------------------------------- configuration
    def navmesh_settings(self):
        """Recast settings of the collector's navmesh: habitat's defaults with the agent's height, radius, max
        climb and max slope replaced (by default the navmesh habitat-sim 0.2.1 rebuilt for the collector's
        0.01 m agent: ProtocolConfig). A scene's own .navmesh built with these is kept."""
        s = self.hs.nav.NavMeshSettings()
        s.set_defaults()
        s.agent_height = self.cfg.agent_height
        s.agent_radius = self.cfg.agent_radius
        s.agent_max_climb = self.cfg.max_climb
        s.agent_max_slope = self.cfg.max_slope
        return s

    def configuration(self, scene: str):
        hs, c = self.hs, self.cfg
        sim_cfg = hs.SimulatorConfiguration()
        sim_cfg.scene_id = scene
        if self.dataset:
            sim_cfg.scene_dataset_config_file = self.dataset
        sim_cfg.enable_physics = False
        sim_cfg.allow_sliding = True            # habitat-lab's HABITAT_SIM_V0.ALLOW_SLIDING default
        cam = hs.CameraSensorSpec()
        cam.uuid = SENSOR
        cam.sensor_type = hs.SensorType.COLOR
        cam.sensor_subtype = hs.SensorSubType.PINHOLE
        cam.resolution = [c.resolution, c.resolution]
        cam.position = [0.0, c.sensor_height, 0.0]
        cam.hfov = c.hfov
        agent = hs.agent.AgentConfiguration()
        agent.height, agent.radius = AGENT_HEIGHT, c.agent_radius
        agent.sensor_specifications = [cam]
        agent.action_space = {
            "move_forward": hs.agent.ActionSpec("move_forward", hs.agent.ActuationSpec(amount=c.forward_step)),
            "turn_left": hs.agent.ActionSpec("turn_left", hs.agent.ActuationSpec(amount=c.turn_angle)),
            "turn_right": hs.agent.ActionSpec("turn_right", hs.agent.ActuationSpec(amount=c.turn_angle)),
        }
        settings = self.navmesh_settings()
        if hasattr(sim_cfg, "navmesh_settings"):      # habitat-sim >= 0.3 builds it on (re)configure
            sim_cfg.navmesh_settings = settings
        return hs.Configuration(sim_cfg, [agent]), settings

    def load_scene(self, index: int) -> None:
        """Make scene `index` current (reconfiguring the simulator only on a change)."""
        path = scene_to_load(index, self.scene_index, self.scenes, self.unusable)
        if path is None:
            return
        config, settings = self.configuration(path)
        try:
            if self.sim is None:
                self.sim = self.hs.Simulator(config)
            else:
                self.sim.reconfigure(config)
            pf = self.sim.pathfinder
            # Older habitat-sim (the collector's 0.2.1) cannot report a loaded navmesh's settings: rebuild then.
            loaded = getattr(pf, "nav_mesh_settings", None) if pf.is_loaded else None
            if loaded is None or loaded != settings:
                self.sim.recompute_navmesh(pf, settings)
            if not pf.is_loaded or not pf.navigable_area > 0:
                raise SceneUnusable(f"{path}: no navigable area for a {self.cfg.agent_height} m tall agent")
        except SceneUnusable as e:
            self.unusable[index] = str(e)
            self.scene_index = None
            raise
        except Exception as e:     # habitat-sim raises RuntimeError/ValueError/asserts for unloadable assets
            self.unusable[index] = f"habitat-sim cannot load {path}: {type(e).__name__}: {e}"
            self._close_sim()
            raise SceneUnusable(self.unusable[index]) from None
        self.scene_index = index
        self.agent = self.sim.get_agent(0)
        self.follower = self.sim.make_greedy_follower(0, self.cfg.success_distance, stop_key=STOP,
                                                      forward_key=MOVE_FORWARD, left_key=TURN_LEFT,
                                                      right_key=TURN_RIGHT)

    # -------------------------------------------------------------------------------- Backend
    def reset(self, seed: int, scene: int = 0, **_: Any) -> np.ndarray:
        self.load_scene(int(scene))
        self.sim.seed(int(seed) & 0x7FFFFFFF)          # the pathfinder's random points come from this
        pos, yaw = sample_start(self, seeded_rng(seed, "start"))
        state = self.hs.AgentState()
        state.position = np.asarray(pos, np.float32)
        half = math.radians(yaw) / 2
        state.rotation = self.quat_from_coeffs(np.array([0.0, math.sin(half), 0.0, math.cos(half)]))
        self.agent.set_state(state)
        self.follower.reset()
        return self._rgb(self.sim.get_sensor_observations())

    def step(self, action: int) -> np.ndarray:
        a = int(action)
        if a == STOP:
            return self._rgb(self.sim.get_sensor_observations())
        if a not in _NAMES:
            raise ValueError(f"action {a} is not used by the habitat protocol (0 stop, 1 forward, 2 left, 3 right)")
        return self._rgb(self.sim.step(_NAMES[a]))

    def pose(self) -> np.ndarray:
        state = self.agent.get_state()
        yaw = yaw_from_coeffs(self.quat_to_coeffs(state.rotation))
        p = np.asarray(state.position, np.float64)
        return np.array([p[0], p[1], p[2], wrap_yaw(yaw)], np.float32)

    def layout(self) -> "HabitatSimBackend":
        return self

    def close(self) -> None:
        self._close_sim()

    def _close_sim(self) -> None:
        if self.sim is not None:
            self.sim.close()
        self.sim, self.scene_index = None, None

    @staticmethod
    def _rgb(obs) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(obs[SENSOR])[..., :3], np.uint8)

    # ------------------------------------------------------------------------------- NavWorld
    def agent_position(self) -> np.ndarray:
        return np.asarray(self.agent.get_state().position, np.float64)

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """habitat's area-weighted sample (seeded per episode in reset; `rng` is not used here)."""
        return np.asarray(self.sim.pathfinder.get_random_navigable_point(), np.float64)

    def geodesic_distances(self, source: np.ndarray, points: np.ndarray) -> np.ndarray:
        out = np.full(len(points), np.inf)
        for i, p in enumerate(np.asarray(points, np.float32)):
            path = self.hs.nav.ShortestPath()
            path.requested_start = np.asarray(source, np.float32)
            path.requested_end = p
            if self.sim.pathfinder.find_path(path):
                out[i] = float(path.geodesic_distance)
        return out

    def next_action(self, goal: np.ndarray) -> int:
        try:
            action = self.follower.next_action_along(np.asarray(goal, np.float32))
        except self.hs.errors.GreedyFollowerError:
            return STOP     # habitat-lab's ShortestPathFollower(stop_on_error=True)
        return STOP if action is None else int(action)
