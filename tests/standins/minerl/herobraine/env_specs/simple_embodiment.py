"""minerl.herobraine.env_specs.simple_embodiment."""
from abc import ABC

from minerl.herobraine.env_spec import EnvSpec
from minerl.herobraine.hero import handlers
from minerl.herobraine.hero.mc import INVERSE_KEYMAP

SIMPLE_KEYBOARD_ACTION = ["forward", "back", "left", "right", "jump", "sneak", "sprint", "attack"]


class SimpleEmbodimentEnvSpec(EnvSpec, ABC):
    def __init__(self, name, *args, resolution=(64, 64), **kwargs):
        self.resolution = resolution
        super().__init__(name, *args, **kwargs)

    def create_observables(self):
        return [handlers.POVObservation(self.resolution)]

    def create_actionables(self):
        return [handlers.KeybasedCommandAction(k, v) for k, v in INVERSE_KEYMAP.items()
                if k in SIMPLE_KEYBOARD_ACTION] + [handlers.CameraAction()]
