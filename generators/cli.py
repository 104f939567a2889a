"""The command line shared by gen-dmlab, gen-minecraft and gen-habitat."""
from __future__ import annotations

import argparse
import logging
import sys

from storage.cli_util import run_main
from storage.schema import StoreConfig

from .runner import RunOptions, generate
from .spec import DatasetSpec


def build_parser(spec: DatasetSpec) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"gen-{spec.name}",
        description=f"Generate the {spec.name} dataset into a Zarr v3 episode store with Ray workers. "
                    "Rerunning the same command resumes: only incomplete episodes are generated.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--episodes", type=int, default=spec.default_episodes, help="episodes in the dataset")
    p.add_argument("--out", required=True, help="store path or fsspec URL (s3://..., gs://...)")
    p.add_argument("--seed", type=int, default=0, help="base seed; episode i depends on (seed, i) only")
    p.add_argument("--backend", default="auto",
                   help=f"auto (= {spec.real_backend} if importable, else embedded), embedded or {spec.real_backend}")
    p.add_argument("--workers", type=int, default=None, help="simulator actors (default: all CPUs of the cluster)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (default: start a local one)")
    p.add_argument("--max-retries", type=int, default=3, help="retries of a failed episode before it is reported")
    p.add_argument("--episode-timeout", type=float, default=None, help="seconds before a stuck episode's worker is replaced")
    p.add_argument("--compression-level", type=int, default=None,
                   help=f"zstd level of a new store (default {StoreConfig.compression_level}: no larger than the "
                        "authors' compressed download; 1 encodes ~2.5x faster for ~1.3x larger stores, for machines "
                        "with no core to spare; see bench/storage.py)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    spec.add_args(p)
    return p


def run_cli(spec: DatasetSpec, argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format=f"gen-{spec.name}: %(levelname)s: %(message)s")

    def main() -> int:
        args = build_parser(spec).parse_args(argv)
        params = spec.params(args)
        opts = RunOptions(out=args.out, episodes=args.episodes, seed=args.seed, backend=args.backend,
                          workers=args.workers, address=args.address, max_retries=args.max_retries,
                          episode_timeout=args.episode_timeout, progress=not args.no_progress,
                          compression_level=args.compression_level)
        report = generate(spec, params, opts)
        done = report.already_complete + report.generated
        print(f"{report.store}: {done}/{report.requested} episodes complete "
              f"({report.generated} generated now, {report.already_complete} already there) "
              f"with backend {report.backend}, {report.workers} workers: {report.rates()}")
        if report.failed:
            print(f"gen-{spec.name}: {len(report.failed)} episodes failed after retries: "
                  + ", ".join(f"{i} ({why})" for i, why in sorted(report.failed.items())[:20]), file=sys.stderr)
            return 1
        return 0

    return run_main(main, f"gen-{spec.name}")
