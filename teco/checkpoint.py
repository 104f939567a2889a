"""Checkpoints: atomic save (a crash never leaves a half-written file), load, content hash."""
from __future__ import annotations

import hashlib
import os

import torch


def save_checkpoint(path, obj: dict) -> None:
    """torch.save to a temp file in the same folder, fsync, then os.replace over `path`."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A dict saved by save_checkpoint (tensors, numbers, strings, nested dicts/lists only)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:   # truncated / foreign files raise several types
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} does not hold a dict")
    return obj


def checkpoint_hash(path) -> str:
    """First 16 hex digits of the SHA-256 of the file's bytes: names the exact weights that made a
    store's codes."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
