"""Minecraft-200k for the shared runner and CLI: flags, parameters, store layout, backends, episodes."""
from __future__ import annotations

import argparse
from typing import Any

from generators.backend import Backend
from generators.rollout import Episode
from generators.spec import DatasetSpec, check_at_least

from . import protocol as P

SEA_LEVEL = 1               # the collector's generator option; 63 is Minecraft's default
MAX_SEA_LEVEL = {"embedded": 79, "minerl": 255}     # embedded: world.Y0 + world.HEIGHT - 1; Minecraft: 255

SWAMP_BIOMES = (6, 134)     # swampland and its hills variant: the only biomes the embedded world draws


class MinecraftSpec(DatasetSpec):
    name = "minecraft"
    real_backend = "minerl"
    real_module = "minerl"
    install_hint = ("Install it with `pip install minerl==0.4.4` (needs a Java 8 JDK on PATH/JAVA_HOME, e.g. "
                    "`apt-get install openjdk-8-jdk`; the first import builds Minecraft 1.11.2 with Malmo, "
                    "which downloads from the internet) or run with --backend embedded.")
    default_episodes = 200000
    action_names = P.ACTION_NAMES
    pose_names = P.POSE_NAMES
    pose_units = P.POSE_UNITS
    revisit_tolerances = (1.0, 20.0)       # one block; 20 degrees of heading
    vqgan_config = "minecraft"
    teco_config = "minecraft"
    release_convention = "produced-reset"
    small_args = ("--length", "16", "--resolution", "32")

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("minecraft")
        g.add_argument("--length", type=int, default=P.LENGTH,
                       help="frames per episode: the reset view, then length - 1 steps (collector: 1 + 300)")
        g.add_argument("--resolution", type=int, default=P.RESOLUTION, help="frame height = width in pixels")
        g.add_argument("--prob-forward", type=float, default=P.PROB_FORWARD,
                       help="probability of forward at each re-sample (else left/right, half each)")
        g.add_argument("--action-repeat", type=int, default=P.ACTION_REPEAT, help="steps between action re-samples")
        g.add_argument("--max-consec-forward", type=int, default=P.MAX_CONSEC_FORWARD,
                       help="forward steps in a row before a turn is forced (0: no cap)")
        g.add_argument("--biome-id", type=int, default=P.SWAMP_BIOME_ID,
                       help="the world generator's fixedBiome (6: swampland); the embedded world is always swamp")
        g.add_argument("--sea-level", type=int, default=SEA_LEVEL,
                       help="the world generator's seaLevel (collector: 1, no sea water; 63: Minecraft's default, "
                            "a flooded swamp)")
        g.add_argument("--no-turn-jump", dest="turn_jump", action="store_false",
                       help="turn without holding jump (the collector jumps on every action)")
        g.add_argument("--max-attempts", type=int, default=P.MAX_ATTEMPTS,
                       help="seeds tried per episode when the simulator ends episodes early")

    def params(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"length": args.length, "resolution": args.resolution, "prob_forward": args.prob_forward,
                "action_repeat": args.action_repeat, "max_consec_forward": args.max_consec_forward,
                "turn_degrees": P.TURN_DEGREES, "biome_id": args.biome_id, "sea_level": args.sea_level,
                "turn_jump": args.turn_jump, "max_attempts": args.max_attempts}

    def validate(self, params: dict[str, Any], backend: str) -> None:
        check_at_least(params, {"length": 1, "action_repeat": 1, "max_consec_forward": 0, "max_attempts": 1})
        if not 8 <= params["resolution"] <= 1024:
            raise ValueError(f"--resolution must be in [8, 1024], got {params['resolution']}")
        if not 0.0 <= params["prob_forward"] <= 1.0:
            raise ValueError(f"--prob-forward must be in [0, 1], got {params['prob_forward']}")
        top = MAX_SEA_LEVEL.get(backend, 255)
        sea = params.get("sea_level", SEA_LEVEL)
        if not 1 <= sea <= top:
            raise ValueError(f"--sea-level must be in [1, {top}] for the {backend} backend, got {sea}")
        if backend == "embedded" and params["biome_id"] not in SWAMP_BIOMES:
            raise ValueError(f"the embedded world is a swamp: --biome-id must be one of {SWAMP_BIOMES} "
                             f"(got {params['biome_id']}); other biomes need --backend minerl")

    def backend_version(self, backend: str, params: dict[str, Any]) -> str:
        if backend == "embedded":
            from .embedded import EMBEDDED_VERSION
            return EMBEDDED_VERSION
        from .real import real_version
        return real_version()

    def make_backend(self, backend: str, params: dict[str, Any]) -> Backend:
        r = params["resolution"]
        if backend == "embedded":
            from .embedded import EmbeddedMinecraft
            return EmbeddedMinecraft(r, r, turn_degrees=params["turn_degrees"], sea_level=params.get("sea_level", SEA_LEVEL),
                                     turn_jump=params.get("turn_jump", True))
        if backend == self.real_backend:
            from .real import MineRLBackend
            return MineRLBackend(r, params["biome_id"], turn_degrees=params["turn_degrees"],
                                 sea_level=params.get("sea_level", SEA_LEVEL), turn_jump=params.get("turn_jump", True))
        raise ValueError(f"unknown backend '{backend}': choose embedded or {self.real_backend}")

    def episode(self, backend: Backend, index: int, base_seed: int, params: dict[str, Any]) -> Episode:
        return P.collect(backend, index, base_seed, params, done=lambda: bool(getattr(backend, "done", False)))


SPEC = MinecraftSpec()
