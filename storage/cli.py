"""teco-store: import, info, verify and preview episode stores."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import numpy as np

from cli_common import HelpFormatter, run_main

from .reader import EpisodeDataError, StoreReader

STORE_HELP = "an episode store: a path or an fsspec URL (s3://bucket/d.zarr)"


def cmd_info(args) -> int:
    r = StoreReader(args.path)
    cfg = r.config
    complete = r.complete_count()
    stored = r.nbytes_stored()
    raw_per_ep = cfg.length * (cfg.height * cfg.width * 3 + 4 + 4 * max(cfg.pose_dim, 1)) + 9
    raw = raw_per_ep * complete
    info = {
        "store": r.url, "dataset": cfg.dataset, "backend": f"{cfg.backend} {cfg.backend_version}",
        "episodes": cfg.episodes, "complete": complete, "failed": len(r.failed()),
        "failed_episodes": {k: v.get("reason") for k, v in sorted(r.failed().items(), key=lambda kv: int(kv[0]))},
        "frames": f"{cfg.length} x {cfg.height}x{cfg.width}", "actions": cfg.action_names, "pose": cfg.pose_names,
        "seed": cfg.seed, "bytes_on_disk": stored, "raw_bytes_complete": raw,
        "compression_ratio": round(raw / stored, 2) if stored else None,
        "codes": r.meta.get("codes"), "created": r.meta.get("created"),
        "tool": f"{r.meta.get('tool')} {r.meta.get('tool_version')}", "params": cfg.params,
    }
    if r.longest > cfg.episodes:
        info["unfinished_growth"] = (f"arrays hold {r.longest} episodes; the next writer (rerun the gen "
                                     "command) finishes the growth")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            if k == "params":
                v = json.dumps(v)[:400]
            if k == "failed_episodes":   # one line per episode the generator gave up on, with its reason
                for i, why in v.items():
                    print(f"{'failed episode ' + i:>18}: {why}")
                continue
            print(f"{k:>18}: {v}")
    return 0


def cmd_verify(args) -> int:
    import contextlib

    from .lock import StoreLock
    from .verify import verify
    # --mark-incomplete writes: take the store's lock first (never beside a gen run or teco-encode)
    lock = StoreLock(args.path, purpose="teco-store verify --mark-incomplete") if args.mark_incomplete else None
    with lock or contextlib.nullcontext():
        report = verify(args.path, progress=not args.no_progress)
        for line in report.lines():
            print(line)
        if report.bad and args.mark_incomplete:
            from .writer import StoreWriter
            w = StoreWriter.open(report.url)
            for i in report.bad:
                w.set_complete(i, False)
            print(f"marked {len(report.bad)} episodes incomplete: rerun the gen command that made the store to "
                  "regenerate them")
    return 0 if report.ok else 1


def cmd_preview(args) -> int:
    from .preview import write_grid
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.frames < 0:
        raise ValueError(f"--frames must be >= 0 (0: all), got {args.frames}")
    r = StoreReader(args.path)
    done = r.complete_indices()
    if len(done) == 0:
        raise ValueError(f"{r.url} has no complete episodes to preview")
    t1 = min(r.config.length, args.frames) if args.frames else r.config.length
    eps, videos = [], []
    for i in done:   # the first readable complete episodes; a damaged one is named and passed over
        try:
            videos.append(r.read("video", int(i), 0, t1))
        except EpisodeDataError as e:
            print(f"teco-store: skipping episode {i}: {e}", file=sys.stderr)
            continue
        eps.append(int(i))
        if len(eps) == args.episodes:
            break
    if not eps:
        raise ValueError(f"{r.url}: no complete episode could be read (`teco-store verify` names the damage)")
    videos = np.stack(videos)
    write_grid(args.out, videos, fps=args.fps, scale=args.scale, cell_labels=[f"episode {i}" for i in eps])
    print(f"wrote {args.out}: episodes {eps}, {t1} frames")
    return 0


def cmd_import(args) -> int:
    from .importer import import_episodes
    known = args.datasets(args.dataset) if args.datasets else None
    w = import_episodes(args.path, args.out, args.dataset, args.num_actions, args.action_convention,
                        progress=not args.no_progress, known=known)
    print(f"{w.url}: {int(w.complete_mask().sum())}/{w.config.episodes} episodes imported")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="teco-store", description="Inspect, check, preview and import episode stores.",
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", formatter_class=HelpFormatter, help="counts, sizes, compression ratio, config")
    s.add_argument("path", help=STORE_HELP)
    s.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    s.set_defaults(fn=cmd_info)
    s = sub.add_parser("verify", formatter_class=HelpFormatter,
                       help="read every complete episode; non-zero exit on any fault")
    s.add_argument("path", help=STORE_HELP)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--mark-incomplete", action="store_true",
                   help="mark bad episodes incomplete so that rerunning the generator regenerates them")
    s.set_defaults(fn=cmd_verify)
    s = sub.add_parser("preview", formatter_class=HelpFormatter, help="a GIF/MP4 grid of a few episodes")
    s.add_argument("path", help=STORE_HELP)
    s.add_argument("--out", required=True, help="FILE.gif or FILE.mp4")
    s.add_argument("--episodes", type=int, default=4, help="episodes side by side (the first complete ones)")
    s.add_argument("--frames", type=int, default=0, help="first N frames (default: all)")
    s.add_argument("--fps", type=int, default=15, help="frames per second of the animation")
    s.add_argument("--scale", type=int, default=2, help="pixel upscaling factor")
    s.set_defaults(fn=cmd_preview)
    s = sub.add_parser("import", formatter_class=HelpFormatter,
                       help="convert the paper's released data: DMLab .npz (video, actions) or "
                            "Minecraft/Habitat .mp4 + .npz (actions) episodes")
    s.add_argument("path", help="a folder (searched recursively; train/ and test/ subfolders keep that split) or one file")
    s.add_argument("--out", required=True, help="the store to write (a path or s3://...); rerunning resumes")
    s.add_argument("--dataset", default="imported",
                   help="dmlab, minecraft or habitat: that dataset's action names and action convention; "
                        "any other name is recorded as is with action_<k> names")
    s.add_argument("--num-actions", type=int, default=None, help="size of the action space (default: from data)")
    s.add_argument("--action-convention", choices=("after", "produced", "produced-reset"), default=None,
                   help="what the files' actions[t] is: taken after frame t (DMLab), produced frame t (Habitat), "
                        "produced frame t with a placeholder at the reset frame 0 (Minecraft); "
                        "default: the dataset's, else produced")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_import)
    return p


def main(argv: list[str] | None = None, datasets: Callable[[str], dict | None] | None = None) -> int:
    """`datasets`: name -> what `import` needs to know about that dataset's released files, or None
    (the console script passes generators/registry.py's; storage itself knows no dataset)."""
    def run() -> int:
        args = build_parser().parse_args(argv)
        args.datasets = datasets
        return args.fn(args)
    return run_main(run, "teco-store")


if __name__ == "__main__":
    sys.exit(main())
