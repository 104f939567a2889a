"""habitat_sim.Simulator, SimulatorConfiguration, Configuration."""
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np

from .agent import Agent, AgentState, _yaw
from .nav import GreedyGeodesicFollower, NavMeshSettings, PathFinder
from .sensor import SensorType


class SimulatorConfiguration:
    def __init__(self):
        self.scene_id = "NONE"
        self.scene_dataset_config_file = "default"
        self.random_seed = 0
        self.default_agent_id = 0
        self.gpu_device_id = 0
        self.allow_sliding = True
        self.enable_physics = False
        self.create_renderer = False
        self.navmesh_settings = None


@dataclass
class Configuration:
    sim_cfg: SimulatorConfiguration
    agents: List[Any]
    metadata_mediator: Optional[Any] = None
    enable_batch_renderer: bool = False


def _scene_bounds(path: str):
    """Floor bounds of a scene file in habitat's y-up frame (z-up for .glb/.ply)."""
    import trimesh
    mesh = trimesh.load(path, force="mesh")
    v = np.asarray(mesh.vertices, float)
    if path.lower().endswith((".glb", ".ply")):
        v = np.stack([v[:, 0], v[:, 2], -v[:, 1]], 1)
    return v.min(0), v.max(0)


class Simulator:
    def __init__(self, config: Configuration):
        self._closed = False
        self.pathfinder = PathFinder()
        self.reconfigure(config)

    def reconfigure(self, config: Configuration) -> None:
        if len(config.agents) == 0:
            raise RuntimeError("Config has no agents specified.  Must specify at least 1 agent")
        scene = config.sim_cfg.scene_id
        if not os.path.isfile(scene):
            raise RuntimeError(f"Scene file {scene} not found")
        self.config = config
        self._bounds = _scene_bounds(scene)
        self.pathfinder = PathFinder()
        settings = config.sim_cfg.navmesh_settings
        if settings is None:
            # No settings given: habitat builds a navmesh for the default agent's body (Recast defaults
            # otherwise), which our adapter must notice and rebuild with the protocol's settings.
            settings = NavMeshSettings()
            settings.agent_height = config.agents[0].height
            settings.agent_radius = config.agents[0].radius
        if "nonav" not in os.path.basename(scene):
            self.pathfinder.build(self._bounds, settings)
        self.agents = [Agent(cfg, self.step_filter) for cfg in config.agents]
        self._sensors = {s.uuid: s for s in config.agents[0].sensor_specifications}

    def recompute_navmesh(self, pathfinder: PathFinder, navmesh_settings: NavMeshSettings) -> bool:
        if "nonav" in os.path.basename(self.config.sim_cfg.scene_id):
            return False
        return pathfinder.build(self._bounds, navmesh_settings)

    def seed(self, new_seed: int) -> None:
        self.pathfinder.seed(new_seed)

    def get_agent(self, agent_id: int) -> Agent:
        return self.agents[agent_id]

    def initialize_agent(self, agent_id: int, initial_state: Optional[AgentState] = None) -> Agent:
        agent = self.get_agent(agent_id)
        agent.set_state(initial_state or AgentState(), is_initial=True)
        return agent

    def step_filter(self, start_pos, end_pos):
        if not self.pathfinder.is_loaded:
            return end_pos
        if self.config.sim_cfg.allow_sliding:
            return self.pathfinder.try_step(start_pos, end_pos)
        return self.pathfinder.try_step_no_sliding(start_pos, end_pos)

    def get_sensor_observations(self, agent_ids=0):
        state = self.agents[0].get_state()
        obs = {}
        for uuid, spec in self._sensors.items():
            h, w = spec.resolution
            if spec.sensor_type != SensorType.COLOR:
                continue
            # A colour per pose, with a horizontal ramp so the frame is not flat.
            p, yaw = np.asarray(state.position, float), _yaw(state.rotation)
            base = np.array([p[0] * 37.0, p[2] * 53.0, yaw * 41.0]) % 200
            ramp = np.linspace(0, 55, w)[None, :, None]
            img = np.zeros((h, w, 4), np.uint8)
            img[..., :3] = (base[None, None, :] + ramp).astype(np.uint8)
            img[..., 3] = 255
            obs[uuid] = img
        return obs

    def step(self, action, dt: float = 1.0 / 60.0):
        collided = self.agents[0].act(action)
        obs = self.get_sensor_observations()
        obs["collided"] = collided
        return obs

    def make_greedy_follower(self, agent_id: Optional[int] = None, goal_radius: float = None, *, stop_key=None,
                             forward_key=None, left_key=None, right_key=None, fix_thrashing: bool = True,
                             thrashing_threshold: int = 16):
        return GreedyGeodesicFollower(self.pathfinder, self.get_agent(0 if agent_id is None else agent_id),
                                      goal_radius, stop_key=stop_key, forward_key=forward_key, left_key=left_key,
                                      right_key=right_key, fix_thrashing=fix_thrashing,
                                      thrashing_threshold=thrashing_threshold)

    def close(self, destroy: bool = True) -> None:
        self._closed = True
