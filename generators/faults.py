"""Fault injection for the reliability suite, off unless TECO_FAULTS is set in a worker's environment.

TECO_FAULTS="kill:5,raise:7,hang:9,delay:0.2" makes the worker running episode 5 SIGKILL itself on its
first attempt (after simulating, before writing), episode 7 raise on every attempt, episode 9 hang on
every attempt, and every episode take 0.2 s longer (so a test can interrupt a run midway); "enospc:4" makes writing
episode 4 fail as on a full disk. Real
faults (a real SIGKILL of the Ray worker process), placed deterministically so tests can check the
outcome byte for byte.
"""
from __future__ import annotations

import errno
import os
import signal
import time


def planned(kind: str, index: int) -> bool:
    spec = os.environ.get("TECO_FAULTS", "")
    return any(p.strip() == f"{kind}:{index}" for p in spec.split(",") if p.strip())


def delay() -> float:
    for p in os.environ.get("TECO_FAULTS", "").split(","):
        if p.strip().startswith("delay:"):
            return float(p.split(":", 1)[1])
    return 0.0


def inject(index: int, attempt: int) -> None:
    """Called by the worker between simulating episode `index` and writing it."""
    if delay():
        time.sleep(delay())
    if planned("kill", index) and attempt == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    if planned("raise", index):
        raise RuntimeError(f"injected simulator fault on episode {index}")
    if planned("hang", index):
        time.sleep(3600)
    if planned("enospc", index):   # what the OS raises when the store's disk fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"episode {index}")
