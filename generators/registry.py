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
