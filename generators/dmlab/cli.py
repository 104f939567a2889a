"""gen-dmlab: generate DMLab-40k (TECO) into a Zarr v3 store."""
from __future__ import annotations

from ..cli import run_cli
from .spec import SPEC


def main(argv: list[str] | None = None) -> int:
    return run_cli(SPEC, argv)


if __name__ == "__main__":
    import sys
    sys.exit(main())
