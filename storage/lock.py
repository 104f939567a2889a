"""One generation run per store: a lock object beside the store, released on exit, stale after a crash."""
from __future__ import annotations

import json
import os
import socket
import time

import fsspec

STALE_AFTER_S = 600.0   # a lock from another host whose heartbeat is older than this is stale


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLock:
    def __init__(self, store_url: str):
        self.url = store_url.rstrip("/") + ".lock"
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.held = False

    def _owner(self) -> dict | None:
        try:
            with self.fs.open(self.path, "r") as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None

    def _stale(self, owner: dict | None) -> bool:
        if owner is None:
            return True
        if owner.get("host") == socket.gethostname():
            return not _pid_alive(int(owner.get("pid", -1)))
        return time.time() - float(owner.get("heartbeat", 0)) > STALE_AFTER_S

    def acquire(self) -> None:
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "heartbeat": time.time()}
        for _ in range(2):
            try:
                with self.fs.open(self.path, "xb") as f:   # atomic create where the filesystem supports it
                    f.write(json.dumps(me).encode())
                self.held = True
                return
            except FileExistsError:
                owner = self._owner()
                if not self._stale(owner):
                    raise FileExistsError(
                        f"another generation run (pid {owner.get('pid')} on {owner.get('host')}) is writing "
                        f"this store; wait for it to finish or, if it is dead, delete {self.url}") from None
                self.fs.rm(self.path)   # stale: its owner crashed
        raise FileExistsError(f"could not take the lock {self.url}")

    def heartbeat(self) -> None:
        if self.held:
            owner = self._owner() or {}
            owner["heartbeat"] = time.time()
            with self.fs.open(self.path, "w") as f:
                json.dump(owner, f)

    def release(self) -> None:
        if self.held:
            try:
                self.fs.rm(self.path)
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
