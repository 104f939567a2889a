"""A store writer in its own process, so an actor's simulator never waits on compression or the GIL.

The actor simulates episode i+1 while this process compresses and writes episode i on another core.
zstd releases the GIL, but zarr's Python around it does not, and the simulators (numba, Python policies)
hold it; a separate process takes the writer off the simulator's interpreter altogether. Frames travel
through a socket pair (one copy of the frames). `write_episode()` returns only once the episode
is on the store, so the runner's "a task returned => mark it complete" rule holds unchanged.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

import numpy as np

# The writer yields to its simulator when they meet on a core: the simulator sets the pace, the writer
# has slack (measured at 1 worker on 2 cores, bench conditions: +4-13% frames/s, 3 runs each)
NICENESS = 4


def main() -> None:
    """Child entry point: python -c '...main()' URL FD PARENT_PID."""
    url, fd, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.nice(NICENESS)
    _serve(url, Connection(fd), parent)


def _serve(url: str, conn, parent: int) -> None:
    from storage import StoreWriter
    writer = StoreWriter.open(url)
    writer.serial_compression = True   # one core: the one the simulator leaves free
    while True:
        try:
            i, shape, actions, pose, extras = conn.recv()
            video = np.frombuffer(conn.recv_bytes(), np.uint8).reshape(shape)
        except (EOFError, OSError):      # the actor is gone
            return
        if os.getppid() != parent:       # orphaned mid-request: a replacement worker owns episode i now
            return
        try:
            writer.write_episode(i, video, actions, pose, fresh=True, **extras)
        except Exception as e:           # handed back to the actor, which raises it (retry, disk full, ...)
            try:
                conn.send(e)
            except Exception:            # not picklable: its text then
                conn.send(RuntimeError(f"{type(e).__name__}: {e}"))
        else:
            conn.send(None)


class ProcessWriter:
    """StoreWriter.write_episode(fresh=True) done by a child process; thread-safe (one write at a time)."""

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None

    def start(self) -> "ProcessWriter":
        """Start the child now (its imports overlap the simulator's construction); else on first write."""
        with self._lock:
            if self._proc is None:
                self._start()
        return self

    def _start(self) -> None:
        # a fresh interpreter, not multiprocessing: the actor is multi-threaded (never fork it) and its
        # __main__ is Ray's worker loop (spawn would rerun it); the parent's sys.path goes along
        mine, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from generators.bgwriter import main; main()", self.url,
             str(theirs.fileno()), str(os.getpid())], pass_fds=(theirs.fileno(),), env=env,
            stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(mine.detach())

    def write_episode(self, i: int, video: np.ndarray, actions, pose, **extras) -> None:
        video = np.ascontiguousarray(video, np.uint8)
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            try:
                self._conn.send((int(i), video.shape, np.asarray(actions), np.asarray(pose), extras))
                self._conn.send_bytes(video.reshape(-1))   # a flat view: send_bytes counts items
                err = self._conn.recv()
            except (EOFError, OSError) as e:
                self.close()
                raise RuntimeError(f"the store writer process died while writing episode {i} ({e})") from None
        if err is not None:
            raise err

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            try:
                self._proc.wait(5)       # EOF on its socket ends it
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = self._conn = None
