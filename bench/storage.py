"""Store vs TECO's original format (one .npz file per episode): size, write and random-window read.

    python bench/storage.py [--episodes 8] [--windows 200] [--window 16] [--rounds 3]

Frames come from the embedded DMLab simulator at the default settings (300 x 64x64); if it is not
importable, from the synthetic pan dataset (said in the output). Reads of the store and of the page-cached
.npz files alternate over `--rounds` rounds and each keeps its best round, so a busy machine's load
drifts cancel in the ratios. The store is read by StoreReader, which decodes a local shard's inner chunks
and an episode's action chunk itself (storage/shards.py); `*_via_zarr` is the same store read through
zarr-python, `*_train` a training window as the loader reads it (frames and actions) from the default store
and from the .npz files. Goals (issue 14): store bytes / raw bytes <= 0.36 with the default settings;
random 16-frame window read, store / page-cached uncompressed .npz >= 1.0.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from common import finish, goals_table, load, table

from storage import StoreConfig, StoreReader, StoreWriter

GOALS = {"store_bytes_over_raw": ("<=", 0.36, "store bytes / raw bytes (DMLab, default settings)"),
         "window_read_store_over_npz": (">=", 1.0, "random 16-frame window read, store / page-cached .npz")}
DEFAULT = (StoreConfig.compression_level, StoreConfig.chunk_frames)


def episodes(n: int):
    try:
        from generators.dmlab.spec import SPEC
        params = SPEC.params(spec_defaults(SPEC))
        backend = SPEC.make_backend("embedded", params)
        eps = [SPEC.episode(backend, i, 0, params) for i in range(n)]
        return "dmlab embedded", eps, SPEC.store_config(params, "embedded", n, 0)
    except ImportError as e:
        print(f"(embedded DMLab not importable: {e}; using the synthetic pan dataset)")
        from generators.synthetic import SPEC
        params = {"length": 300, "resolution": 64, "pose_units": "pixels"}
        backend = SPEC.make_backend("embedded", params)
        return "synthetic", [SPEC.episode(backend, i, 0, params) for i in range(n)], SPEC.store_config(params, "embedded", n, 0)


def spec_defaults(spec):
    p = argparse.ArgumentParser()
    spec.add_args(p)
    return p.parse_args([])


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    source, eps, cfg = episodes(args.episodes)
    raw = sum(e.video.nbytes + e.actions.nbytes + e.pose.nbytes for e in eps)
    tmp = tempfile.mkdtemp(prefix="bench_storage")
    rng = np.random.default_rng(0)
    picks = [(int(rng.integers(len(eps))), int(rng.integers(cfg.length - args.window + 1))) for _ in range(args.windows)]
    win_bytes = args.window * eps[0].video[0].nbytes
    rows, fig = [], {"source": source, "episodes": len(eps), "raw_bytes": raw, "load_before": load()}
    # (zstd level, frames per inner chunk); the first is the store's default
    variants = [DEFAULT] + [v for v in [(1, 50), (3, 50), (5, 50), (9, 50), (5, 75), (5, 100), (9, 300)] if v != DEFAULT]
    readers: dict[str, callable] = {}
    same: dict[str, str] = {}   # reader name -> the format whose bytes it reads (rows without sizes of their own)
    try:
        for level, chunk in variants:
            name = f"zarr_zstd{level}_c{chunk}"
            url = os.path.join(tmp, name + ".zarr")
            c = StoreConfig(**{**cfg.to_json(), "compression_level": level, "chunk_frames": chunk})
            w = StoreWriter.create(url, c)
            t0 = time.perf_counter()
            for i, e in enumerate(eps):
                w.write_episode(i, e.video, e.actions, e.pose, **e.extras)
                w.mark_complete(i, i)
            wt = time.perf_counter() - t0
            fig[f"{name}_bytes"] = du(url)
            fig[f"{name}_write_MBps"] = raw / wt / 1e6
            r = StoreReader(url)
            readers[name] = lambda i, t, r=r: r.read("video", i, t, t + args.window)
            if (level, chunk) == DEFAULT:   # the same store read through zarr-python (the reference path)
                z = StoreReader(url, direct=False)
                readers[name + "_via_zarr"] = lambda i, t, z=z: z.read("video", i, t, t + args.window)
                readers[name + "_train"] = lambda i, t, r=r: (r.read("video", i, t, t + args.window),
                                                              r.read("actions", i, t, t + args.window))
                same.update({name + "_via_zarr": name, name + "_train": name})
        for name, save in (("npz", np.savez), ("npz_compressed", np.savez_compressed)):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            t0 = time.perf_counter()
            for i, e in enumerate(eps):
                save(os.path.join(d, f"{i:06d}.npz"), video=e.video, actions=e.actions)
            fig[f"{name}_write_MBps"] = raw / (time.perf_counter() - t0) / 1e6
            fig[f"{name}_bytes"] = du(d)

            def read_npz(i, t, d=d, fields=("video",)):
                with np.load(os.path.join(d, f"{i:06d}.npz")) as z:
                    return [z[f][t:t + args.window] for f in fields]
            readers[name] = read_npz
            if name == "npz":
                readers["npz_train"] = lambda i, t, f=read_npz: f(i, t, fields=("video", "actions"))
                same["npz_train"] = "npz"
        for fn in readers.values():       # warm: page cache, open arrays
            fn(*picks[0])
        best = {name: float("inf") for name in readers}
        for _ in range(args.rounds):      # alternate formats so load drift hits all of them alike
            for name, fn in readers.items():
                t0 = time.perf_counter()
                for i, t in picks:
                    fn(i, t)
                best[name] = min(best[name], time.perf_counter() - t0)
        for name in readers:
            if name in same:
                fig[f"{name}_window_ms"] = 1e3 * best[name] / len(picks)
                rows.append((name, f"({same[name]})", "", "", fig[f"{name}_window_ms"]))
                continue
            fig[f"{name}_read_MBps"] = win_bytes * len(picks) / best[name] / 1e6
            fig[f"{name}_window_ms"] = 1e3 * best[name] / len(picks)
            rows.append((name, fig[f"{name}_bytes"], fig[f"{name}_bytes"] / raw, fig[f"{name}_write_MBps"],
                         fig[f"{name}_window_ms"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours = f"zarr_zstd{DEFAULT[0]}_c{DEFAULT[1]}"
    fig["store_default"] = ours
    fig["store_bytes_over_raw"] = fig[f"{ours}_bytes"] / raw
    fig["store_bytes_per_episode"] = fig[f"{ours}_bytes"] / len(eps)
    fig["window_read_store_over_npz"] = best["npz"] / best[ours]
    fig["window_read_store_over_npz_compressed"] = best["npz_compressed"] / best[ours]
    fig["window_read_zarr_python_over_npz"] = best["npz"] / best[ours + "_via_zarr"]
    fig["train_window_read_store_over_npz"] = best["npz_train"] / best[ours + "_train"]
    fig["write_store_over_npz"] = fig[f"{ours}_write_MBps"] / fig["npz_write_MBps"]
    fig["load_after"] = load()
    print(f"{len(eps)} episodes of {cfg.length} x {cfg.height}x{cfg.width} from {source}; random {args.window}-frame "
          f"windows x {args.windows}, best of {args.rounds} alternating rounds; the store's default is {ours}")
    print(f"{fig['load_before']} before, {fig['load_after']} after")
    print(table(rows, ("format", "bytes", "of raw", "write MB/s", "window read ms")))
    print(f"\nstore (default) per episode {fig['store_bytes_per_episode'] / 1e6:.2f} MB; window read "
          f"{fig['window_read_store_over_npz']:.2f}x page-cached .npz, {fig['window_read_store_over_npz_compressed']:.1f}x "
          f"np.savez_compressed; through zarr-python {fig['window_read_zarr_python_over_npz']:.2f}x .npz; "
          f"frames + actions (a training window) {fig['train_window_read_store_over_npz']:.2f}x .npz")
    print(goals_table(fig, GOALS))
    finish(fig, GOALS)


if __name__ == "__main__":
    main()
