"""The command line shared by gen-dmlab, gen-minecraft and gen-habitat.

Every flag is checked before anything is written; a rerun that finds every requested episode complete
reports so without taking the store lock (it works on a read-only mount)."""
from __future__ import annotations

import argparse
import logging
import math
import sys

from cli_common import HelpFormatter, plural, run_main
from storage.schema import StoreConfig

from .runner import OVERLAP_MODES, RunOptions, generate
from .seeds import check_seed
from .spec import DatasetSpec, check_compression_level

GROWTH_FACTOR = 10        # more than this times the store's (or the paper's) size needs --allow-large-growth
GROWTH_FLOOR = 10_000     # any store may grow to this many episodes without the flag


def build_parser(spec: DatasetSpec) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"gen-{spec.name}",
        description=f"Generate the {spec.name} dataset into a Zarr v3 episode store with Ray workers. "
                    "Rerunning the same command resumes: only incomplete episodes are generated.",
        formatter_class=HelpFormatter)
    p.add_argument("--episodes", type=int, default=spec.default_episodes, help="episodes in the dataset")
    p.add_argument("--out", required=True, help="store path or fsspec URL (s3://..., gs://...)")
    p.add_argument("--seed", type=int, default=0, help=f"base seed in 0..2**63-1; episode i depends on (seed, i) only")
    p.add_argument("--backend", default="auto",
                   help=f"auto (= {spec.real_backend} if importable, else embedded), embedded or {spec.real_backend}")
    p.add_argument("--workers", type=int, default=None, help="simulator actors (default: all CPUs of the cluster)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (default: start a local one)")
    p.add_argument("--max-retries", type=int, default=3, help="retries of a failed episode before it is reported")
    p.add_argument("--episode-timeout", type=float, default=None,
                   help="seconds before a stuck episode's worker is replaced (default: no limit)")
    p.add_argument("--compression-level", type=int, default=None,
                   help=f"zstd level of a new store, 1..22 (default {StoreConfig.compression_level}: DMLab-40k "
                        "~55 GB, about the authors' compressed download; 1 encodes ~3.5x faster for ~1.3x larger "
                        "stores, for machines with no core to spare; see bench/generate.py)")
    p.add_argument("--overlap-writes", choices=OVERLAP_MODES, default="auto",
                   help="on: each worker compresses and writes through its own writer process while it simulates "
                        "the next episode; off: it writes each episode itself, in series; auto: on when the cluster "
                        "has two CPUs per worker (the writer needs a core of its own to pay)")
    p.add_argument("--allow-large-growth", action="store_true",
                   help=f"allow --episodes above {GROWTH_FACTOR}x the store's current size (and above "
                        f"{GROWTH_FACTOR}x the paper's size, at least {GROWTH_FLOOR}); stores never shrink")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    spec.add_args(p)
    return p


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One-line ValueError for a flag value no run can use; runs before anything touches the store."""
    for action in parser._actions:   # NaN/inf in any float flag, whatever dataset adds it
        v = getattr(args, action.dest, None)
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{action.option_strings[-1] if action.option_strings else action.dest} must be a "
                             f"finite number, got {v}")
    check_seed(args.seed)
    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    if args.workers is not None and args.workers <= 0:
        raise ValueError(f"--workers must be positive, got {args.workers}")
    if args.max_retries < 0:
        raise ValueError(f"--max-retries must be >= 0, got {args.max_retries}")
    if args.episode_timeout is not None and args.episode_timeout <= 0:
        raise ValueError(f"--episode-timeout must be positive seconds, got {args.episode_timeout}")
    check_compression_level(args.compression_level)


def growth_limit(spec: DatasetSpec, existing: int) -> int:
    return max(GROWTH_FACTOR * existing, GROWTH_FACTOR * spec.default_episodes, GROWTH_FLOOR)


def precheck(spec: DatasetSpec, params: dict, args: argparse.Namespace) -> tuple[str, int] | None:
    """Everything that can be refused without writing: flags, config, a config change, large growth.
    Returns (backend, complete episodes) when the store already holds every requested episode."""
    from storage import store as _store
    from storage.reader import StoreReader
    from storage.schema import StoreError
    from storage.writer import check_config, check_same_config

    from .backend import pick_backend
    spec.check_params(params)
    backend = pick_backend(args.backend, spec.real_backend, spec.real_module, spec.install_hint)
    spec.validate(params, backend)
    cfg = spec.store_config(params, backend, args.episodes, args.seed)
    try:
        check_config(cfg)
    except StoreError as e:
        raise ValueError(str(e)) from None
    if str(args.out).startswith("memory://"):
        raise ValueError("--out memory:// lives in one process and the workers are others: give a path or an "
                         "object store (s3://...)")
    existing = StoreReader(args.out) if _store.exists(args.out) else None
    have = existing.config.episodes if existing else 0
    if existing:
        check_same_config(existing.url, existing.config, cfg)
        level = existing.config.compression_level
        if args.compression_level is not None and args.compression_level != level:
            logging.getLogger(f"gen-{spec.name}").warning(
                "--compression-level %d applies to new stores: %s keeps its level %d", args.compression_level,
                existing.url, level)
    if args.episodes > have and args.episodes > growth_limit(spec, have) and not args.allow_large_growth:
        what = f"grow {existing.url} from {have} to" if existing else "create a store of"
        raise ValueError(f"refusing to {what} {args.episodes} episodes (more than {growth_limit(spec, have)}); "
                         "stores never shrink, so check --episodes and pass --allow-large-growth if you mean it")
    if existing and args.episodes <= have:
        done = existing.complete_indices()
        if int((done < args.episodes).sum()) == args.episodes:
            return backend, args.episodes
    return None


def run_cli(spec: DatasetSpec, argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format=f"gen-{spec.name}: %(levelname)s: %(message)s")

    def main() -> int:
        parser = build_parser(spec)
        args = parser.parse_args(argv)
        check_flags(parser, args)
        params = spec.params(args)
        done = precheck(spec, params, args)
        if done is not None:   # nothing to write: no lock, no Ray, no write access needed
            backend, n = done
            print(f"{args.out}: {n}/{args.episodes} episodes complete (0 generated now, {n} already there) "
                  f"with backend {backend}")
            return 0
        opts = RunOptions(out=args.out, episodes=args.episodes, seed=args.seed, backend=args.backend,
                          workers=args.workers, address=args.address, max_retries=args.max_retries,
                          episode_timeout=args.episode_timeout, progress=not args.no_progress,
                          compression_level=args.compression_level, overlap_writes=args.overlap_writes)
        report = generate(spec, params, opts)
        done = report.already_complete + report.generated
        print(f"{report.store}: {done}/{report.requested} episodes complete "
              f"({report.generated} generated now, {report.already_complete} already there) "
              f"with backend {report.backend}, {plural(report.workers, 'worker')}: {report.rates()}")
        if report.failed:
            print(f"gen-{spec.name}: {len(report.failed)} episodes failed after retries: "
                  + ", ".join(f"{i} ({why})" for i, why in sorted(report.failed.items())[:20]), file=sys.stderr)
            return 1
        return 0

    return run_main(main, f"gen-{spec.name}")
