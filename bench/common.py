"""Shared by the benchmark scripts: a readable table, goal checks and the closing JSON line."""
from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# first on the path, ahead of bench/ itself: bench/storage.py must not shadow the storage package
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)


def table(rows: list[tuple], headers: tuple) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load() -> str:
    """The machine's load when a figure was taken (figures on a busy machine are lower bounds)."""
    try:
        one, five, _ = os.getloadavg()
        return f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"
    except OSError:
        return "load average unknown"


def wait_quiet(busy: float = 0.25, longest: float = 30.0) -> float:
    """Wait until the machine's CPUs are below `busy` utilisation over a second (e.g. a Ray cluster that
    just started still has its idle workers importing for seconds), at most `longest` s; -> seconds waited."""
    def times():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]   # total, idle + iowait
    t0 = time.time()
    while time.time() - t0 < longest:
        total, idle = times()
        time.sleep(1.0)
        total2, idle2 = times()
        if total2 > total and 1 - (idle2 - idle) / (total2 - total) < busy:
            break
    return time.time() - t0


def goals_table(fig: dict, goals: dict[str, tuple[str, float, str]]) -> str:
    """goals: key -> (op '>=' or '<=', target, what). Rows for the figures present in `fig`."""
    rows = []
    for key, (op, target, what) in goals.items():
        if key in fig:
            v = fig[key]
            ok = v >= target if op == ">=" else v <= target
            rows.append((what, key, f"{v:.3f}", f"{op} {target}", "yes" if ok else "NO"))
    return table(rows, ("figure", "key", "value", "goal", "met"))


def finish(figures: dict, goals: dict | None = None) -> None:
    """The last line of every benchmark: one JSON object with every figure and ratio (and the goals)."""
    def r(v):
        return round(v, 6) if isinstance(v, float) else [r(x) for x in v] if isinstance(v, list) else v
    out = {k: r(v) for k, v in figures.items()}
    if goals:
        out["goals"] = {k: f"{op} {t}" for k, (op, t, _) in goals.items()}
    print(json.dumps(out), flush=True)
