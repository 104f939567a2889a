"""The MineRL backend: the collector's "SimpleExplore" mission on real Minecraft (minerl 0.4.4).

The env spec subclasses MineRL's SimpleEmbodimentEnvSpec as the authors' env.py does: its keyboard
actions (forward, back, left, right, jump, sneak, sprint, attack) plus `camera`; Minecraft's
DefaultWorldGenerator with force_reset (a new world every episode) and the collector's generator
options (fixedBiome 6 = swamp, biomeSize 8, seaLevel 1, caves on; no dungeons, strongholds, villages,
mineshafts, temples, monuments, mansions, ravines, water/lava lakes or lava oceans; every other field
Minecraft's default); time of day frozen, mob spawning allowed, no rewards, no quit producers. Beyond
the collector it also observes `location_stats` (x, y, z, yaw, pitch) for the pose. Actions are MineRL
dicts built from `env.action_space.noop()`. minerl is imported lazily: this module imports without it.
"""
from __future__ import annotations

import functools
import json
from importlib import metadata

import numpy as np

from . import protocol as P

ENV_NAME = "SimpleExplore-v0"
ADAPTER_VERSION = "2"      # 2: DefaultWorldGenerator with the collector's options; turns hold jump
SEA_LEVEL = 1
_registered: set[str] = set()

# Minecraft 1.11's customized-world settings (ChunkGeneratorSettings), in the order of its preset JSON.
# Every value is Minecraft's default except the ones the collector changes, marked below.
_GENERATOR_DEFAULTS = {
    "coordinateScale": 684.412, "heightScale": 684.412, "lowerLimitScale": 512.0, "upperLimitScale": 512.0,
    "depthNoiseScaleX": 200.0, "depthNoiseScaleZ": 200.0, "depthNoiseScaleExponent": 0.5,
    "mainNoiseScaleX": 80.0, "mainNoiseScaleY": 160.0, "mainNoiseScaleZ": 80.0, "baseSize": 8.5,
    "stretchY": 12.0, "biomeDepthWeight": 1.0, "biomeDepthOffset": 0.0, "biomeScaleWeight": 1.0,
    "biomeScaleOffset": 0.0, "seaLevel": 63, "useCaves": True, "useDungeons": True, "dungeonChance": 8,
    "useStrongholds": True, "useVillages": True, "useMineShafts": True, "useTemples": True,
    "useMonuments": True, "useMansions": True, "useRavines": True, "useWaterLakes": True,
    "waterLakeChance": 4, "useLavaLakes": True, "lavaLakeChance": 80, "useLavaOceans": False,
    "fixedBiome": -1, "biomeSize": 4, "riverSize": 4,
    "dirtSize": 33, "dirtCount": 10, "dirtMinHeight": 0, "dirtMaxHeight": 256,
    "gravelSize": 33, "gravelCount": 8, "gravelMinHeight": 0, "gravelMaxHeight": 256,
    "graniteSize": 33, "graniteCount": 10, "graniteMinHeight": 0, "graniteMaxHeight": 80,
    "dioriteSize": 33, "dioriteCount": 10, "dioriteMinHeight": 0, "dioriteMaxHeight": 80,
    "andesiteSize": 33, "andesiteCount": 10, "andesiteMinHeight": 0, "andesiteMaxHeight": 80,
    "coalSize": 17, "coalCount": 20, "coalMinHeight": 0, "coalMaxHeight": 128,
    "ironSize": 9, "ironCount": 20, "ironMinHeight": 0, "ironMaxHeight": 64,
    "goldSize": 9, "goldCount": 2, "goldMinHeight": 0, "goldMaxHeight": 32,
    "redstoneSize": 8, "redstoneCount": 8, "redstoneMinHeight": 0, "redstoneMaxHeight": 16,
    "diamondSize": 8, "diamondCount": 1, "diamondMinHeight": 0, "diamondMaxHeight": 16,
    "lapisSize": 7, "lapisCount": 1, "lapisCenterHeight": 16, "lapisSpread": 16,
}
# The collector's changes (wilson1yan/collect-minecraft env.py at 62919a4).
COLLECTOR_OPTIONS = {
    "seaLevel": SEA_LEVEL, "useCaves": True, "useDungeons": False, "useStrongholds": False,
    "useVillages": False, "useMineShafts": False, "useTemples": False, "useMonuments": False,
    "useMansions": False, "useRavines": False, "useWaterLakes": False, "useLavaLakes": False,
    "useLavaOceans": False, "fixedBiome": P.SWAMP_BIOME_ID, "biomeSize": 8, "riverSize": 1,
}


