"""DMLab-40k: what gen-dmlab tells the shared runner (flags, validation, store config, one episode)."""
from __future__ import annotations

import argparse
from typing import Any

from storage import StoreConfig

from ..backend import Backend
from ..rollout import Episode, EpisodeDiscarded, rollout
from ..seeds import episode_seed, rng
from ..spec import DatasetSpec
from .protocol import ACTION_NAMES, MAX_LOOK_PIXELS, GoalAgent, GoalAgentConfig

RESOLUTIONS = (64, 128)          # what TECO's VQ-GAN takes (a 16x16 latent grid)
GOAL_MODES = ("resample", "repeat")
POSE_UNITS = "dmlab units, 100 per maze cell"
MAX_REDRAWS = 5                  # seeds tried when deepmind_lab ends an episode early


class DmlabSpec(DatasetSpec):
    name = "dmlab"
    real_backend = "deepmind_lab"
    real_module = "deepmind_lab"
    install_hint = ("Build DeepMind Lab's pip package with Bazel (github.com/deepmind/lab, "
                    "python/pip_package/README.md): git clone https://github.com/deepmind/lab && cd lab && "
                    "bazel build -c opt python/pip_package:build_pip_package && "
                    "./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg && "
                    "pip install /tmp/dmlab_pkg/*.whl; or use --backend embedded.")
    default_episodes = 40000

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("DMLab protocol (TECO's collection script)")
        g.add_argument("--length", type=int, default=300, help="frames recorded per episode")
        g.add_argument("--skip", type=int, default=10, help="first steps run but not recorded")
        g.add_argument("--resolution", type=int, default=64, help=f"square frame side, one of {RESOLUTIONS}")
        g.add_argument("--fps", type=float, default=30, help="DMLab engine frames per second")
        g.add_argument("--action-repeat", type=int, default=4, help="engine frames per recorded step (num_steps)")
        g.add_argument("--look-rate", type=int, default=20,
                       help="LOOK_LEFT_RIGHT_PIXELS_PER_FRAME of the look actions (a rate, not degrees)")
        g.add_argument("--maze-size", type=int, default=7,
                       help="interior maze cells per side (odd); the grid adds an outer wall")
        g.add_argument("--goal-dist", type=int, default=4, help="BFS cells from the start to each goal")
        g.add_argument("--goal-mode", choices=GOAL_MODES, default="resample",
                       help="after each round trip: draw a new goal, or repeat the same one (the script's loop)")
        g.add_argument("--turn-steps", type=int, default=40, help="initial look-left steps")
        g.add_argument("--heading-tol", type=float, default=10.0,
                       help="degrees: move forward once the landmark is this close to straight ahead")
        g.add_argument("--landmark-radius", type=float, default=10.0, help="units: a landmark is reached this close")
        g.add_argument("--open-fraction", type=float, default=0.15,
                       help="embedded: interior cells opened at random to make loops (random_maze's 15%%)")
        g.add_argument("--level", default="demos/random_maze", help="deepmind_lab: level script")
        g.add_argument("--renderer", choices=("software", "hardware"), default="software",
                       help="deepmind_lab: OSMesa (software) or EGL (hardware) rendering")

    def params(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"length": args.length, "skip": args.skip, "resolution": args.resolution, "fps": args.fps,
                "action_repeat": args.action_repeat, "look_rate": args.look_rate, "maze_size": args.maze_size,
                "goal_dist": args.goal_dist, "goal_mode": args.goal_mode, "turn_steps": args.turn_steps,
                "heading_tol": args.heading_tol, "landmark_radius": args.landmark_radius,
                "open_fraction": args.open_fraction, "level": args.level, "renderer": args.renderer,
                "pose_units": POSE_UNITS}

    def validate(self, params: dict[str, Any], backend: str) -> None:
        p = params
        if p["resolution"] not in RESOLUTIONS:
            raise ValueError(f"resolution {p['resolution']} is not supported: choose one of {RESOLUTIONS}")
        for key in ("length", "action_repeat", "goal_dist"):
            if p[key] < 1:
                raise ValueError(f"{key.replace('_', '-')} must be >= 1, got {p[key]}")
        for key in ("skip", "turn_steps"):
            if p[key] < 0:
                raise ValueError(f"{key.replace('_', '-')} must be >= 0, got {p[key]}")
        if not 0 < p["fps"] <= 960:
            raise ValueError(f"fps must be in (0, 960] (DMLab needs at least 1 ms per frame), got {p['fps']}")
        if not 0 < p["look_rate"] <= MAX_LOOK_PIXELS:
            raise ValueError(f"look-rate must be in 1..{MAX_LOOK_PIXELS}, got {p['look_rate']}")
        if p["maze_size"] < 3 or p["maze_size"] % 2 == 0:
            raise ValueError(f"maze-size must be odd and >= 3, got {p['maze_size']}")
        if not 0 < p["heading_tol"] <= 180:
            raise ValueError(f"heading-tol must be in (0, 180], got {p['heading_tol']}")
        if p["landmark_radius"] <= 0:
            raise ValueError(f"landmark-radius must be positive, got {p['landmark_radius']}")
        if not 0 <= p["open_fraction"] < 1:
            raise ValueError(f"open-fraction must be in [0, 1), got {p['open_fraction']}")
        if p["goal_mode"] not in GOAL_MODES:
            raise ValueError(f"goal-mode must be one of {GOAL_MODES}, got {p['goal_mode']!r}")
        if backend == self.real_backend:
            from .real import FIXED_MAZE_LEVELS
            fixed = FIXED_MAZE_LEVELS.get(p["level"])
            if fixed is not None and p["maze_size"] != fixed:
                raise ValueError(f"level {p['level']} always builds {fixed + 2}x{fixed + 2} mazes: pass "
                                 f"--maze-size {fixed}, or a level that reads the mazeHeight/mazeWidth settings")

    def backend_version(self, backend: str, params: dict[str, Any]) -> str:
        if backend == self.real_backend:
            from .real import backend_version
            return backend_version(params["level"])
        from importlib.metadata import version      # mazes and textures come from labmaze

        from .embedded import EMBEDDED_VERSION
        return f"{EMBEDDED_VERSION}+labmaze-{version('labmaze')}"

    def store_config(self, params: dict[str, Any], backend: str, episodes: int, seed: int) -> StoreConfig:
        r = params["resolution"]
        return StoreConfig(dataset=self.name, episodes=episodes, length=params["length"], height=r, width=r,
                           action_names=list(ACTION_NAMES), pose_names=["x", "y", "z", "yaw"], backend=backend,
                           backend_version=self.backend_version(backend, params), seed=seed, params=dict(params))

    def make_backend(self, backend: str, params: dict[str, Any]) -> Backend:
        if backend == self.real_backend:
            from .real import DeepMindLabBackend, RealConfig
            return DeepMindLabBackend(RealConfig.from_params(params))
        if backend == "embedded":
            from .embedded import EmbeddedBackend, EmbeddedConfig
            return EmbeddedBackend(EmbeddedConfig.from_params(params))
        raise ValueError(f"unknown dmlab backend {backend!r}: choose embedded or {self.real_backend}")

    def episode(self, backend: Backend, index: int, base_seed: int, params: dict[str, Any]) -> Episode:
        """Roll out episode `index`; if deepmind_lab ends it early, redraw with the next attempt's seed."""
        for attempt in range(MAX_REDRAWS + 1):
            seed = episode_seed(base_seed, index, attempt)
            agent = GoalAgent(GoalAgentConfig.from_params(params), rng(seed, "policy"))
            try:
                ep = rollout(backend, agent, seed, params["length"], skip=params["skip"])
            except EpisodeDiscarded:
                if attempt == MAX_REDRAWS:
                    raise
                continue
            ep.seed = seed
            return ep
        raise AssertionError("unreachable")


SPEC = DmlabSpec()
