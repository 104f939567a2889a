"""Opening a store's root group on a local path or any fsspec URL, through one code path."""
from __future__ import annotations

import os

import zarr

from .schema import FORMAT_VERSION, StoreError, StoreConfig

ATTR_KEY = "teco_worlds"   # everything of ours lives under this one group attribute


def is_url(url: str) -> bool:
    return "://" in str(url) and not str(url).startswith("file://")


def normalise(url) -> str:
    url = str(url)
    if url.startswith("file://"):
        url = url[len("file://"):]
    return url if is_url(url) else os.path.abspath(os.path.expanduser(url))


def exists(url: str) -> bool:
    url = normalise(url)
    if not is_url(url):
        return os.path.exists(os.path.join(url, "zarr.json"))
    import fsspec
    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path.rstrip("/") + "/zarr.json")


def make_parent(url: str) -> None:
    """Make a new local store's parent folders (like mkdir -p); a file in the way is a clear error."""
    url = normalise(url)
    if is_url(url):
        return
    parent = os.path.dirname(url)
    probe = parent
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.path.isdir(probe):
        raise NotADirectoryError(f"cannot create store {url}: {probe} is a file, not a folder")
    os.makedirs(parent, exist_ok=True)


def open_group(url: str, mode: str) -> zarr.Group:
    url = normalise(url)
    if mode in ("r", "r+") and not exists(url):   # never create a store by reading or updating it
        if not is_url(url) and not os.path.exists(url):
            raise StoreError(f"no store at {url}: the path does not exist")
        raise StoreError(f"{url} is not an episode store (no zarr.json); create one with a gen-* command or `teco-store import`")
    try:
        return zarr.open_group(url, mode=mode, zarr_format=3)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise StoreError(f"cannot open store {url}: {e}") from None
    except Exception as e:   # zarr raises several types for foreign or v2 data
        raise StoreError(f"cannot open {url} as a Zarr v3 group: {type(e).__name__}: {e}") from None


def read_meta(group: zarr.Group, url: str) -> tuple[StoreConfig, dict]:
    """The config and our attributes, after checking this is one of our stores of a known format."""
    meta = group.attrs.asdict().get(ATTR_KEY)
    if not isinstance(meta, dict) or "config" not in meta:
        raise StoreError(f"{url} is a Zarr group but not an episode store (attribute '{ATTR_KEY}' missing)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreError(f"{url} has store format version {version}; this tool reads version {FORMAT_VERSION}")
    try:
        cfg = StoreConfig.from_json(meta["config"])
    except (TypeError, ValueError) as e:
        raise StoreError(f"{url} has an unreadable config: {e}") from None
    return cfg, meta
