"""minerl.herobraine.hero.handlers: the handlers of the SimpleExplore mission, with the real
constructors' signatures and the real `to_string` names (which become observation/action keys)."""
import numpy as np

from minerl.herobraine.hero import spaces
from minerl.herobraine.hero.handler import Handler


class _Simple(Handler):
    NAME = ""

    def to_string(self) -> str:
        return self.NAME

    def xml_template(self) -> str:
        return f"<{type(self).__name__}/>"


class POVObservation(_Simple):
    NAME = "pov"

    def __init__(self, video_resolution, include_depth: bool = False):
        self.video_resolution = tuple(video_resolution)
        self.include_depth = include_depth
        self.space = spaces.Box(0, 255, list(self.video_resolution)[::-1] + [4 if include_depth else 3], np.uint8)


class ObservationFromCurrentLocation(_Simple):
    NAME = "location_stats"

    def __init__(self):
        self.space = spaces.Dict({k: spaces.Box(-640000.0, 640000.0, ()) for k in
                                  ("xpos", "ypos", "zpos", "pitch", "yaw")})


class KeybasedCommandAction(_Simple):
    def __init__(self, command, *keys):
        self.command, self.keys = command, keys
        self.space = spaces.Discrete(len(keys) + 1)

    def to_string(self) -> str:
        return self.command


class CameraAction(_Simple):
    NAME = "camera"

    def __init__(self):
        self.space = spaces.Box(-180, 180, [2], np.float32)


class BiomeGenerator(_Simple):
    NAME = "biome_generator"

    def __init__(self, biome, force_reset: bool = True):
        self.biome_id, self.force_reset = biome, force_reset


class DefaultWorldGenerator(_Simple):
    """Minecraft's procedural world; generator_options is the customized-world JSON (a string)."""
    NAME = "default_world_generator"

    def __init__(self, force_reset=True, generator_options: str = "{}"):
        self.force_reset, self.generator_options = force_reset, generator_options


class TimeInitialCondition(_Simple):
    NAME = "time_initial_condition"

    def __init__(self, allow_passage_of_time: bool, start_time: int = None):
        self.allow_passage_of_time, self.start_time = allow_passage_of_time, start_time


class SpawningInitialCondition(_Simple):
    NAME = "spawning_initial_condition"

    def __init__(self, allow_spawning: bool):
        self.allow_spawning = allow_spawning
