"""What a dataset tells the shared runner and CLI. Each of dmlab/, minecraft/, habitat/ defines one
`DatasetSpec` subclass instance named SPEC in its `spec.py`."""
from __future__ import annotations

import abc
import argparse
import math
from typing import Any, Hashable

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


class DatasetSpec(abc.ABC):
    name: str = ""                 # "dmlab": the store's `dataset` attribute
    real_backend: str = ""         # "deepmind_lab"
    real_module: str = ""          # module whose import decides auto-selection
    install_hint: str = ""         # printed when the real backend is asked for but missing
    default_episodes: int = 0      # the paper's dataset size (40000 / 200000)

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

    @abc.abstractmethod
    def store_config(self, params: dict[str, Any], backend: str, episodes: int, seed: int) -> StoreConfig:
        """What the store records: shapes, action and pose names, backend version, params."""

    @abc.abstractmethod
    def make_backend(self, backend: str, params: dict[str, Any]) -> Backend:
        """Build the simulator (called once per Ray worker; may be expensive)."""

    @abc.abstractmethod
    def episode(self, backend: Backend, index: int, base_seed: int, params: dict[str, Any]) -> Episode:
        """Roll out episode `index` (seeds from generators.seeds.episode_seed(base_seed, index, attempt))."""

    def group(self, index: int, base_seed: int, params: dict[str, Any]) -> Hashable:
        """Episodes of one group (e.g. one scene) are handed to the same worker in a row where possible."""
        return None
