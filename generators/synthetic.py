"""A simulator-free dataset: a camera pans over a seeded 2-D texture world. It exercises the runner,
the store and the model in milliseconds (tests, debugging, runner benchmarks); it is not a paper dataset.
The view pans with the action, so frames encode the actions that produced them (tests/test_action_convention.py)."""
from __future__ import annotations

import argparse

import numpy as np

from .rollout import Episode, rollout
from .seeds import episode_seed, rng
from .spec import DatasetSpec, check_at_least

ACTIONS = ["stay", "left", "right", "up", "down"]
MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]])


class PanBackend:
    name, version = "embedded", "1"

    def __init__(self, size: int, world: int = 64, step: int = 2):
        self.size, self.world_size, self.step_px = size, world, step
        self.pos = np.zeros(2, int)

    def reset(self, seed: int, **_) -> np.ndarray:
        g = rng(seed, "world")
        coarse = g.integers(0, 256, (self.world_size // 8, self.world_size // 8, 3), dtype=np.uint8)
        self.world = np.kron(coarse, np.ones((8, 8, 1), np.uint8))      # blocky, compressible like real frames
        self.pos = g.integers(0, self.world_size, 2)
        return self.obs()

    def obs(self) -> np.ndarray:
        r = (self.pos[0] + np.arange(self.size)) % self.world_size
        c = (self.pos[1] + np.arange(self.size)) % self.world_size
        return self.world[np.ix_(r, c)]

    def step(self, action: int) -> np.ndarray:
        self.pos = (self.pos + self.step_px * MOVES[action]) % self.world_size
        return self.obs()

    def pose(self) -> np.ndarray:
        return np.array([self.pos[1], 0.0, self.pos[0], 0.0], np.float32)

    def layout(self):
        return None

    def close(self) -> None:
        """Nothing to release: the world is a numpy array."""


class RandomPolicy:
    def __init__(self, seed: int):
        self.rng = rng(seed, "policy")

    def __call__(self, t, obs, pose, backend) -> int:
        return int(self.rng.integers(len(ACTIONS)))


class SyntheticSpec(DatasetSpec):
    name = "synthetic"
    real_backend = "none"
    real_module = "__no_real_backend__"
    install_hint = "the synthetic dataset has only the embedded backend"
    default_episodes = 16
    action_names = ACTIONS
    pose_units = "pixels"
    revisit_tolerances = (2.0, 0.0)        # one pan step; the synthetic yaw is always 0
    vqgan_config = "tiny"
    teco_config = "tiny"
    small_args = ("--length", "8", "--resolution", "32")

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--length", type=int, default=32)
        parser.add_argument("--resolution", type=int, default=32)
        parser.add_argument("--skip", type=int, default=0, help="unrecorded steps before frame 0")

    def params(self, args) -> dict:
        return {"length": args.length, "resolution": args.resolution, "skip": args.skip}

    def validate(self, params, backend) -> None:
        check_at_least(params, {"resolution": 1, "length": 1, "skip": 0})

    def backend_version(self, backend, params) -> str:
        return PanBackend.version

    def make_backend(self, backend, params):
        return PanBackend(params["resolution"], world=max(64, 2 * params["resolution"]))

    def episode(self, backend, index, base_seed, params) -> Episode:
        seed = episode_seed(base_seed, index)
        return rollout(backend, RandomPolicy(seed), seed, params["length"], skip=params.get("skip", 0))


SPEC = SyntheticSpec()


def main(argv: list[str] | None = None) -> int:
    """gen-synthetic: the console script, registered like every dataset's (generators/ADDING_A_DATASET.md)."""
    from .cli import run_cli
    return run_cli(SPEC, argv)


if __name__ == "__main__":   # python -m generators.synthetic --episodes 8 --out /tmp/s.zarr
    import sys
    sys.exit(main())
