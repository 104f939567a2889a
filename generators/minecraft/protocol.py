"""Minecraft-200k's collection protocol, shared by the embedded and the MineRL backend.

From the paper's own MineRL collection code (a `SimpleExplore` EnvSpec and a `SimpleAgent`):
the agent re-samples its action every `action_repeat` = 5 steps: forward (+jump) with probability
`prob_forward`, else turn left or right (camera yaw -/+20 degrees) with (1 - prob_forward) / 2 each;
after `max_consec_forward` forward steps in a row it must turn. Ids: 0 = no-op (first frame),
1 = forward+jump, 2 = left, 3 = right. An episode that ends early (`done`) is discarded and redrawn.

prob_forward = 0.9 is the value the collection code's own driver runs the agent with
(`SimpleAgent(0.9, 5)` / `sample_action(0.9)`); its argparse default of 0.0 (turning only) cannot
produce the paper's walks. max_consec_forward = 25 is that code's default. (Its later versions also
hold jump while turning; turns here are camera-only, so turning in place is exactly reversible.)
"""
from __future__ import annotations

from typing import Callable

from generators.rollout import Episode, EpisodeDiscarded, rollout
from generators.seeds import episode_seed, rng

NOOP, FORWARD, LEFT, RIGHT = 0, 1, 2, 3
ACTION_NAMES = ["noop", "forward_jump", "turn_left", "turn_right"]
POSE_NAMES = ["x", "y", "z", "yaw", "pitch"]
POSE_UNITS = "minecraft blocks"
TURN_DEGREES = 20.0

LENGTH = 300
RESOLUTION = 128
PROB_FORWARD = 0.9
ACTION_REPEAT = 5
MAX_CONSEC_FORWARD = 25
SWAMP_BIOME_ID = 6          # Minecraft 1.11 "swampland"
MAX_ATTEMPTS = 100          # redraws before an episode is reported as failed


def wrap_degrees(a: float) -> float:
    """Yaw in [-180, 180). The game's own yaw grows without bound; exact for dyadic angles."""
    return (float(a) + 180.0) % 360.0 - 180.0


class ExplorePolicy:
    """The paper's SimpleAgent with a seeded generator: no-op at t = 0, then a fresh action every
    `repeat` steps, forward runs capped at `max_consec_forward` steps."""

    def __init__(self, seed: int, prob_forward: float = PROB_FORWARD, repeat: int = ACTION_REPEAT,
                 max_consec_forward: int = MAX_CONSEC_FORWARD):
        self.rng = rng(seed, "policy")
        self.prob_forward, self.repeat, self.max_consec = float(prob_forward), int(repeat), int(max_consec_forward)
        self.counter = 0
        self.n_forward = 0
        self.action = NOOP

    def sample(self, prob_forward: float) -> int:
        turn = (1.0 - prob_forward) / 2.0
        return int(self.rng.choice([FORWARD, LEFT, RIGHT], p=[prob_forward, turn, turn]))

    def __call__(self, t: int, obs=None, pose=None, backend=None) -> int:
        if t == 0:
            return NOOP
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
    attempts = int(params.get("max_attempts", MAX_ATTEMPTS))
    for attempt in range(attempts):
        seed = episode_seed(base_seed, index, attempt)
        policy = ExplorePolicy(seed, params["prob_forward"], params["action_repeat"], params["max_consec_forward"])
        try:
            return rollout(backend, policy, seed, params["length"], done=done)
        except EpisodeDiscarded:
            continue
    raise RuntimeError(f"episode {index}: the simulator ended all {attempts} attempts early")

