"""One episode: a policy drives a backend; frames, actions and poses come back as arrays. No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .backend import Backend


class Policy(Protocol):
    def __call__(self, t: int, obs: np.ndarray, pose: np.ndarray, backend: Backend) -> int:
        """Action id to take after observation `obs` at raw step t (skipped steps included)."""


class EpisodeDiscarded(RuntimeError):
    """The simulator ended the episode early (e.g. MineRL `done`); the runner redraws with the next seed."""


@dataclass
class Episode:
    video: np.ndarray     # uint8 (T, H, W, 3)
    actions: np.ndarray   # int32 (T,): actions[t] is the action taken right after frame t (TECO's convention)
    pose: np.ndarray      # float32 (T, P)
    extras: dict[str, Any] = field(default_factory=dict)   # per-episode values, e.g. {"scene": 3}
    seed: int = -1        # the simulator seed actually used (differs from the first draw after a redraw)


def rollout(backend: Backend, policy: Policy, seed: int, length: int, skip: int = 0,
            reset_kwargs: dict | None = None, done: Callable[[], bool] | None = None) -> Episode:
    """Reset with `seed`, run skip + length steps, keep the last `length` (frame, action, pose) triples.

    `done`, if given, is polled after every step; True raises EpisodeDiscarded.
    """
    obs = backend.reset(seed, **(reset_kwargs or {}))
    video = None
    actions = np.empty(length, np.int32)
    pose0 = np.asarray(backend.pose(), np.float32)
    poses = np.empty((length, pose0.shape[0]), np.float32)
    for t in range(skip + length):
        pose = np.asarray(backend.pose(), np.float32)
        a = int(policy(t, obs, pose, backend))
        k = t - skip
        if k >= 0:
            if video is None:
                video = np.empty((length, *obs.shape), np.uint8)
            video[k], actions[k], poses[k] = obs, a, pose
        obs = backend.step(a)
        if done is not None and done():
            raise EpisodeDiscarded(f"episode with seed {seed} ended at step {t}")
    return Episode(video, actions, poses, seed=int(seed))
