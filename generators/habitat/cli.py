"""`gen-habitat`: the shared generator CLI with the Habitat-200k spec."""
from __future__ import annotations

from ..cli import run_cli
from .spec import SPEC


def main(argv=None):
    return run_cli(SPEC, argv)
