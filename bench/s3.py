"""Store write and random-window read throughput on a local S3-compatible server beside local disk.

    python bench/s3.py [--episodes 8] [--windows 100] [--window 16] [--loader-workers 2]

Starts moto in server mode on a loopback port (the server the tests use; needs `pip install -e '.[dev]'`),
writes the same DMLab episodes (embedded simulator, 300 x 64x64) into a local store and into
s3://bench/d.zarr through s3fs, then reads random 16-frame windows from both: one process, and the
training loader (WindowDataset) with several DataLoader workers. With obstore installed it also reads
the bucket through zarr's ObjectStore, the alternative to s3fs. moto keeps objects in one Python
process's memory, so the S3 figures measure the client stack plus a slow server, not a real bucket.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from common import ROOT, finish, table

sys.path.insert(0, ROOT)   # the storage package, not bench/storage.py, even when ROOT is already on the path
from storage import StoreReader, StoreWriter  # noqa: E402

BUCKET = "bench"


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("moto server did not start (pip install -e '.[dev]')")
            time.sleep(0.2)


def episodes(n: int):
    import argparse as ap
    from generators.dmlab.spec import SPEC
    p = ap.ArgumentParser()
    SPEC.add_args(p)
    params = SPEC.params(p.parse_args([]))
    backend = SPEC.make_backend("embedded", params)
    return [SPEC.episode(backend, i, 0, params) for i in range(n)], SPEC.store_config(params, "embedded", n, 0)


def write(url, eps, cfg) -> float:
    t0 = time.perf_counter()
    w = StoreWriter.create(url, cfg)
    for i, e in enumerate(eps):
        w.write_episode(i, e.video, e.actions, e.pose, fresh=True, **e.extras)
        w.mark_complete(i, i)
    return time.perf_counter() - t0


def read_windows(read, picks, window) -> float:
    t0 = time.perf_counter()
    for i, t in picks:
        read(i, t, t + window)
    return time.perf_counter() - t0


def loader_windows_per_s(url, window, n, workers) -> float:
    from torch.utils.data import DataLoader
    from storage.loader import WindowDataset
    it = iter(DataLoader(WindowDataset(url, window=window, fields=("video", "actions")), batch_size=None,
                         num_workers=workers))
    for _ in range(workers):   # worker start-up and first reads
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t0)


def obstore_reader(endpoint: str):
    """-> read(i, t0, t1) through zarr's ObjectStore on obstore's S3Store, or None without obstore."""
    try:
        import obstore.store
        import zarr
        from zarr.storage import ObjectStore
    except ImportError:
        return None
    s3 = obstore.store.S3Store(BUCKET, prefix="d.zarr", endpoint=endpoint, region="us-east-1",
                               access_key_id="bench", secret_access_key="bench", client_options={"allow_http": True})
    video = zarr.open_group(ObjectStore(s3, read_only=True), mode="r", zarr_format=3)["video"]
    return lambda i, t0, t1: video[i, t0:t1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--windows", type=int, default=100)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--loader-workers", type=int, default=2)
    args = ap.parse_args()
    eps, cfg = episodes(args.episodes)
    raw = sum(e.video.nbytes + e.actions.nbytes + e.pose.nbytes for e in eps)
    rng = np.random.default_rng(0)
    picks = [(int(rng.integers(len(eps))), int(rng.integers(cfg.length - args.window + 1))) for _ in range(args.windows)]
    win_mb = args.window * eps[0].video[0].nbytes / 1e6

    server, endpoint = start_server()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})
    import boto3
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    tmp = tempfile.mkdtemp(prefix="bench_s3")
    fig, rows = {"episodes": len(eps), "frames": f"{cfg.length}x{cfg.height}x{cfg.width}", "raw_bytes": raw}, []
    try:
        for name, url in (("local", os.path.join(tmp, "d.zarr")), ("s3fs", f"s3://{BUCKET}/d.zarr")):
            wt = write(url, eps, cfg)
            r = StoreReader(url)
            r.read("video", 0, 0, args.window)   # open arrays outside the timing
            rt = read_windows(lambda i, a, b: r.read("video", i, a, b), picks, args.window)
            fig[f"{name}_write_MBps"] = raw / wt / 1e6
            fig[f"{name}_read_MBps"] = win_mb * len(picks) / rt
            fig[f"{name}_loader_windows_per_s"] = loader_windows_per_s(url, args.window, args.windows, args.loader_workers)
            rows.append((name, fig[f"{name}_write_MBps"], fig[f"{name}_read_MBps"], fig[f"{name}_loader_windows_per_s"]))
        ob = obstore_reader(endpoint)
        if ob is not None:
            ob(0, 0, args.window)
            fig["obstore_read_MBps"] = win_mb * len(picks) / read_windows(ob, picks, args.window)
            rows.append(("obstore (read only)", "", fig["obstore_read_MBps"], ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        server.terminate()
        server.wait(30)
    for k in ("write_MBps", "read_MBps", "loader_windows_per_s"):
        fig[f"s3_over_local_{k}"] = fig[f"s3fs_{k}"] / fig[f"local_{k}"]
    if "obstore_read_MBps" in fig:
        fig["obstore_over_s3fs_read"] = fig["obstore_read_MBps"] / fig["s3fs_read_MBps"]
    print(f"{len(eps)} DMLab episodes of {fig['frames']}; {args.windows} random {args.window}-frame windows; "
          f"loader: {args.loader_workers} DataLoader workers; S3 = moto server on loopback")
    print(table(rows, ("store", "write MB/s", "window read MB/s", "loader windows/s")))
    print(f"\nS3 (s3fs) / local disk: write {fig['s3_over_local_write_MBps']:.2f}x, window read "
          f"{fig['s3_over_local_read_MBps']:.2f}x, loader {fig['s3_over_local_loader_windows_per_s']:.2f}x"
          + (f"; obstore / s3fs window read {fig['obstore_over_s3fs_read']:.2f}x" if "obstore_over_s3fs_read" in fig else ""))
    finish(fig)


if __name__ == "__main__":
    main()
