"""Zarr v3 episode stores: one writer, one reader, one streaming torch dataset. Format: storage/FORMAT.md."""
from .schema import FORMAT_VERSION, StoreConfig, StoreError
from .writer import StoreWriter
from .reader import StoreReader

__all__ = ["FORMAT_VERSION", "StoreConfig", "StoreError", "StoreWriter", "StoreReader"]
