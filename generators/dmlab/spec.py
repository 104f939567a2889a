"""DMLab-40k: what gen-dmlab tells the shared runner (flags, validation, store config, one episode)."""
from __future__ import annotations

import argparse
from typing import Any


from ..backend import Backend
from ..rollout import Episode, rollout
from ..seeds import rng
from ..rollout import redraw
from ..spec import DatasetSpec, check_at_least
from .protocol import ACTION_NAMES, BEARINGS, MAX_LOOK_PIXELS, GoalAgent, GoalAgentConfig
from .real import DEFAULT_LEVEL

RESOLUTIONS = (64, 128)          # what TECO's VQ-GAN takes (a 16x16 latent grid)
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
    action_names = ACTION_NAMES
    pose_units = POSE_UNITS
    revisit_tolerances = (25.0, 20.0)      # a quarter of a maze cell; 20 degrees of heading
    vqgan_config = "dmlab"
    teco_config = "dmlab"
    release_convention = "after"
    small_args = ("--length", "24")

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("DMLab protocol (the authors' final collector; generators/dmlab/PROTOCOL.md)")
        g.add_argument("--length", type=int, default=300, help="frames recorded per episode")
        g.add_argument("--skip", type=int, default=10, help="first steps run but not recorded")
        g.add_argument("--resolution", type=int, default=64, help=f"square frame side, one of {RESOLUTIONS}")
        g.add_argument("--fps", type=float, default=30, help="DMLab engine frames per second")
        g.add_argument("--action-repeat", type=int, default=4, help="engine frames per recorded step (num_steps)")
        g.add_argument("--look-rate", type=int, default=20,
                       help="LOOK_LEFT_RIGHT_PIXELS_PER_FRAME of the look actions (a rate, not degrees)")
        g.add_argument("--maze-size", type=int, default=7,
                       help="interior maze cells per side (odd, >= 5); the grid adds an outer wall (9x9)")
        g.add_argument("--turn-steps", type=int, default=30,
                       help="raw steps looking left at the start, the skipped ones included (the script's 30)")
        g.add_argument("--retrace-cells", type=int, default=0,
                       help="probe variant, not the authors' protocol (0 = off): on reaching each leg's goal, "
                            "walk back this many cells and out again, so views recur tens of frames later "
                            "(a memory probe; PROTOCOL.md)")
        g.add_argument("--heading-tol", type=float, default=10.0,
                       help="degrees: plain forward once the waypoint is this close to straight ahead")
        g.add_argument("--waypoint-radius", type=float, default=40.0,
                       help="units: a waypoint (cell centre) counts as reached this close (the script's 40)")
        g.add_argument("--bearing", choices=BEARINGS, default="script",
                       help="waypoint bearing: the script's formula (a waypoint due south at dx = 0 reads as "
                            "north) or atan2 (deviation)")
        g.add_argument("--open-fraction", type=float, default=0.15,
                       help="interior cells opened at random to make loops (random_maze's 15%%)")
        g.add_argument("--poster-frequency", type=float, default=0.1,
                       help="embedded: share of wall faces given a poster (DMLab's wall decal frequency)")
        g.add_argument("--level", default=DEFAULT_LEVEL,
                       help="deepmind_lab: level script; the default is the level shipped in this package "
                            "(generators/dmlab/levels), which builds the paper's mazes and exposes their layout")
        g.add_argument("--renderer", choices=("software", "hardware"), default="software",
                       help="deepmind_lab: OSMesa (software) or EGL (hardware) rendering")

    def params(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"length": args.length, "skip": args.skip, "resolution": args.resolution, "fps": args.fps,
                "action_repeat": args.action_repeat, "look_rate": args.look_rate, "maze_size": args.maze_size,
                "turn_steps": args.turn_steps, "heading_tol": args.heading_tol,
                "waypoint_radius": args.waypoint_radius, "bearing": args.bearing,
                "open_fraction": args.open_fraction, "poster_frequency": args.poster_frequency,
                "level": args.level, "renderer": args.renderer,
                # recorded only when on, so stores of the authors' protocol keep their exact params
                **({"retrace_cells": args.retrace_cells} if args.retrace_cells else {})}

    def validate(self, params: dict[str, Any], backend: str) -> None:
        p = params
        if p["resolution"] not in RESOLUTIONS:
            raise ValueError(f"resolution {p['resolution']} is not supported: choose one of {RESOLUTIONS}")
        check_at_least(p, {"length": 1, "action_repeat": 1, "skip": 0, "turn_steps": 0})
        if p.get("retrace_cells", 0) < 0:
            raise ValueError(f"retrace-cells must be >= 0, got {p['retrace_cells']}")
        if not 0 < p["fps"] <= 960:
            raise ValueError(f"fps must be in (0, 960] (DMLab needs at least 1 ms per frame), got {p['fps']}")
        if not 0 < p["look_rate"] <= MAX_LOOK_PIXELS:
            raise ValueError(f"look-rate must be in 1..{MAX_LOOK_PIXELS}, got {p['look_rate']}")
        if p["maze_size"] < 5 or p["maze_size"] % 2 == 0:      # 3x3 rarely has a cell > 5 steps from a junction
            raise ValueError(f"maze-size must be odd and >= 5, got {p['maze_size']}")
        if not 0 < p["heading_tol"] <= 180:
            raise ValueError(f"heading-tol must be in (0, 180], got {p['heading_tol']}")
        if p["waypoint_radius"] <= 0:
            raise ValueError(f"waypoint-radius must be positive, got {p['waypoint_radius']}")
        if not 0 <= p["poster_frequency"] <= 1:
            raise ValueError(f"poster-frequency must be in [0, 1], got {p['poster_frequency']}")
        if not 0 <= p["open_fraction"] < 1:
            raise ValueError(f"open-fraction must be in [0, 1), got {p['open_fraction']}")
        if p["bearing"] not in BEARINGS:
            raise ValueError(f"bearing must be one of {BEARINGS}, got {p['bearing']!r}")

    def backend_version(self, backend: str, params: dict[str, Any]) -> str:
        if backend == self.real_backend:
            from .real import backend_version
            return backend_version(params["level"])
        from importlib.metadata import version      # textures come from labmaze

        from .embedded import EMBEDDED_VERSION
        return f"{EMBEDDED_VERSION}+labmaze-{version('labmaze')}"

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
        def attempt(seed: int) -> Episode:
            agent = GoalAgent(GoalAgentConfig.from_params(params), rng(seed, "policy"))
            return rollout(backend, agent, seed, params["length"], skip=params["skip"])
        return redraw(index, base_seed, MAX_REDRAWS + 1, attempt)


SPEC = DmlabSpec()
