"""The MineRL backend: the paper's "SimpleExplore" mission on real Minecraft (minerl 0.4 / 1.0).

The env spec subclasses MineRL's documented SimpleEmbodimentEnvSpec (an EnvSpec): keyboard
`forward` and `jump` plus `camera`, a world from BiomeGenerator for the swamp (force_reset: a new
world every episode), time of day frozen, mob spawning allowed, no rewards, no quit producers; it
observes `pov` and `location_stats` (x, y, z, yaw, pitch) for the pose. Actions are MineRL dicts built
from `env.action_space.noop()`. minerl is imported lazily: this module imports without it.
"""
from __future__ import annotations

import functools
from importlib import metadata

import numpy as np

from . import protocol as P

ENV_NAME = "SimpleExplore-v0"
ADAPTER_VERSION = "1"
_registered: set[str] = set()


def real_version() -> str:
    """minerl's version plus this adapter's: what the store records as backend_version."""
    try:
        v = metadata.version("minerl")
    except metadata.PackageNotFoundError:
        import minerl
        v = getattr(minerl, "__version__", "unknown")
    return f"minerl-{v}/adapter-{ADAPTER_VERSION}"


@functools.lru_cache(maxsize=None)
def simple_explore_class() -> type:
    """The SimpleExplore EnvSpec class (built on first use, since it subclasses a minerl class)."""
    from minerl.herobraine.env_specs.simple_embodiment import SimpleEmbodimentEnvSpec
    from minerl.herobraine.hero import handlers
    from minerl.herobraine.hero.mc import INVERSE_KEYMAP

    class SimpleExplore(SimpleEmbodimentEnvSpec):
        """Walk and look around a single-biome world; nothing ends the episode but the simulator."""

        def __init__(self, resolution=(P.RESOLUTION, P.RESOLUTION), biome_id=P.SWAMP_BIOME_ID, name=ENV_NAME):
            self.biome_id = int(biome_id)      # read by create_server_world_generators during super().__init__
            super().__init__(name, resolution=tuple(resolution))

        def create_observables(self):
            return [handlers.POVObservation(self.resolution), handlers.ObservationFromCurrentLocation()]

        def create_actionables(self):
            return [handlers.KeybasedCommandAction(k, INVERSE_KEYMAP[k]) for k in ("forward", "jump")] + [
                handlers.CameraAction()]

        def create_rewardables(self):
            return []

        def create_agent_start(self):
            return []

        def create_agent_handlers(self):
            return []

        def create_monitors(self):
            return []

        def create_server_world_generators(self):
            return [handlers.BiomeGenerator(self.biome_id, force_reset=True)]

        def create_server_quit_producers(self):
            return []

        def create_server_decorators(self):
            return []

        def create_server_initial_conditions(self):
            return [handlers.TimeInitialCondition(allow_passage_of_time=False),
                    handlers.SpawningInitialCondition(allow_spawning=True)]

        def determine_success_from_rewards(self, rewards):
            return False

        def is_from_folder(self, folder):
            return False

        def get_docstring(self):
            return "TECO Minecraft-200k collection: random forward/turn walks through one biome."

    return SimpleExplore


def make_env_spec(resolution: int = P.RESOLUTION, biome_id: int = P.SWAMP_BIOME_ID):
    """A SimpleExplore spec, registered with gym under ENV_NAME once per process."""
    spec = simple_explore_class()(resolution=(resolution, resolution), biome_id=biome_id)
    if spec.name not in _registered:
        spec.register()
        _registered.add(spec.name)
    return spec


def action_dict(noop: dict, action: int, turn_degrees: float = P.TURN_DEGREES) -> dict:
    """MineRL action for dataset action id `action`, starting from the env's no-op."""
    a = dict(noop)
    a["camera"] = np.zeros(2, np.float32)
    if action == P.FORWARD:
        a["forward"], a["jump"] = 1, 1
    elif action == P.LEFT:
        a["camera"] = np.array([0.0, -turn_degrees], np.float32)     # [pitch, yaw] deltas in degrees
    elif action == P.RIGHT:
        a["camera"] = np.array([0.0, turn_degrees], np.float32)
    elif action != P.NOOP:
        raise ValueError(f"unknown Minecraft action id {action}: expected 0..{len(P.ACTION_NAMES) - 1}")
    return a


class MineRLBackend:
    """Backend over a MineRL env; `done` is the simulator's early end of the last step."""

    name = "minerl"

    def __init__(self, resolution: int = P.RESOLUTION, biome_id: int = P.SWAMP_BIOME_ID,
                 turn_degrees: float = P.TURN_DEGREES):
        self.version = real_version()
        self.turn_degrees = float(turn_degrees)
        self.env_spec = make_env_spec(resolution, biome_id)
        self.env = self.env_spec.make()
        self.done = False
        self._obs: dict | None = None

    def reset(self, seed: int, **_) -> np.ndarray:
        self.env.seed(int(seed))            # MineRL seeds Minecraft's world generator with it
        self._obs = self.env.reset()
        self.done = False
        return self._pov()

    def step(self, action: int) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("step() before reset()")
        self._obs, _, done, _ = self.env.step(action_dict(self.env.action_space.noop(), int(action), self.turn_degrees))
        self.done = bool(done)
        return self._pov()

    def _pov(self) -> np.ndarray:
        return np.ascontiguousarray(self._obs["pov"][..., :3], np.uint8)

    def pose(self) -> np.ndarray:
        ls = self._obs["location_stats"]
        return np.array([float(ls["xpos"]), float(ls["ypos"]), float(ls["zpos"]),
                         P.wrap_degrees(float(ls["yaw"])), float(ls["pitch"])], np.float32)

    def layout(self):
        return None

    def close(self) -> None:
        self.env.close()
