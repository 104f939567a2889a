"""Shared by the benchmark scripts: a readable table and the closing JSON line."""
from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def table(rows: list[tuple], headers: tuple) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def finish(figures: dict) -> None:
    """The last line of every benchmark: one JSON object with every figure and ratio."""
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in figures.items()}), flush=True)
