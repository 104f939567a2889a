"""Store vs TECO's original format (one np.savez file per episode): size, write and random-window read.

    python bench/storage.py [--episodes 8] [--windows 200] [--window 16]

Frames come from the embedded DMLab simulator (real maze structure, 300 x 64x64); if it is not
importable, from the synthetic pan dataset (said in the output).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from common import finish, table

from storage import StoreConfig, StoreReader, StoreWriter


def episodes(n: int):
    try:
        from generators.dmlab.spec import SPEC
        params = SPEC.params(SPEC_defaults(SPEC))
        backend = SPEC.make_backend("embedded", params)
        eps = [SPEC.episode(backend, i, 0, params) for i in range(n)]
        return "dmlab embedded", eps, SPEC.store_config(params, "embedded", n, 0)
    except ImportError as e:
        print(f"(embedded DMLab not importable: {e}; using the synthetic pan dataset)")
        from generators.synthetic import SPEC
        params = {"length": 300, "resolution": 64, "pose_units": "pixels"}
        backend = SPEC.make_backend("embedded", params)
        return "synthetic", [SPEC.episode(backend, i, 0, params) for i in range(n)], SPEC.store_config(params, "embedded", n, 0)


def SPEC_defaults(spec):
    import argparse as ap
    p = ap.ArgumentParser()
    spec.add_args(p)
    return p.parse_args([])


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--window", type=int, default=16)
    args = ap.parse_args()
    source, eps, cfg = episodes(args.episodes)
    raw = sum(e.video.nbytes + e.actions.nbytes + e.pose.nbytes for e in eps)
    tmp = tempfile.mkdtemp(prefix="bench_storage")
    rng = np.random.default_rng(0)
    picks = [(int(rng.integers(len(eps))), int(rng.integers(cfg.length - args.window + 1))) for _ in range(args.windows)]
    win_bytes = args.window * eps[0].video[0].nbytes
    rows, fig = [], {"source": source, "episodes": len(eps), "raw_bytes": raw}
    try:
        # (zstd level, frames per inner chunk); the store's default is level 1, 50-frame chunks
        variants = {"zarr_zstd1": (1, 50), "zarr_zstd3": (3, 50), "zarr_zstd9": (9, 50), "zarr_zstd1_c25": (1, 25)}
        for name, (level, chunk) in variants.items():
            url = os.path.join(tmp, name + ".zarr")
            c = StoreConfig(**{**cfg.to_json(), "compression_level": level, "chunk_frames": chunk})
            t0 = time.perf_counter()
            w = StoreWriter.create(url, c)
            for i, e in enumerate(eps):
                w.write_episode(i, e.video, e.actions, e.pose, **e.extras)
                w.mark_complete(i, i)
            wt = time.perf_counter() - t0
            r = StoreReader(url)
            t0 = time.perf_counter()
            for i, t in picks:
                r.read("video", i, t, t + args.window)
            rt = time.perf_counter() - t0
            fig[f"{name}_bytes"] = du(url)
            fig[f"{name}_write_MBps"] = raw / wt / 1e6
            fig[f"{name}_read_MBps"] = win_bytes * len(picks) / rt / 1e6
            rows.append((name, fig[f"{name}_bytes"], raw / fig[f"{name}_bytes"], fig[f"{name}_write_MBps"], fig[f"{name}_read_MBps"]))
        for name, save in (("npz", np.savez), ("npz_compressed", np.savez_compressed)):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            t0 = time.perf_counter()
            for i, e in enumerate(eps):
                save(os.path.join(d, f"{i:06d}.npz"), video=e.video, actions=e.actions)
            wt = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i, t in picks:
                with np.load(os.path.join(d, f"{i:06d}.npz")) as z:
                    z["video"][t:t + args.window]
            rt = time.perf_counter() - t0
            fig[f"{name}_bytes"] = du(d)
            fig[f"{name}_write_MBps"] = raw / wt / 1e6
            fig[f"{name}_read_MBps"] = win_bytes * len(picks) / rt / 1e6
            rows.append((name, fig[f"{name}_bytes"], raw / fig[f"{name}_bytes"], fig[f"{name}_write_MBps"], fig[f"{name}_read_MBps"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours, base = f"zarr_zstd{StoreConfig.compression_level}", "npz"   # the store's default level
    fig["store_default"] = ours
    fig["bytes_ratio_npz_over_store"] = fig[f"{base}_bytes"] / fig[f"{ours}_bytes"]
    fig["write_ratio_store_over_npz"] = fig[f"{ours}_write_MBps"] / fig[f"{base}_write_MBps"]
    fig["read_ratio_store_over_npz"] = fig[f"{ours}_read_MBps"] / fig[f"{base}_read_MBps"]
    print(f"{len(eps)} episodes of {cfg.length} x {cfg.height}x{cfg.width} from {source}; "
          f"random {args.window}-frame windows x {args.windows}; the store's default is {ours}")
    print(table(rows, ("format", "bytes", "compression", "write MB/s", "window read MB/s")))
    print(f"\nstore vs np.savez: {fig['bytes_ratio_npz_over_store']:.2f}x smaller, "
          f"write {fig['write_ratio_store_over_npz']:.2f}x, window read {fig['read_ratio_store_over_npz']:.2f}x")
    finish(fig)


if __name__ == "__main__":
    main()
