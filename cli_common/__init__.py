"""The bottom floor every console script stands on (storage, generators and teco all import it; it
imports none of them): `run_main` turns bad input and environment errors (full disk, read-only mount,
permissions) into one line on stderr and a non-zero exit, never a traceback (TECO_DEBUG=1 shows one).

A layer marks its own "the user asked for something wrong" errors by subclassing `UserError`."""
from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import stat
import sys
from typing import Any, Callable


class UserError(Exception):
    """Base of the errors that mean bad input or an unusable environment, not a bug: printed as one line."""


# Errors that mean "the user asked for something wrong"; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, PermissionError)
# OSErrors that are the environment's condition, not a bug, wherever they surface (zarr and torch wrap
# them in their own exceptions: the chain is searched)
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                      errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE, errno.EISDIR}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every console script's --help: '(default: X)' appended where the help does not already say it (no
    '(default' in it) and there is a value to show (not None, not a switch's False)."""

    def _get_help_string(self, action):
        if action.default is None or action.nargs == 0 or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of e's message, cut to `limit` characters ("" for an empty message): for one-line errors."""
    return (str(e).splitlines() or [""])[0][:limit]


def plural(n: int, word: str) -> str:
    """'1 worker', '2 workers'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def strict_from_json(cls: type, d: dict[str, Any], what: str) -> Any:
    """A config dataclass from its JSON dict; unknown keys are an error (a file made by other code),
    missing ones take the field's default. The one policy for every recorded config."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} config must be a JSON object, got {type(d).__name__}")
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} config fields: {sorted(unknown)}")
    return cls(**d)


def os_error_in_chain(e: BaseException | None, errnos) -> OSError | None:
    """The first OSError with one of `errnos` in e's cause/context chain (e included)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in errnos:
            return e
        e = e.__cause__ or e.__context__
    return None


def environment_error(e: BaseException) -> OSError | None:
    """The OSError (of an environmental kind) that caused e, searching its cause/context chain."""
    return os_error_in_chain(e, ENVIRONMENT_ERRNOS)


def os_error_message(e: OSError, what: str) -> str:
    """`what` failed because of `e`: one line with the path and what to do."""
    path = e.filename or ""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "free space (or raise the quota) and rerun the same command; completed work is kept"
    elif e.errno == errno.EROFS:
        todo = ("the file system is read-only: writing needs a writable location (reading a complete "
                "store does not)")
    elif e.errno in (errno.EACCES, errno.EPERM):
        todo = "check the permissions of that path or choose another location"
    else:
        todo = "check the device and rerun the same command"
    return f"{what}: {reason}: {path}; {todo}" if path else f"{what}: {reason}; {todo}"


# Object-store failures that mean "no credentials / cannot reach the endpoint", raised by botocore (under
# s3fs) as its own types: matched by name so that this layer imports no S3 library.
REMOTE_ERRORS = {"NoCredentialsError", "PartialCredentialsError", "EndpointConnectionError",
                 "ConnectTimeoutError", "InvalidEndpointURLError", "ClientConnectorError"}


def remote_error(e: BaseException | None) -> BaseException | None:
    """The credentials / connection error of an object store in e's cause/context chain, or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ in REMOTE_ERRORS:
            return e
        e = e.__cause__ or e.__context__
    return None


def _stdout_is_pipe() -> bool:
    """True when standard output is a pipe: a BrokenPipeError then means its reader went away (`| head`)."""
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def run_main(fn: Callable[[], int | None], prog: str) -> int:
    try:
        code = fn()
        return int(code or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; completed work is kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_is_pipe():
            raise
        # as any shell tool whose reader went away: no traceback, and none at exit when Python flushes
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141   # 128 + SIGPIPE
    except Exception as e:
        if os.environ.get("TECO_DEBUG"):
            raise
        if type(e) is ImportError and "install" in str(e).lower():   # fsspec: a protocol whose package is absent
            print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        if (remote := remote_error(e)) is not None:
            print(f"{prog}: error: cannot use the object store: {' '.join(str(remote).split())}; set its "
                  "credentials and endpoint (AWS_* or FSSPEC_S3_* variables, docs/CLUSTER.md)", file=sys.stderr)
            return 2
        # a user error raised `from None` already says what failed and what to do: keep its message
        env = None if isinstance(e, USER_ERRORS) and e.__suppress_context__ else environment_error(e)
        if isinstance(e, USER_ERRORS) and (env is None or env is e):
            msg = str(e) if env is None else _os_line(env)
        elif env is not None:
            msg = _os_line(env)
        else:
            raise
        print(f"{prog}: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2


def _os_line(e: OSError) -> str:
    return os_error_message(e, "cannot write" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "failed")
