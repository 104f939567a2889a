"""Run folders of train-vqgan and train-teco: one place for their files and how they are written.

RUN/run.json   what the run is (kind "vqgan" or "teco", config, store, ...), written atomically;
               train-vqgan runs made before this module wrote it as config.json, which is still read
RUN/ckpt.pt    the latest checkpoint: a header line with the SHA-256 of the torch.save payload, then
               the payload; written to a temp file, fsynced, then renamed over (a crash never leaves
               half a checkpoint); a damaged one is refused by name
RUN/ckpt.prev.pt  the checkpoint before it, kept to fall back to
RUN/.lock      flock-ed by the one process writing the run (released by the kernel when it dies)
RUN/log.jsonl  scalars and events (teco/runlog.py)
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import signal
import socket
import sys
import threading

import torch

RUN_FILE, LEGACY_RUN_FILE = "run.json", "config.json"
CKPT_FILE, PREV_CKPT_FILE, LOCK_FILE = "ckpt.pt", "ckpt.prev.pt", ".lock"
_MAGIC = b"teco-ckpt sha256 "   # + 64 hex digits + newline, then the torch.save payload


class RunError(ValueError):
    """A user-facing condition of a run folder (busy, full disk, damaged checkpoint): one line, no traceback."""


class CheckpointDamaged(RunError):
    pass


# -- errors of the environment ------------------------------------------------------------------------

_HINTS = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space (disk quota exceeded)",
          errno.EROFS: "the disk is mounted read-only: use a writable folder",
          errno.EACCES: "check the folder's permissions", errno.EPERM: "check the folder's permissions"}


def disk_error(e: OSError, path, doing: str, then: str = "rerun") -> RunError:
    """OSError -> one line: what failed on which path, why, and what to do."""
    hint = _HINTS.get(e.errno, "check the disk")
    return RunError(f"cannot {doing} {os.fspath(path)}: {e.strerror or e}; {hint}, then {then}")


# -- JSON -------------------------------------------------------------------------------------------

def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # some filesystems refuse fsync on folders; the rename is still atomic
        pass
    finally:
        os.close(fd)


def write_json(path, obj) -> None:
    """Atomic: a temp file in the same folder, fsync, rename over `path`."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))
    except OSError as e:
        raise disk_error(e, path, "write") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_run(run_dir, kind: str) -> dict:
    """RUN/run.json (or a train-vqgan run's older config.json) of a run of this kind ("vqgan"|"teco")."""
    run_dir = os.fspath(run_dir)
    names = (RUN_FILE, LEGACY_RUN_FILE) if kind == "vqgan" else (RUN_FILE,)
    path = next((os.path.join(run_dir, n) for n in names if os.path.isfile(os.path.join(run_dir, n))), None)
    if path is None:
        raise FileNotFoundError(f"{run_dir} is not a train-{kind} run: {RUN_FILE} is missing")
    try:
        with open(path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    except OSError as e:
        raise disk_error(e, path, "read") from None
    if not isinstance(meta, dict) or meta.get("kind", kind) != kind:
        got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{run_dir} is not a train-{kind} run ({os.path.basename(path)} is of kind {got})")
    return meta


def check_resume(run_dir, recorded: dict, now: dict) -> None:
    """A resumed run keeps its settings: RunError naming every key of `now` whose value differs from the
    one recorded in RUN/run.json (a key the run did not record yet is taken as given)."""
    diff = [f"{k} (recorded {recorded[k]!r}, now {v!r})" for k, v in now.items()
            if k in recorded and recorded[k] != v]
    if diff:
        raise RunError(f"resumed run's settings differ from {os.path.join(os.fspath(run_dir), RUN_FILE)} in: "
                       f"{', '.join(diff)}; leave them out or match them, or start a new run in another --out")


# -- checkpoints --------------------------------------------------------------------------------------

def previous_path(path) -> str:
    folder, name = os.path.split(os.fspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f"{stem}.prev{ext}")


def has_checkpoint(path) -> bool:
    return os.path.isfile(path) or os.path.isfile(previous_path(path))


def save_checkpoint(path, obj: dict, keep_previous: bool = True) -> None:
    """Checksummed, atomic; the checkpoint it replaces becomes ckpt.prev.pt (with keep_previous)."""
    path = os.fspath(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getbuffer()
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and os.path.isfile(path):
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))
    except OSError as e:
        raise disk_error(e, path, "write checkpoint", "rerun (with --resume to continue a run)") from None
    finally:
        del payload
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A dict saved by save_checkpoint; CheckpointDamaged when its bytes changed since. Files written
    before checkpoints carried a checksum (plain torch.save zips) load unchecked."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise disk_error(e, path, "read checkpoint") from None
    view = memoryview(data)
    if data.startswith(_MAGIC):
        start = len(_MAGIC) + 65
        want = bytes(view[len(_MAGIC):start - 1]).decode("ascii", "replace")
        view = view[start:]
        if hashlib.sha256(view).hexdigest() != want:
            prev = previous_path(path)
            hint = (f"; the previous checkpoint {prev} is kept: move it over {os.path.basename(path)} to go back "
                    "to it" if os.path.isfile(prev) and prev != path else "")
            raise CheckpointDamaged(f"checkpoint {path} is damaged (its SHA-256 differs from the one written "
                                    f"with it){hint}")
    elif not data.startswith(b"PK"):   # neither ours nor a torch zip
        raise ValueError(f"{path} is not a checkpoint")
    try:
        obj = torch.load(io.BytesIO(view), map_location=map_location, weights_only=True)
    except Exception as e:   # foreign files raise several types
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} does not hold a dict")
    return obj


