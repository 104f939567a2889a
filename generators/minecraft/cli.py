"""`gen-minecraft`: generate Minecraft-200k (python -m generators.minecraft.cli --help)."""
from __future__ import annotations

import sys

from generators.cli import run_cli

from .spec import SPEC


def main(argv: list[str] | None = None) -> int:
    return run_cli(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
