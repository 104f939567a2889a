"""Every console script goes through `run_main`: bad input is one line on stderr and a non-zero exit,
never a traceback (set TECO_DEBUG=1 to see one)."""
from __future__ import annotations

import os
import sys
from typing import Callable

# Errors that mean "the user asked for something wrong"; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, PermissionError)


def user_error_types() -> tuple[type[BaseException], ...]:
    from storage.schema import StoreError
    from generators.backend import BackendUnavailable
    return USER_ERRORS + (StoreError, BackendUnavailable)


def run_main(fn: Callable[[], int | None], prog: str) -> int:
    try:
        code = fn()
        return int(code or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; completed work is kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except user_error_types() as e:
        if os.environ.get("TECO_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
