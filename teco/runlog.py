"""Plumbing shared by both trainers: the run log (one JSON object per line in RUN/log.jsonl, mirrored
to TensorBoard when installed) and the --device choice."""
from __future__ import annotations

import json
import math
import os
import time

import torch

from .runs import disk_error


class RunLog:
    """log(step, **scalars) appends {"step", "time", **scalars}; event(kind, **fields) records anything
    else (start, resume, warnings). Appends, so a resumed run continues the same file."""

    def __init__(self, run_dir, tensorboard: bool = True):
        self.path = os.path.join(run_dir, "log.jsonl")
        try:
            os.makedirs(run_dir, exist_ok=True)
            self._f = open(self.path, "a", buffering=1)
        except OSError as e:
            raise disk_error(e, self.path, "open the run log") from None
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(os.path.join(run_dir, "tb"))
            except ImportError:   # tensorboard is optional
                self._tb = None

    def _write(self, record: dict) -> None:
        try:
            self._f.write(json.dumps(record, default=_plain) + "\n")
        except OSError as e:   # full disk: one line, not a traceback
            raise disk_error(e, self.path, "write the run log", "rerun (with --resume to continue a run)") from None

    def log(self, step: int, **scalars) -> None:
        values = {k: _plain(v) for k, v in scalars.items()}
        self._write({"step": int(step), "time": round(time.time(), 3), **values})
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, int(step))

    def event(self, kind: str, **fields) -> None:
        self._write({"event": kind, "time": round(time.time(), 3), **fields})

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        try:
            self._f.close()
        except OSError:   # the failed write was reported already
            pass

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _plain(v):
    """Tensors / numpy scalars -> Python numbers for JSON."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def read_log(run_dir) -> list[dict]:
    """All records of RUN/log.jsonl (tests and plotting)."""
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def resolve_device(name: str) -> torch.device:
    """--device auto|cpu|cuda|cuda:N -> a torch.device; asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA device is available here")
        return torch.device(name)
    raise ValueError(f"unknown --device '{name}': choose auto, cpu or cuda")
