"""Every console script goes through `run_main`: bad input and environment errors (full disk, read-only
mount, permissions) are one line on stderr and a non-zero exit, never a traceback (set TECO_DEBUG=1 to
see one)."""
from __future__ import annotations

import errno
import os
import sys
from typing import Callable

# Errors that mean "the user asked for something wrong"; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, PermissionError)
# OSErrors that are the environment's condition, not a bug, wherever they surface (zarr and torch wrap
# them in their own exceptions: the chain is searched)
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                      errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE, errno.EISDIR}


def user_error_types() -> tuple[type[BaseException], ...]:
    from storage.schema import StoreError
    from generators.backend import BackendUnavailable
    return USER_ERRORS + (StoreError, BackendUnavailable)


def environment_error(e: BaseException) -> OSError | None:
    """The OSError (of an environmental kind) that caused e, searching its cause/context chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def run_main(fn: Callable[[], int | None], prog: str) -> int:
    try:
        code = fn()
        return int(code or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; completed work is kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("TECO_DEBUG"):
            raise
        env = environment_error(e)
        if isinstance(e, user_error_types()) and (env is None or env is e):
            msg = str(e) if env is None else _os_line(env)
        elif env is not None:
            msg = _os_line(env)
        else:
            raise
        print(f"{prog}: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2


def _os_line(e: OSError) -> str:
    from storage.lock import os_error_message
    return os_error_message(e, "cannot write" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "failed")