def generator_options(biome_id: int = P.SWAMP_BIOME_ID, sea_level: int = SEA_LEVEL) -> dict:
    """The DefaultWorldGenerator's generator options: the collector's, with biome and sea level as given."""
    return {**_GENERATOR_DEFAULTS, **COLLECTOR_OPTIONS, "fixedBiome": int(biome_id), "seaLevel": int(sea_level)}


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

    class SimpleExplore(SimpleEmbodimentEnvSpec):
        """Walk and look around a single-biome world; nothing ends the episode but the simulator."""

        def __init__(self, resolution=(P.RESOLUTION, P.RESOLUTION), biome_id=P.SWAMP_BIOME_ID,
                     sea_level=SEA_LEVEL, name=ENV_NAME):
            # read by create_server_world_generators during super().__init__
            self.biome_id, self.sea_level = int(biome_id), int(sea_level)
            super().__init__(name, resolution=tuple(resolution))

        def create_observables(self):
            return [handlers.POVObservation(self.resolution), handlers.ObservationFromCurrentLocation()]

        # create_actionables: SimpleEmbodimentEnvSpec's own (its keyboard keys + camera), as the collector

        def create_rewardables(self):
            return []

        def create_agent_start(self):
            return []

        def create_agent_handlers(self):
            return []

        def create_monitors(self):
            return []

        def create_server_world_generators(self):
            options = json.dumps(generator_options(self.biome_id, self.sea_level), indent=4)
            return [handlers.DefaultWorldGenerator(force_reset=True, generator_options=options)]

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


def make_env_spec(resolution: int = P.RESOLUTION, biome_id: int = P.SWAMP_BIOME_ID, sea_level: int = SEA_LEVEL):
    """A SimpleExplore spec, registered with gym under ENV_NAME once per process."""
    spec = simple_explore_class()(resolution=(resolution, resolution), biome_id=biome_id, sea_level=sea_level)
    if spec.name not in _registered:
        spec.register()
        _registered.add(spec.name)
    return spec


def action_dict(noop: dict, action: int, turn_degrees: float = P.TURN_DEGREES, turn_jump: bool = True) -> dict:
    """MineRL action for dataset action id `action`, starting from the env's no-op: the collector's
    forward = forward + jump, left/right = jump + camera yaw -/+turn_degrees."""
    a = dict(noop)
    a["camera"] = np.zeros(2, np.float32)
    if action == P.FORWARD:
        a["forward"], a["jump"] = 1, 1
    elif action in (P.LEFT, P.RIGHT):
        a["jump"] = int(turn_jump)
        yaw = -turn_degrees if action == P.LEFT else turn_degrees
        a["camera"] = np.array([0.0, yaw], np.float32)     # [pitch, yaw] deltas in degrees
    elif action != P.NOOP:
        raise ValueError(f"unknown Minecraft action id {action}: expected 0..{len(P.ACTION_NAMES) - 1}")
    return a


class MineRLBackend:
    """Backend over a MineRL env; `done` is the simulator's early end of the last step."""

    name = "minerl"

    def __init__(self, resolution: int = P.RESOLUTION, biome_id: int = P.SWAMP_BIOME_ID,
                 turn_degrees: float = P.TURN_DEGREES, sea_level: int = SEA_LEVEL, turn_jump: bool = True):
        self.version = real_version()
        self.turn_degrees, self.turn_jump = float(turn_degrees), bool(turn_jump)
        self.env_spec = make_env_spec(resolution, biome_id, sea_level)
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
        self._obs, _, done, _ = self.env.step(action_dict(self.env.action_space.noop(), int(action), self.turn_degrees,
                                                               self.turn_jump))
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
