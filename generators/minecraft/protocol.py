"""Minecraft-200k's collection protocol, shared by the embedded and the MineRL backend.

As the authors' final collector (wilson1yan/collect-minecraft, commit 62919a4 "Fixes"; PROTOCOL.md
compares point by point): the agent re-samples its action every `action_repeat` = 5 steps: forward
with probability `prob_forward` = 0.9, else left or right with (1 - prob_forward) / 2 each; once
`max_consec_forward` = 50 forward steps ran in a row the next re-sample must turn. Every action holds
jump: forward = forward + jump, left/right = jump + camera yaw -/+20 degrees, so turning frames bob too.
Ids are the collector's: 1 = forward, 2 = left, 3 = right (0 = no-op: never emitted by the policy; the
collector writes it as the placeholder of the reset frame, the store writes -1). Frame 0 is the view at
reset; an episode is the reset view plus `length` - 1 steps (the collector: 1 + 300). An episode that
ends early (`done`) is discarded and redrawn.
"""
from __future__ import annotations

from typing import Callable

from generators.rollout import Episode, redraw, rollout
from generators.seeds import rng

NOOP, FORWARD, LEFT, RIGHT = 0, 1, 2, 3
ACTION_NAMES = ["noop", "forward_jump", "left_jump", "right_jump"]
POSE_NAMES = ["x", "y", "z", "yaw", "pitch"]
POSE_UNITS = "minecraft blocks"
TURN_DEGREES = 20.0

LENGTH = 301                # the collector's traj_length 300 steps plus the reset view
RESOLUTION = 128
PROB_FORWARD = 0.9
ACTION_REPEAT = 5
MAX_CONSEC_FORWARD = 50
SWAMP_BIOME_ID = 6          # Minecraft 1.11 "swampland"
MAX_ATTEMPTS = 100          # redraws before an episode is reported as failed


def wrap_degrees(a: float) -> float:
    """Yaw in [-180, 180). The game's own yaw grows without bound; exact for dyadic angles."""
    return (float(a) + 180.0) % 360.0 - 180.0


class ExplorePolicy:
    """The collector's SimpleAgent with a seeded generator: a fresh action at t = 0, 5, 10, ...
    (`repeat`), held in between; a re-sample after `max_consec_forward` forward steps in a row turns."""

    def __init__(self, seed: int, prob_forward: float = PROB_FORWARD, repeat: int = ACTION_REPEAT,
                 max_consec_forward: int = MAX_CONSEC_FORWARD):
        self.rng = rng(seed, "policy")
        self.prob_forward, self.repeat, self.max_consec = float(prob_forward), int(repeat), int(max_consec_forward)
        self.counter = 0
        self.n_forward = 0
        self.action = FORWARD

    def sample(self, prob_forward: float) -> int:
        turn = (1.0 - prob_forward) / 2.0
        return int(self.rng.choice([FORWARD, LEFT, RIGHT], p=[prob_forward, turn, turn]))

    def __call__(self, t: int, obs=None, pose=None, backend=None) -> int:
        capped = self.max_consec > 0 and self.n_forward >= self.max_consec
        if self.counter % self.repeat == 0:
            self.action = self.sample(0.0 if capped else self.prob_forward)
        self.n_forward = self.n_forward + 1 if self.action == FORWARD else 0
        self.counter += 1
        return self.action


def collect(backend, index: int, base_seed: int, params: dict,
            done: Callable[[], bool] | None = None) -> Episode:
    """Episode `index`: roll out with seed episode_seed(base_seed, index, attempt) for attempt = 0, 1, ...
    until one is not cut short by the simulator; the Episode's seed is the one that succeeded."""
    def attempt(seed: int) -> Episode:
        policy = ExplorePolicy(seed, params["prob_forward"], params["action_repeat"], params["max_consec_forward"])
        return rollout(backend, policy, seed, params["length"], done=done)
    return redraw(index, base_seed, int(params.get("max_attempts", MAX_ATTEMPTS)), attempt)

