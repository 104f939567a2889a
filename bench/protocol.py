"""What the exploration policies do: coverage, actions, motion and revisits per dataset, beside the authors'
collectors where their figures are known.

    python bench/protocol.py [--datasets dmlab,minecraft,habitat] [--episodes 8] [--store NAME=PATH ...]

Episodes come from a store (`--store dmlab=data/dmlab.zarr`, e.g. one made by gen-dmlab) or, by default, from
the dataset's spec with its default flags on the embedded backend (episodes 0..N-1 of seed 0: the episodes
`gen-* --seed 0` writes). Habitat runs on `--scenes` or on make-scenes rooms (2 scenes, seed 0).
Per dataset, mean and range over the episodes, from the recorded actions and poses:
  distinct cells  DMLab maze cells visited (cell size from the store's params: `cell_size`, else pose_units)
  area            m^2 (Habitat: distinct 0.5 m squares) / blocks^2 (Minecraft: distinct 1-block squares)
  action shares   each action's share of the recorded actions (-1, the reset view, excluded)
  moving steps    share of steps whose horizontal position changed
  revisits        share of frames within half a cell / 3 blocks / 0.5 m of a place seen >= 50 frames earlier
  path length     horizontal distance walked (cells / blocks / m)
Collector figures: DMLab's final agent (random_agent_traverse.py, commit "ready") run on our maze, as measured
for issue 11; Minecraft's action shares from the collector's own sampling rule (collect.py), simulated here;
Habitat's depend on the scans, none known.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile

import numpy as np

from common import ROOT, finish, table

sys.path.insert(0, ROOT)     # before bench/, whose storage.py would shadow the package

GAP = 50                 # "seen >= 50 frames earlier"
# dataset -> (horizontal pose columns, revisit radius, area cell, units, move threshold) in pose units;
# DMLab's are in maze cells and scaled by the cell size.
GEOMETRY = {
    "dmlab": ((0, 1), 0.5, 1.0, "cells", 0.005),
    "minecraft": ((0, 2), 3.0, 1.0, "blocks", 0.01),
    "habitat": ((0, 2), 0.5, 0.5, "m", 0.001),
}
COLLECTOR = {   # figures known for the authors' collectors (see the module docstring)
    "dmlab": {"distinct_cells": "~25 (17-31)", "share_forward": "~0.40", "moving_steps": "~0.68"},
}


def dmlab_cell_size(params: dict) -> float:
    """Maze cell size in pose units: params["cell_size"], else "<n> per maze cell" in pose_units, else 100."""
    if "cell_size" in params:
        return float(params["cell_size"])
    m = re.search(r"([0-9.]+) per maze cell", str(params.get("pose_units", "")))
    return float(m.group(1)) if m else 100.0


def episode_figures(dataset: str, actions: np.ndarray, pose: np.ndarray, names: list[str], scale: float) -> dict:
    """Figures of one episode; `scale` converts pose units to the dataset's units (DMLab: 1 / cell size)."""
    cols, radius, area_cell, _, move_eps = GEOMETRY[dataset]
    xy = pose[:, cols].astype(np.float64) * scale
    out = {}
    cells = {tuple(c) for c in np.floor(xy / area_cell).astype(np.int64).tolist()}
    if dataset == "dmlab":
        out["distinct_cells"] = float(len(cells))
    else:
        out["area"] = len(cells) * area_cell ** 2
    a = actions[actions >= 0]
    for k, name in enumerate(names):
        out[f"share_{name}"] = float((a == k).mean()) if len(a) else 0.0
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    out["moving_steps"] = float((step > move_eps).mean())
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    earlier = np.tril(np.ones((len(xy), len(xy)), bool), -GAP)          # s <= t - GAP
    out["revisits"] = float(((d <= radius) & earlier).any(1).mean())
    out["path_length"] = float(step.sum())
    return out


def from_store(path: str):
    from storage import StoreReader
    r = StoreReader(path)
    cfg = r.config
    eps = [(r.read("actions", int(i)), r.read("pose", int(i))) for i in r.complete_indices()]
    return cfg.dataset, cfg.action_names, cfg.params, eps


