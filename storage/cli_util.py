"""Kept for old imports: the console-script plumbing lives in cli_common (the bottom floor)."""
from cli_common import ENVIRONMENT_ERRNOS, USER_ERRORS, UserError, environment_error, run_main  # noqa: F401
