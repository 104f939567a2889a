"""Every dataset, by name: the one list the CLIs, bench/ and the tests use (generators/ADDING_A_DATASET.md).

Entries are "module:attribute" so that looking one dataset up imports only that dataset's package."""
from __future__ import annotations

import importlib

from .spec import DatasetSpec

DATASETS: dict[str, str] = {
    "dmlab": "generators.dmlab.spec:SPEC",
    "minecraft": "generators.minecraft.spec:SPEC",
    "habitat": "generators.habitat.spec:SPEC",
    "synthetic": "generators.synthetic:SPEC",
}
PAPER_DATASETS = ("dmlab", "minecraft", "habitat")     # the three of the TECO paper


def names() -> list[str]:
    return list(DATASETS)


def get(name: str) -> DatasetSpec:
    """The dataset's spec; a one-line ValueError for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
    module, attr = DATASETS[name].split(":")
    spec = getattr(importlib.import_module(module), attr)
    if not isinstance(spec, DatasetSpec) or spec.name != name:
        raise TypeError(f"{DATASETS[name]} is not the DatasetSpec named '{name}'")
    return spec


def release(name: str) -> dict | None:
    """What `teco-store import --dataset NAME` needs about the dataset's released files (storage knows
    no dataset): its action names, the files' action convention and the facts the store records;
    None for a name that is not a registered dataset with a release."""
    if name not in DATASETS:
        return None
    spec = get(name)
    if spec.release_convention is None:
        return None
    return {"action_names": list(spec.action_names), "convention": spec.release_convention, "params": spec.facts()}


def store_main(argv: list[str] | None = None) -> int:
    """teco-store (storage/cli.py) with the registry's datasets known to `import`."""
    from storage.cli import main
    return main(argv, datasets=release)
