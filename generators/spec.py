"""What a dataset tells the shared runner and CLI. Each dataset package defines one `DatasetSpec`
subclass instance named SPEC and registers it in generators/registry.py (generators/ADDING_A_DATASET.md)."""
from __future__ import annotations

import abc
import argparse
import math
from typing import Any, Hashable, Sequence

from storage.schema import StoreConfig

from .backend import Backend
from .rollout import Episode


def flag_name(key: str) -> str:
    return "--" + str(key).replace("_", "-")


def check_finite(params: Any, where: str = "") -> None:
    """ValueError naming the flag of the first NaN/inf float in `params` (nested dicts/lists too)."""
    if isinstance(params, float) and not math.isfinite(params):
        raise ValueError(f"{flag_name(where.split('.')[0]) if where else 'a parameter'} must be a finite "
                         f"number, got {params}")
    if isinstance(params, dict):
        for k, v in params.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(params, (list, tuple)):
        for v in params:
            check_finite(v, where)


def check_at_least(params: dict[str, Any], minimum: dict[str, int]) -> None:
    """ValueError naming the flag of the first params[key] below minimum[key] (the "must be >= 1" checks);
    keys absent from params are not checked (their defaults apply)."""
    for key, low in minimum.items():
        if key in params and params[key] < low:
            raise ValueError(f"{flag_name(key)} must be >= {low}, got {params[key]}")


class DatasetSpec(abc.ABC):
    name: str = ""                 # "dmlab": the store's `dataset` attribute and the registry key
    real_backend: str = ""         # "deepmind_lab"
    real_module: str = ""          # module whose import decides auto-selection
    install_hint: str = ""         # printed when the real backend is asked for but missing
    default_episodes: int = 0      # the paper's dataset size (40000 / 200000)
    action_names: Sequence[str] = ()                    # action id -> name
    pose_names: Sequence[str] = ("x", "y", "z", "yaw")  # pose[..., k] -> meaning
    episode_fields: dict[str, str] = {}                 # extra per-episode scalars: name -> dtype

    # Facts about the data, recorded in the store's params so that teco/ reads them from the store
    # (teco never imports generators): see `facts`.
    pose_units: str = ""                                # unit of pose x, y, z
    revisit_tolerances: tuple[float, float] | None = None   # eval-teco: (radius in pose units, yaw degrees)
    vqgan_config: str | dict | None = None              # train-vqgan default: a teco/vqgan.py name or its fields
    teco_config: str | dict | None = None               # train-teco default: a teco/config.py name or its fields

    # The authors' released files (teco-store import): how their actions[t] relates to frame t, one of
    # storage.importer.CONVENTIONS ("after", "produced", "produced-reset"); None: no release to import.
    release_convention: str | None = None

    # Flags for a small, quick store (tests, benches); `setup_args` adds what a run needs beyond them.
    small_args: Sequence[str] = ()

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Dataset flags (resolution, episode length, policy parameters, ...) with the paper's defaults."""

    @abc.abstractmethod
    def params(self, args: argparse.Namespace) -> dict[str, Any]:
        """JSON-able parameters from the parsed flags; stored in the store's attrs and handed to every
        other method here (inside Ray workers too, so keep them plain data)."""

    def validate(self, params: dict[str, Any], backend: str) -> None:
        """Raise ValueError with a one-line message for unsupported settings (e.g. a resolution)."""

    def check_params(self, params: dict[str, Any]) -> None:
        """Checks every dataset shares, run before `validate`: no NaN/inf anywhere (NaN is not JSON and
        NaN != NaN would refuse every resume)."""
        check_finite(params)

    def setup_args(self, workdir: str) -> list[str]:
        """Flags a run needs that have no default (e.g. habitat's --scenes), made under `workdir`."""
        return []

    def params_from_argv(self, argv: Sequence[str]) -> dict[str, Any]:
        """`params` for these dataset flags (the rest at their defaults), as the CLI would make them."""
        p = argparse.ArgumentParser()
        self.add_args(p)
        return self.params(p.parse_args(list(argv)))

    def facts(self) -> dict[str, Any]:
        """What the store records about its data beyond the flags (read by teco/)."""
        out: dict[str, Any] = {"pose_units": self.pose_units}
        if self.revisit_tolerances is not None:
            radius, yaw = self.revisit_tolerances
            out["revisit"] = {"radius": float(radius), "yaw": float(yaw)}
        if self.vqgan_config is not None:
            out["vqgan_config"] = self.vqgan_config
        if self.teco_config is not None:
            out["teco_config"] = self.teco_config
        return out

    def frame_shape(self, params: dict[str, Any]) -> tuple[int, int, int]:
        """(length, height, width) of an episode's video."""
        return params["length"], params["resolution"], params["resolution"]

    @abc.abstractmethod
    def backend_version(self, backend: str, params: dict[str, Any]) -> str:
        """Recorded in the store; changes when the bytes an episode produces change."""

    def store_config(self, params: dict[str, Any], backend: str, episodes: int, seed: int,
                     compression_level: int | None = None) -> StoreConfig:
        """What the store records: shapes, action and pose names, backend version, params and facts;
        `compression_level` (gen's --compression-level) replaces StoreConfig's default zstd level."""
        check_compression_level(compression_level)
        length, height, width = self.frame_shape(params)
        cfg = StoreConfig(dataset=self.name, episodes=episodes, length=length, height=height, width=width,
                          action_names=list(self.action_names), pose_names=list(self.pose_names),
                          backend=backend, backend_version=self.backend_version(backend, params), seed=seed,
                          params={**params, **self.facts()}, episode_fields=dict(self.episode_fields))
        if compression_level is not None:
            cfg.compression_level = compression_level
        return cfg

    @abc.abstractmethod
    def make_backend(self, backend: str, params: dict[str, Any]) -> Backend:
        """Build the simulator (called once per Ray worker; may be expensive)."""

    @abc.abstractmethod
    def episode(self, backend: Backend, index: int, base_seed: int, params: dict[str, Any]) -> Episode:
        """Roll out episode `index` (seeds from generators.seeds.episode_seed(base_seed, index, attempt))."""

    def group(self, index: int, base_seed: int, params: dict[str, Any]) -> Hashable:
        """Episodes of one group (e.g. one scene) are handed to the same worker in a row where possible."""
        return None


def check_compression_level(level: int | None) -> None:
    """zstd's levels are 1..22 (None: the store's default)."""
    if level is not None and not 1 <= level <= 22:
        raise ValueError(f"--compression-level must be within 1..22, got {level}")
