"""One writer per store: a lock object beside the store, keyed by the resolved store path (a symlink
names the same lock), released on exit, stale after a crash.

Taken for a whole run by gen-* (the runner), teco-encode and `teco-store verify --mark-incomplete`;
a StoreWriter that changes attributes, grows the store or (re)creates `codes` without holding it
takes it for just that update (`locked`)."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time

import fsspec

from cli_common import os_error_message  # noqa: F401 (also imported from here)

from . import store as _store
from .schema import StoreError

log = logging.getLogger(__name__)

STALE_AFTER_S = 600.0   # a lock from another host whose heartbeat is older than this is stale
SHORT_WAIT_S = 10.0     # how long an attribute update waits for another short update to finish
YOUNG_S = 5.0           # an unreadable lock younger than this is still being written, not stale

_HELD: dict[str, int] = {}   # lock URL -> how many StoreLocks of this process hold it


def lock_url(store_url) -> str:
    return _store.resolve(store_url) + ".lock"


def held_here(store_url) -> bool:
    """Whether this process holds the store's lock (the gen driver, teco-encode)."""
    return _HELD.get(lock_url(store_url), 0) > 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _default_purpose() -> str:
    return os.path.basename(sys.argv[0] or "") or "python"


class StoreLock:
    def __init__(self, store_url: str, purpose: str | None = None, short: bool = False):
        self.url = lock_url(store_url)
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.purpose = purpose or _default_purpose()
        self.short = short   # held for one attribute update: others wait for it instead of failing
        self.held = False
        self.me: dict = {}

    def _owner(self) -> dict | None:
        try:
            with self.fs.open(self.path, "r") as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) else None
        except (FileNotFoundError, json.JSONDecodeError, OSError, UnicodeDecodeError):
            return None

    def _stale(self, owner: dict | None) -> bool:
        if owner is None:
            return True
        try:
            if owner.get("host") == socket.gethostname():
                return not _pid_alive(int(owner.get("pid", -1)))
            return time.time() - float(owner.get("heartbeat", 0)) > STALE_AFTER_S
        except (TypeError, ValueError):
            return True

    def _create(self, me: dict) -> None:
        """Atomic create where the filesystem supports it; a half-written lock of ours is removed."""
        created = False
        try:
            with self.fs.open(self.path, "xb") as f:
                created = True
                f.write(json.dumps(me).encode())
        except FileExistsError:
            raise
        except OSError as e:
            if created:
                with contextlib.suppress(OSError):
                    self.fs.rm(self.path)
            if e.filename is None:
                e.filename = self.url
            raise StoreError(os_error_message(e, f"cannot take the store lock {self.url}")) from None

    def acquire(self) -> None:
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "heartbeat": time.time(),
              "purpose": self.purpose, "short": self.short}
        deadline = time.time() + SHORT_WAIT_S
        while True:
            try:
                self._create(me)
                self.held, self.me = True, me
                _HELD[self.url] = _HELD.get(self.url, 0) + 1
                return
            except FileExistsError:
                owner = self._owner()
                if owner is None and self._age() < YOUNG_S:   # being written by its creator: not stale
                    if time.time() < deadline:
                        time.sleep(0.05)
                        continue
                    raise FileExistsError(f"another run is taking the lock {self.url} right now; retry in a "
                                          "few seconds") from None
                if self._stale(owner):
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(self.path)   # stale: its owner crashed
                    continue
                if owner.get("short") and time.time() < deadline:
                    time.sleep(0.05)
                    continue
                raise FileExistsError(
                    f"another generation run or store writer ({owner.get('purpose', '?')}, pid {owner.get('pid')} "
                    f"on {owner.get('host')}) is writing this store; wait for it to finish or, if it is dead, "
                    f"delete {self.url}") from None

    def _age(self) -> float:
        try:
            info = self.fs.info(self.path)
        except OSError:
            return float("inf")
        mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
        if hasattr(mtime, "timestamp"):
            mtime = mtime.timestamp()
        try:
            return time.time() - float(mtime)
        except (TypeError, ValueError):
            return float("inf")

    def _ours(self, owner: dict | None) -> bool:
        return owner is not None and all(owner.get(k) == self.me.get(k) for k in ("host", "pid", "started"))

    def _read_owner(self) -> dict | None:
        """The lock's content; an unreadable one is read again (a transient object-store error)."""
        for attempt in range(3):
            owner = self._owner()
            if owner is not None or not self.fs.exists(self.path):
                return owner
            time.sleep(0.2 * (attempt + 1))
        return None

    def heartbeat(self) -> None:
        """Refresh the heartbeat; written beside and renamed over the lock (local) so that a full disk
        can never leave an empty lock another run would take for stale.

        A run stalled past STALE_AFTER_S (suspended, a frozen NFS mount) may find that another run took
        its lock over as stale: it then stops (FileExistsError) instead of overwriting the newer lock.
        (Between this check and the write a takeover is still possible; without a compare-and-swap on
        every filesystem the window is only narrowed to one read and one write.)"""
        if not self.held:
            return
        owner = self._read_owner()
        if not self._ours(owner):
            self._lost()
            who = (f"{owner.get('purpose', '?')}, pid {owner.get('pid')} on {owner.get('host')}" if owner
                   else "its lock was removed")
            raise FileExistsError(f"another run took over the store lock {self.url} while this one was stalled "
                                  f"({who}); stopping: rerun the same command once it is done")
        owner["heartbeat"] = time.time()
        data = json.dumps(owner).encode()
        try:
            if _store.is_url(self.url):
                with self.fs.open(self.path, "wb") as f:   # one PUT: atomic on object stores
                    f.write(data)
            else:
                tmp = f"{self.path}.{os.getpid()}.tmp"
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, self.path)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(tmp)
        except OSError as e:   # the lock stays as it was: still ours, still valid on this host
            log.warning("could not refresh the heartbeat of %s: %s", self.url, e)

    def _lost(self) -> None:
        """No longer ours (or released): forget it without touching the file."""
        self.held = False
        _HELD[self.url] = _HELD.get(self.url, 1) - 1
        if _HELD[self.url] <= 0:
            _HELD.pop(self.url, None)

    def release(self) -> None:
        if self.held:
            if self._ours(self._owner()):   # another run's newer lock is never removed; an unreadable one
                # is left too: it is taken for stale once older than YOUNG_S
                try:
                    self.fs.rm(self.path)
                except FileNotFoundError:
                    pass
            self._lost()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def locked(store_url, purpose: str | None = None):
    """Hold the store's lock for one update: nothing to do where this process already holds it."""
    if held_here(store_url):
        yield
        return
    with StoreLock(store_url, purpose=purpose, short=True):
        yield
