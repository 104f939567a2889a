"""The contract between a simulator and the rest of the toolkit.

Every dataset (dmlab, minecraft, habitat) has an embedded backend (pip-only, the default) and a
real one (deepmind_lab, minerl, habitat_sim). Both implement `Backend`; the policy and the runner
never know which one they drive.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cli_common import UserError


@runtime_checkable
class Backend(Protocol):
    name: str        # e.g. "embedded", "deepmind_lab"
    # No version here: what the store records is the dataset's DatasetSpec.backend_version(backend, params).

    def reset(self, seed: int, **episode: Any) -> np.ndarray:
        """Start a new episode fully determined by `seed` (and `episode` kwargs, e.g. a scene);
        returns the first observation, uint8 (H, W, 3)."""

    def step(self, action: int) -> np.ndarray:
        """Apply dataset action id `action` (action repeat included); returns uint8 (H, W, 3)."""

    def pose(self) -> np.ndarray:
        """Agent pose now, float32 (P,), layout documented by the dataset's protocol."""

    def layout(self) -> Any:
        """Whatever the policy needs to know about the world (maze grid, navmesh, ...)."""

    def close(self) -> None: ...


class BackendUnavailable(UserError, RuntimeError):
    """A real simulator was asked for but cannot be imported here; the message says how to install it."""


def module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def pick_backend(requested: str, real_name: str, real_module: str, install_hint: str) -> str:
    """Resolve "auto" | "embedded" | real_name to a backend name, failing loudly for a missing real one."""
    if requested == "auto":
        return real_name if module_available(real_module) else "embedded"
    if requested == "embedded":
        return "embedded"
    if requested == real_name:
        if not module_available(real_module):
            raise BackendUnavailable(
                f"backend '{real_name}' needs the python module '{real_module}', which is not installed here. {install_hint}")
        return real_name
    raise ValueError(f"unknown backend '{requested}': choose auto, embedded or {real_name}")
