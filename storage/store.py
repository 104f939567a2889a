"""Opening a store's root group on a local path or any fsspec URL, through one code path."""
from __future__ import annotations

import os

import numpy as np
import zarr

from .schema import FORMAT_VERSION, ArraySpec, StoreError, StoreConfig

ATTR_KEY = "teco_worlds"   # everything of ours lives under this one group attribute


def is_url(url: str) -> bool:
    return "://" in str(url) and not str(url).startswith("file://")


def normalise(url) -> str:
    url = str(url)
    if not url.strip():
        raise StoreError("the store path is empty")
    if url.startswith("file://"):
        url = url[len("file://"):]
    return url if is_url(url) else os.path.abspath(os.path.expanduser(url))


def resolve(url) -> str:
    """The store's canonical name: symlinks resolved for local paths, so one store has one lock."""
    url = normalise(url).rstrip("/") or "/"
    return url if is_url(url) else os.path.realpath(url)


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
    check_meta_types(meta, url)
    try:
        cfg = StoreConfig.from_json(meta["config"])
    except (TypeError, ValueError) as e:
        raise StoreError(f"{url} has an unreadable config: {e}") from None
    return cfg, meta


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_str_list(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


# What each attribute must be (JSON types); a hand-edited or damaged zarr.json fails here in one line
# instead of deep inside a tool.
_CONFIG_TYPES = {
    "dataset": (lambda x: isinstance(x, str), "a string"),
    "episodes": (_is_int, "an integer"), "length": (_is_int, "an integer"),
    "height": (_is_int, "an integer"), "width": (_is_int, "an integer"),
    "action_names": (_is_str_list, "a list of strings"), "pose_names": (_is_str_list, "a list of strings"),
    "backend": (lambda x: isinstance(x, str), "a string"),
    "backend_version": (lambda x: isinstance(x, str), "a string"),
    "seed": (_is_int, "an integer"), "params": (lambda x: isinstance(x, dict), "an object"),
    "episode_fields": (lambda x: isinstance(x, dict) and all(isinstance(v, str) for v in x.values()),
                       "an object of name -> dtype strings"),
    "chunk_frames": (_is_int, "an integer"), "compression_level": (_is_int, "an integer"),
}
_REQUIRED = ("dataset", "episodes", "length", "height", "width", "action_names", "pose_names")
_META_TYPES = {
    "failed": (lambda x: x is None or (isinstance(x, dict) and all(isinstance(v, dict) for v in x.values())),
               "an object of episode -> {reason, time}"),
    "codes": (lambda x: x is None or (isinstance(x, dict) and isinstance(x.get("vqgan_hash", ""), str)
                                      and _is_int(x.get("grid", 0)) and _is_int(x.get("codebook_size", 0))),
              "null or an object {vqgan_hash, grid, codebook_size}"),
}


def _wrong(url: str, where: str, value, want: str) -> StoreError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return StoreError(f"{url}: attribute {ATTR_KEY}.{where} is {shown} ({type(value).__name__}), expected {want}; "
                      "the store's zarr.json was edited or damaged: restore it or regenerate the store")


def check_meta_types(meta: dict, url: str) -> None:
    """One-line StoreError naming the first attribute of the wrong type."""
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise _wrong(url, "config", cfg, "an object")
    for key in _REQUIRED:
        if key not in cfg:
            raise StoreError(f"{url}: attribute {ATTR_KEY}.config.{key} is missing; the store's zarr.json was "
                             "edited or damaged: restore it or regenerate the store")
    for key, (ok, want) in _CONFIG_TYPES.items():
        if key in cfg and not ok(cfg[key]):
            raise _wrong(url, f"config.{key}", cfg[key], want)
    for key, (ok, want) in _META_TYPES.items():
        if key in meta and not ok(meta[key]):
            raise _wrong(url, key, meta[key], want)


def check_array(arr: zarr.Array, spec: ArraySpec, url: str, n: int, longer_ok: bool = False) -> None:
    """Shape and dtype as the config says (n episodes); longer_ok accepts more episodes (a growth a
    writer has not finished: readers read the recorded count, writers finish it). Reader and writer both."""
    want = (n, *spec.shape[1:])
    shape = tuple(arr.shape)
    ok_n = shape[:1] == want[:1] or (longer_ok and len(shape) == len(want) and shape[0] > n)
    if not ok_n or shape[1:] != want[1:] or np.dtype(arr.dtype) != np.dtype(spec.dtype):
        raise StoreError(f"{url}: array '{spec.name}' is {arr.dtype}{shape}, expected "
                         f"{np.dtype(spec.dtype)}{want}")