def load_for_resume(path, map_location="cpu") -> tuple[dict, str | None]:
    """(checkpoint, note): the latest checkpoint, or the previous one when the latest is damaged or
    missing (a crash between the two renames of save_checkpoint); note says which was used and why.
    A damaged latest is moved aside to ckpt.pt.damaged so the next save cannot rotate it over the
    good previous one."""
    path = os.fspath(path)
    try:
        return load_checkpoint(path, map_location), None
    except (CheckpointDamaged, FileNotFoundError) as e:
        prev = previous_path(path)
        if not os.path.isfile(prev):
            raise
        problem = e
    ck = load_checkpoint(prev, map_location)   # damaged too: refused with its own message
    note = f"{path} is missing" if isinstance(problem, FileNotFoundError) else str(problem).split(";")[0]
    if os.path.isfile(path):
        try:
            os.replace(path, path + ".damaged")
        except OSError as e:
            raise disk_error(e, path, "move the damaged checkpoint aside") from None
        note += f" (kept as {os.path.basename(path)}.damaged)"
    return ck, f"{note}; resuming from the previous checkpoint {prev} (step {ck.get('step')})"


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


# -- one writer per run folder ---------------------------------------------------------------------

class RunLock:
    """An exclusive flock on RUN/.lock for as long as the run writes there. The kernel drops it when the
    process dies, so a crashed run never leaves a stale lock."""

    def __init__(self, run_dir, prog: str):
        self.run_dir, self.prog = os.path.abspath(os.fspath(run_dir)), prog
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self.held:
            return self
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise disk_error(e, self.path, "create the run lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(os.read(fd, 4096) or b"{}")
            except (OSError, ValueError):
                owner = {}
            os.close(fd)
            who = f"{owner.get('prog', 'run')} (pid {owner.get('pid', '?')} on {owner.get('host', '?')})"
            raise RunError(f"another {who} is writing {self.run_dir}; wait for it to finish or choose another "
                           "--out") from None
        try:   # who holds it, for the message above; the lock works without it (full disk)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"prog": self.prog, "pid": os.getpid(), "host": socket.gethostname()}).encode())
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# -- stopping at a step boundary -----------------------------------------------------------------------

class StopSignals:
    """Inside the block SIGINT and SIGTERM ask the training loop to stop after the current step (it
    checks `requested`, saves, and exits with `exit_code`); a second signal stops at once
    (KeyboardInterrupt, nothing more saved). Outside the main thread this does nothing."""

    def __init__(self, prog: str):
        self.prog, self.signum = prog, None
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or 0)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{self.prog}: {self.name} received: finishing the current step and saving a checkpoint "
              "(send it again to stop at once without saving)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


def ignore_stop_signals(*_):
    """DataLoader worker_init_fn: workers leave SIGINT/SIGTERM to the main process (which stops at a step
    boundary); a worker killed by Ctrl-C would otherwise break the batch the last step waits for."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
