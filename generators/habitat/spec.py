"""Habitat-200k for the shared runner and CLI: flags, parameters, scene choice per episode, backends."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Hashable

from ..backend import Backend
from ..rollout import Episode, rollout
from ..seeds import episode_seed, rng as seeded_rng
from ..rollout import redraw
from ..spec import DatasetSpec
from .protocol import ACTION_NAMES, POSE_NAMES, GoalTourPolicy, ProtocolConfig, protocol_from_params
from .scenes import SceneUnusable, choose_scene, discover_scenes, file_hashes, usable_scene_files, warn_skip

_HELP = {
    "length": "frames per episode", "resolution": "square RGB frame side in pixels",
    "hfov": "horizontal field of view, degrees", "sensor_height": "camera height above the feet, metres",
    "forward_step": "move_forward distance, metres", "turn_angle": "turn_left/turn_right angle, degrees",
    "agent_height": "agent height for the navmesh, metres", "agent_radius": "agent radius for the navmesh, metres",
    "max_climb": "highest step the agent climbs, metres", "max_slope": "steepest walkable slope, degrees",
    "success_distance": "a leg ends within this geodesic distance of its goal, metres",
    "min_goal_dist": "nearest new goal, geodesic metres", "max_goal_dist": "farthest new goal, geodesic metres",
    "min_geo_ratio": "minimum geodesic/euclidean ratio of a new goal (1 = off, the paper's setting)",
    "goal_candidates": "random navigable points drawn per new goal",
    "goal_farthest": "the goal is drawn among this many farthest valid candidates",
    "same_floor_prob": "chance a leg's goal stays on the current floor",
    "same_floor_dy": "height difference that counts as the same floor, metres",
    "revisit_points": "after this many known points (start included), goals revisit them",
    "max_leg_steps": "actions after which a leg is abandoned",
    "max_attempts": "redraws of an episode the protocol discards (no goal found)",
    "skip": "actions executed before frame 0 is recorded: 1 = the collector (frame 0 is the view after the first "
            "action), 0 = frame 0 is the start view (actions[0] = -1)",
}


class HabitatSpec(DatasetSpec):
    name = "habitat"
    real_backend = "habitat_sim"
    real_module = "habitat_sim"
    install_hint = "Install it with: conda install habitat-sim -c conda-forge -c aihabitat"
    default_episodes = 200000
    action_names = ACTION_NAMES
    pose_names = POSE_NAMES
    episode_fields = {"scene": "int32"}
    pose_units = "metres"
    revisit_tolerances = (0.25, 15.0)      # a quarter metre; 15 degrees of heading
    vqgan_config = "habitat"
    teco_config = "habitat"
    release_convention = "produced"
    small_args = ("--length", "16", "--resolution", "32")

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("habitat")
        g.add_argument("--scenes", required=True,
                       help="scene folder (searched recursively), glob, text file listing scene files, or a habitat "
                            "*.scene_dataset_config.json (.glb/.ply/.obj; bad ones are skipped with a warning)")
        for f in dataclasses.fields(ProtocolConfig):
            g.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                           help=f"{_HELP[f.name]} (default: %(default)s)")
        g.add_argument("--cell-size", type=float, default=0.1,
                       help="embedded backend: navigation grid cell, metres (default: %(default)s)")
        g.add_argument("--shading", choices=("flat", "lambert"), default="flat",
                       help="embedded backend: flat = textures/vertex colours as is (habitat-sim renders scans unlit), "
                            "lambert = add a directional light term (depth cues on untextured generated rooms)")
        g.add_argument("--render-simplify", type=float, default=0.0,
                       help="embedded backend: merge vertices closer than this many metres before rendering "
                            "(0 = off; 0.05 speeds up dense scans several times on CPU rendering)")
        g.add_argument("--up-axis", choices=("auto", "y", "z"), default="auto",
                       help="embedded backend: scene files' up axis; auto = z for .glb/.ply (habitat), y otherwise")

    def params(self, args: argparse.Namespace) -> dict[str, Any]:
        proto = ProtocolConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ProtocolConfig)})
        found, dataset = discover_scenes(args.scenes)
        scenes = usable_scene_files(found)                # sorted; the order fixes scene indices
        return {
            "scenes": scenes,
            # Content hashes: a scene replaced at the same path changes the config, so a resume is refused.
            "scene_sha256": file_hashes(scenes),
            "scene_dataset_config": dataset,
            "scene_dataset_config_sha256": file_hashes([dataset])[0] if dataset else "",
            "protocol": proto.to_json(),
            "cell_size": float(args.cell_size),
            "shading": args.shading,
            "render_simplify": float(args.render_simplify),
            "up_axis": args.up_axis,
            "action_names": list(ACTION_NAMES),
            "yaw_units": "degrees",
            "frame": "habitat: y up; yaw about +y, 0 faces -z, turn_left adds turn_angle",
        }

    def validate(self, params: dict[str, Any], backend: str) -> None:
        protocol_from_params(params)
        scenes = params["scenes"]
        if not scenes:
            raise ValueError("no usable scene files in --scenes (need .glb, .ply or .obj files with a navigable floor)")
        if not params["cell_size"] > 0:
            raise ValueError(f"--cell-size must be positive, got {params['cell_size']}")
        if params.get("render_simplify", 0.0) < 0:
            raise ValueError(f"--render-simplify must be >= 0, got {params['render_simplify']}")
        if backend == "embedded":
            self._first_usable_embedded(params)

    @staticmethod
    def _first_usable_embedded(params: dict[str, Any]) -> None:
        """Load scenes in order until one has a navigable floor (workers find any later bad ones)."""
        from .embedded import EmbeddedBackend

        probe = EmbeddedBackend(params)
        try:
            for i, path in enumerate(params["scenes"]):
                try:
                    probe.load_scene(i)
                    return
                except SceneUnusable as e:
                    warn_skip(path, str(e))
        finally:
            probe.close()
        raise ValueError(f"none of the {len(params['scenes'])} scene files has a navigable floor for the agent")

    def setup_args(self, workdir: str) -> list[str]:
        import os

        from .scenes import main as make_scenes
        scenes = os.path.join(workdir, "scenes")
        if make_scenes(["--out", scenes, "--count", "2", "--seed", "0"]) != 0:
            raise RuntimeError(f"make-scenes failed for {scenes}")
        return ["--scenes", scenes]

    def frame_shape(self, params: dict[str, Any]) -> tuple[int, int, int]:
        proto = protocol_from_params(params)
        return proto.length, proto.resolution, proto.resolution

    def backend_version(self, backend: str, params: dict[str, Any]) -> str:
        if backend == "embedded":
            from .embedded import EmbeddedBackend
            return EmbeddedBackend.version
        import habitat_sim
        return str(getattr(habitat_sim, "__version__", "unknown"))

    def make_backend(self, backend: str, params: dict[str, Any]) -> Backend:
        if backend == "embedded":
            from .embedded import EmbeddedBackend
            return EmbeddedBackend(params)
        if backend == self.real_backend:
            from .real import HabitatSimBackend
            return HabitatSimBackend(params)
        raise ValueError(f"unknown habitat backend '{backend}'")

    def group(self, index: int, base_seed: int, params: dict[str, Any]) -> Hashable:
        return choose_scene(episode_seed(base_seed, index, 0), len(params["scenes"]))

    def episode(self, backend: Backend, index: int, base_seed: int, params: dict[str, Any]) -> Episode:
        """Scene from the attempt-0 seed (redrawn while the worker finds it unusable); protocol draws
        from the attempt's seed, next attempt when the protocol discards the episode."""
        proto = protocol_from_params(params)
        n = len(params["scenes"])
        seed0 = episode_seed(base_seed, index, 0)
        draw, warned = 0, {}   # scene -> why it is unusable

        def attempt(seed: int) -> Episode:
            nonlocal draw
            while True:
                scene = choose_scene(seed0, n, draw)
                policy = GoalTourPolicy(proto, seeded_rng(seed, "policy"))
                try:
                    ep = rollout(backend, policy, seed, proto.length, skip=proto.skip, reset_kwargs={"scene": scene})
                except SceneUnusable as e:
                    if scene not in warned:
                        warn_skip(params["scenes"][scene], str(e))
                        warned[scene] = str(e)
                    draw += 1
                    if len(warned) == n or draw > 20 * n:
                        raise RuntimeError(f"episode {index}: no usable scene among {n}") from None
                    continue
                ep.extras["scene"] = scene
                ep.notes += [f"skipping scene {params['scenes'][k]}: {why}; its episodes use other scenes"
                             for k, why in warned.items()]
                return ep
        return redraw(index, base_seed, proto.max_attempts, attempt)


SPEC = HabitatSpec()
