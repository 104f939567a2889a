"""Zarr v3 episode stores: one writer, one reader, one streaming torch dataset. Format: storage/FORMAT.md."""
from .schema import FORMAT_VERSION, StoreConfig, StoreError
from .writer import StoreWriter
from .reader import StoreReader

__all__ = ["FORMAT_VERSION", "StoreConfig", "StoreError", "StoreWriter", "StoreReader", "WindowDataset"]


def __getattr__(name):
    if name == "WindowDataset":   # the torch loader, imported on first use: writers and workers need no torch
        from .loader import WindowDataset
        return WindowDataset
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
