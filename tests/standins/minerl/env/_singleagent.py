"""minerl.env._singleagent._SingleAgentEnv stand-in: a kinematic fake of Minecraft.

The player walks 0.2158 blocks per tick with `forward`, holding `jump` on the ground jumps (0.42 blocks
per tick up, then Minecraft's gravity 0.08 and drag 0.98, 10 ticks of cooldown while jump stays held),
the camera action adds [pitch, yaw] degrees, yaw grows without bound as in the game, and the pov is a
deterministic picture of the heading and position whose horizon moves with the eye height. Like a MineRL player who drowns or is killed, episodes of some seeds end early: see dies_at.
Every action is checked against the action space; every action and seed is logged for tests.
"""
import math

import numpy as np

from minerl.herobraine.hero import handlers

GROUND = 63.0


def dies_at(seed: int) -> int:
    """Step at which an episode of this seed reports done: early for one seed in three."""
    return 3 + seed % 50 if seed % 3 == 0 else 10 ** 9


class _SingleAgentEnv:
    def __init__(self, env_spec, **kwargs):
        self.env_spec = env_spec
        self.action_space = env_spec.action_space
        self.observation_space = env_spec.observation_space
        self._seed = None
        self.seeds, self.actions = [], []
        self.closed = False
        pov = [o for o in env_spec.observables if isinstance(o, handlers.POVObservation)]
        self._shape = pov[0].space.shape

    def seed(self, seed=None, seed_spaces=True):
        self._seed = seed

    def reset(self):
        if self._seed is None:
            raise RuntimeError("stand-in: seed the env before reset to make episodes reproducible")
        self.seeds.append(self._seed)
        g = np.random.default_rng(self._seed)
        self.x, self.z = (float(v) for v in g.integers(-1000, 1000, 2) + 0.5)
        self.y, self.pitch = GROUND, 0.0
        self.vy, self.jump_ticks = 0.0, 0
        self.yaw = float(g.integers(-4, 4)) * 360.0 + float(g.integers(0, 360))   # unwrapped, like the game
        self.t, self.death = 0, dies_at(self._seed)
        return self._obs()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"stand-in: action {action} is not in the action space")
        self.actions.append(action)
        self.pitch = float(np.clip(self.pitch + float(action["camera"][0]), -90.0, 90.0))
        self.yaw += float(action["camera"][1])
        if action["forward"]:
            yaw = math.radians(self.yaw)
            self.x += -math.sin(yaw) * 0.2158
            self.z += math.cos(yaw) * 0.2158
        self._jump(bool(action["jump"]))
        self.t += 1
        return self._obs(), 0.0, self.t >= self.death, {}

    def _jump(self, held: bool):
        on_ground = self.y <= GROUND
        if self.jump_ticks > 0:
            self.jump_ticks -= 1
        if not held:
            self.jump_ticks = 0
        elif on_ground and self.jump_ticks == 0:
            self.vy, self.jump_ticks = 0.42, 10
        self.y += self.vy
        self.vy = (self.vy - 0.08) * 0.98
        if self.y <= GROUND:
            self.y, self.vy = GROUND, 0.0

    def _obs(self):
        h, w, c = self._shape
        heading = (np.arange(w) * 70.0 / w + self.yaw) % 360.0
        col = np.stack([heading / 360.0 * 255, np.full(w, self.x % 256), np.full(w, self.z % 256)], -1)
        pov = np.broadcast_to(col.astype(np.uint8)[None], (h, w, 3)).copy()
        horizon = min(h, h // 2 + int(round((self.y - GROUND) * h / 4)))     # the ground drops as the eye rises
        pov[horizon:] //= 2
        if c == 4:
            pov = np.concatenate([pov, np.zeros((h, w, 1), np.uint8)], -1)
        stats = {"xpos": np.array(self.x), "ypos": np.array(self.y), "zpos": np.array(self.z),
                 "pitch": np.array(self.pitch), "yaw": np.array(self.yaw)}
        return {"pov": pov, "location_stats": stats}

    def close(self):
        self.closed = True
