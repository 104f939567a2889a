"""One episode: a policy drives a backend; frames, actions and poses come back as arrays. No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .backend import Backend
from .seeds import episode_seed


NO_ACTION = -1   # actions[0] when no action produced frame 0 (the view at reset)


class Policy(Protocol):
    def __call__(self, t: int, obs: np.ndarray, pose: np.ndarray, backend: Backend) -> int:
        """Action id to take after observation `obs` at raw step t (skipped steps included)."""


class EpisodeDiscarded(RuntimeError):
    """The simulator ended the episode early (e.g. MineRL `done`); the runner redraws with the next seed."""


@dataclass
class Episode:
    video: np.ndarray     # uint8 (T, H, W, 3)
    actions: np.ndarray   # int32 (T,): actions[t] produced frame t (storage/FORMAT.md); NO_ACTION if none did
    pose: np.ndarray      # float32 (T, P)
    extras: dict[str, Any] = field(default_factory=dict)   # per-episode values, e.g. {"scene": 3}
    seed: int = -1        # the simulator seed actually used (differs from the first draw after a redraw)
    notes: list[str] = field(default_factory=list)   # for the run's log, not stored (e.g. a scene found unusable)


def rollout(backend: Backend, policy: Policy, seed: int, length: int, skip: int = 0,
            reset_kwargs: dict | None = None, done: Callable[[], bool] | None = None) -> Episode:
    """Reset with `seed`, run skip + length - 1 steps, keep the last `length` frames.

    Frame 0 is the view after the `skip` unrecorded steps (the view at reset when skip == 0); actions[k] is the
    action whose step produced frame k (NO_ACTION for the reset view), pose[k] the pose at frame k. The policy's
    last choice after the final frame is never executed. `done`, if given, is polled after every step but the last
    (the collector keeps an episode whose end comes with its last step); True raises EpisodeDiscarded.
    """
    obs = backend.reset(seed, **(reset_kwargs or {}))
    pose = np.asarray(backend.pose(), np.float32)
    video = np.empty((length, *obs.shape), np.uint8)
    actions = np.empty(length, np.int32)
    poses = np.empty((length, pose.shape[0]), np.float32)
    a = NO_ACTION
    for t in range(skip + length):
        k = t - skip
        if k >= 0:
            video[k], actions[k], poses[k] = obs, a, pose
            if k == length - 1:
                break
        a = int(policy(t, obs, pose, backend))
        obs = backend.step(a)
        pose = np.asarray(backend.pose(), np.float32)
        if done is not None and t - skip + 1 < length - 1 and done():   # an end on the last step keeps it
            raise EpisodeDiscarded(f"episode with seed {seed} ended at step {t}")
    return Episode(video, actions, poses, seed=int(seed))


def redraw(index: int, base_seed: int, attempts: int, attempt_fn: Callable[[int], Episode]) -> Episode:
    """Episode `index` from the first of `attempts` seeds episode_seed(base_seed, index, a) whose rollout
    is not discarded; the Episode records the seed that succeeded."""
    for attempt in range(attempts):
        seed = episode_seed(base_seed, index, attempt)
        try:
            ep = attempt_fn(seed)
        except EpisodeDiscarded:
            continue
        ep.seed = seed
        return ep
    raise EpisodeDiscarded(f"episode {index}: all {attempts} attempts were discarded")