def from_spec(name: str, episodes: int, scenes: str | None, tmp: str):
    import importlib
    spec = importlib.import_module(f"generators.{name}.spec").SPEC
    argv = []
    if name == "habitat":
        if scenes is None:
            from generators.habitat.scenes import main as make_scenes
            scenes = os.path.join(tmp, "scenes")
            make_scenes(["--out", scenes, "--count", "2", "--seed", "0"])
        argv = ["--scenes", scenes]
    p = argparse.ArgumentParser()
    spec.add_args(p)
    params = spec.params(p.parse_args(argv))
    spec.validate(params, "embedded")
    cfg = spec.store_config(params, "embedded", episodes, 0)
    backend = spec.make_backend("embedded", params)
    try:
        eps = []
        for i in range(episodes):
            ep = spec.episode(backend, i, 0, params)
            eps.append((ep.actions, ep.pose))
    finally:
        backend.close()
    return name, cfg.action_names, params, eps


def collector_minecraft_shares(episodes: int = 2000, length: int = 300, p_forward: float = 0.9, repeat: int = 5,
                               cap: int = 50, seed: int = 0) -> np.ndarray:
    """The Minecraft collector's sampling rule, world-free: a new action every `repeat` ticks, forward with
    p_forward unless `cap` forward ticks ran in a row, else left/right evenly."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(3)
    for _ in range(episodes):
        run, action = 0, None
        for t in range(length):
            if action is None or t % repeat == 0:
                pf = 0.0 if run >= cap else p_forward
                action = int(rng.choice(3, p=[pf, (1 - pf) / 2, (1 - pf) / 2]))
            run = run + 1 if action == 0 else 0
            counts[action] += 1
    return counts / counts.sum()      # the collector's ids 1, 2, 3 (forward, left, right), ours too


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="dmlab,minecraft,habitat")
    ap.add_argument("--episodes", type=int, default=8, help="episodes per dataset from the spec (>= 8)")
    ap.add_argument("--store", action="append", default=[], metavar="NAME=PATH",
                    help="read this dataset's episodes from a store instead (its complete episodes)")
    ap.add_argument("--scenes", default=None, help="habitat scenes (default: 2 make-scenes rooms)")
    args = ap.parse_args()
    stores = dict(s.split("=", 1) for s in args.store)
    tmp = tempfile.mkdtemp(prefix="bench_proto")
    fig, rows = {}, []
    try:
        for name in args.datasets.split(","):
            if name not in GEOMETRY:
                raise SystemExit(f"unknown dataset {name}: choose among {', '.join(GEOMETRY)}")
            if name in stores:
                dataset, names, params, eps = from_store(stores[name])
                source = stores[name]
            else:
                dataset, names, params, eps = from_spec(name, args.episodes, args.scenes, tmp)
                source = "spec defaults, embedded, seed 0"
            if len(eps) < 8:
                print(f"warning: {name}: only {len(eps)} episodes (the figures want >= 8)")
            scale = 1.0 / dmlab_cell_size(params) if name == "dmlab" else 1.0
            per = [episode_figures(name, a, p, names, scale) for a, p in eps]
            units = GEOMETRY[name][3]
            collector = dict(COLLECTOR.get(name, {}))
            if name == "minecraft":
                shares = collector_minecraft_shares()
                collector.update({f"share_{names[k + 1]}": f"{v:.3f}" for k, v in enumerate(shares)})
            fig[f"{name}_episodes"] = len(eps)
            fig[f"{name}_source"] = source
            for key in per[0]:
                vals = np.array([f[key] for f in per])
                fig[f"{name}_{key}"] = float(vals.mean())
                unit = {"area": f"{units}^2", "path_length": units}.get(key, "")
                rows.append((name, f"{key} {f'({unit})' if unit else ''}".strip(), float(vals.mean()),
                             f"{vals.min():.3g}-{vals.max():.3g}", collector.get(key, "")))
            for key, v in collector.items():
                fig[f"{name}_collector_{key}"] = v
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"revisit radius: half a cell (DMLab), 3 blocks (Minecraft), 0.5 m (Habitat); gap {GAP} frames")
    print(table(rows, ("dataset", "figure", "mean", "range", "collector")))
    finish(fig)


if __name__ == "__main__":
    main()
