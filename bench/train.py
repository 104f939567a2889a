"""Training cost of TECO vs a full spatio-temporal transformer over every VQ code, and of DropLoss.

    python bench/train.py            # CPU, < 10 min on 2 cores; last line is one JSON object

(a) TECO (DMLab structure, reduced widths) and (b) a VideoGPT-style causal transformer over all
T x 16 x 16 codes with the same width and depth as TECO's temporal transformer. Each training step
(forward, backward, AdamW) runs single-threaded in its own subprocess; "s/step" is that process's CPU
time (robust when other jobs share the machine; wall time is in the JSON as *_wall_s_*) and peak
memory is its RSS above the state before building the model. (b) stops at the first T whose step is predicted
to exceed --budget-s or --mem-gb (attention cost grows with (T*256)^2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# first, also when PYTHONPATH names the root: otherwise bench/storage.py (this folder is sys.path[0]) shadows storage/
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from teco.config import TransformerConfig, get_config  # noqa: E402
from teco.model import TECO  # noqa: E402
from teco.train import train_step  # noqa: E402
from teco.transformer import Transformer  # noqa: E402

GRID, VQ_CODES, VQ_DIM, ACTIONS = 16, 1024, 64, 6


class FullTransformer(nn.Module):
    """VideoGPT-style prior: one causal transformer over the raster-ordered T x G x G codes of a clip,
    with the action that produced each frame (store convention; -1 = none) added to that frame's tokens.
    forward -> {"loss"}."""

    def __init__(self, frames: int, cfg: TransformerConfig):
        super().__init__()
        w = cfg.embed_dim
        self.tok = nn.Embedding(VQ_CODES + 1, w)                 # + start token
        self.act = nn.Embedding(ACTIONS + 1, w)                  # + "no action"
        self.pos_t = nn.Parameter(torch.randn(frames, 1, 1, w) * 0.02)
        self.pos_h = nn.Parameter(torch.randn(1, GRID, 1, w) * 0.02)
        self.pos_w = nn.Parameter(torch.randn(1, 1, GRID, w) * 0.02)
        self.net = Transformer(cfg)
        self.out = nn.Linear(w, VQ_CODES)

    def forward(self, codes, actions, generator=None):
        B, T = codes.shape[:2]
        flat = codes.flatten(1)                                           # (B, N)
        inp = torch.cat([torch.full_like(flat[:, :1], VQ_CODES), flat[:, :-1]], 1)
        a = torch.where(actions < 0, torch.full_like(actions, ACTIONS), actions)
        x = self.tok(inp).view(B, T, GRID, GRID, -1) + self.act(a)[:, :, None, None]
        x = (x + self.pos_t[:T] + self.pos_h + self.pos_w).flatten(1, 3)
        h = self.net(x, frames=torch.arange(x.shape[1]))                  # one token per "frame": causal
        return {"loss": F.cross_entropy(self.out(h).flatten(0, 1), flat.flatten())}


def heads(width: int) -> int:
    return max(1, width // 64)   # 64-dim heads, as in every TECO config


def teco_config(width: int, layers: int, T: int, drop_loss: float):
    """DMLab's TECO with widths divided by 1024 / width (same ratios between the parts)."""
    k = 1024 // width
    return get_config("dmlab", seq_len=T, vq_codes=VQ_CODES, vq_dim=VQ_DIM, action_dim=ACTIONS,
                      encoder_depths=(256 // k, 512 // k), decoder_depths=(256 // k, 512 // k),
                      z_tfm=TransformerConfig(width, 4 * width, heads(width), layers),
                      z_git=TransformerConfig(width // 2, 2 * width, heads(width // 2), layers),
                      z_git_vocab_dim=max(16, 256 // k), drop_loss_rate=drop_loss)


def measure_one(kind: str, T: int, width: int, layers: int, batch: int, repeats: int) -> dict:
    """Seconds per training step and peak memory of one model (run in a fresh subprocess)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "full":
        model = FullTransformer(T, TransformerConfig(width, 4 * width, heads(width), layers))
    else:
        model = TECO(teco_config(width, layers, T, 0.9 if kind == "teco" else 0.0), torch.randn(VQ_CODES, VQ_DIM))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-5)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, VQ_CODES, (batch, T, GRID, GRID), generator=g)
    actions = torch.randint(0, ACTIONS, (batch, T), generator=g)
    clip = model.cfg.grad_clip if kind != "full" else None      # the paper configs do not clip
    step = lambda: train_step(model, opt, model.parameters(), clip, False, codes, actions, g)
    # CPU time of this single-threaded process: unlike wall time it does not grow when other
    # processes share the cores (wall time is reported too)
    c0, w0 = time.process_time(), time.perf_counter()
    step()                                                                 # warm-up (allocations, kernels)
    first = time.process_time() - c0
    cpu, wall = [], []
    for _ in range(repeats if first < 10.0 else 1):
        c0, w0 = time.process_time(), time.perf_counter()
        step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step_s": min(cpu), "wall_s": min(wall), "peak_mb": (peak_kb - base_kb) / 1024.0,
            "params": sum(p.numel() for p in model.parameters())}


def run_child(kind: str, T: int, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", kind, "--T", str(T), "--width", str(args.width),
           "--layers", str(args.layers), "--batch", str(args.batch), "--repeats", str(args.repeats)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} T={T} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def growth_exponent(ts: list[int], ys: list[float]) -> float | None:
    """Least-squares slope of log y on log T (1 = linear in T, 2 = quadratic)."""
    if len(ts) < 2:
        return None
    lx, ly = [math.log(t) for t in ts], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--Ts", default="16,32,64,128,300", help="sequence lengths, ascending")
    p.add_argument("--width", type=int, default=128, help="TECO temporal transformer width = full transformer width")
    p.add_argument("--layers", type=int, default=4, help="depth of both transformers")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed steps per measurement (min is reported)")
    p.add_argument("--budget-s", type=float, default=60.0, help="skip (b) when a step would take longer")
    p.add_argument("--mem-gb", type=float, default=16.0, help="skip (b) when it would need more memory")
    p.add_argument("--one", choices=["teco", "teco_nodrop", "full"], help=argparse.SUPPRESS)
    p.add_argument("--T", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.T, args.width, args.layers, args.batch, args.repeats)))
        return 0
    Ts = sorted(int(t) for t in args.Ts.split(","))
    res: dict[str, float | int | bool | None] = {"width": args.width, "layers": args.layers, "batch": args.batch,
                                                 "threads": 1}
    teco, full = {}, {}
    print(f"TECO vs full transformer, width {args.width}, depth {args.layers}, batch {args.batch}, 1 CPU thread")
    print(f"{'T':>5} {'TECO s/step':>12} {'ms/frame':>9} {'MB':>7} | {'full s/step':>12} {'ms/frame':>9} "
          f"{'MB':>7} | {'full/TECO':>9}")
    skip_full = None
    for T in Ts:
        teco[T] = run_child("teco", T, args)
        if skip_full is None and full:
            last = max(full)
            r = (T / last) ** 2            # attention dominates: cost ~ N^2 with N = T * 256 tokens
            if full[last]["step_s"] * r > args.budget_s:
                skip_full = f"predicted {full[last]['step_s'] * r:.0f} s per step at T={T}"
            elif full[last]["peak_mb"] * (T / last) > args.mem_gb * 1024:
                skip_full = f"predicted {full[last]['peak_mb'] * T / last / 1024:.1f} GB at T={T}"
        if skip_full is None:
            full[T] = run_child("full", T, args)
        a = teco[T]
        line = f"{T:>5} {a['step_s']:>12.3f} {1000 * a['step_s'] / T:>9.2f} {a['peak_mb']:>7.0f} | "
        res[f"teco_step_s_T{T}"], res[f"teco_peak_mb_T{T}"] = round(a["step_s"], 4), round(a["peak_mb"], 1)
        res[f"teco_wall_s_T{T}"] = round(a["wall_s"], 4)
        if T in full:
            b = full[T]
            ratio = b["step_s"] / a["step_s"]
            res[f"full_step_s_T{T}"], res[f"full_peak_mb_T{T}"] = round(b["step_s"], 4), round(b["peak_mb"], 1)
            res[f"full_wall_s_T{T}"] = round(b["wall_s"], 4)
            res[f"ratio_full_over_teco_T{T}"] = round(ratio, 2)
            line += f"{b['step_s']:>12.3f} {1000 * b['step_s'] / T:>9.2f} {b['peak_mb']:>7.0f} | {ratio:>9.1f}"
        else:
            line += f"{'skipped':>12} {'':>9} {'':>7} | {'':>9}"
        print(line, flush=True)
    if skip_full:
        print(f"(b) skipped from there on: {skip_full}")
        res["full_skipped_reason"] = skip_full

    common = max(full) if full else None
    res["largest_common_T"] = common
    res["ratio_full_over_teco_largest_common_T"] = res.get(f"ratio_full_over_teco_T{common}")
    t0, t1 = min(teco), max(teco)
    res["teco_per_frame_growth"] = round((teco[t1]["step_s"] / t1) / (teco[t0]["step_s"] / t0), 3)
    res["teco_time_exponent"] = round(growth_exponent(list(teco), [v["step_s"] for v in teco.values()]), 3)
    res["teco_mem_exponent"] = round(growth_exponent(list(teco), [max(v["peak_mb"], 1) for v in teco.values()]), 3)
    if len(full) >= 2:
        f0, f1 = min(full), max(full)
        res["full_per_frame_growth"] = round((full[f1]["step_s"] / f1) / (full[f0]["step_s"] / f0), 3)
        res["full_time_exponent"] = round(growth_exponent(list(full), [v["step_s"] for v in full.values()]), 3)
        res["full_mem_exponent"] = round(growth_exponent(list(full), [max(v["peak_mb"], 1) for v in full.values()]), 3)
    res["teco_params"], res["full_params"] = teco[t1]["params"], (full[common]["params"] if full else None)

    # DropLoss at the longest T: decoder and prior on 10% of the steps vs all of them
    nodrop = run_child("teco_nodrop", t1, args)
    speedup = nodrop["step_s"] / teco[t1]["step_s"]
    res[f"droploss_step_s_T{t1}"] = res[f"teco_step_s_T{t1}"]
    res[f"nodrop_step_s_T{t1}"], res[f"nodrop_peak_mb_T{t1}"] = round(nodrop["step_s"], 4), round(nodrop["peak_mb"], 1)
    res[f"droploss_speedup_T{t1}"] = round(speedup, 2)
    res[f"droploss_mem_saving_T{t1}"] = round(nodrop["peak_mb"] / max(teco[t1]["peak_mb"], 1), 2)

    print(f"\nTECO cost per frame grows x{res['teco_per_frame_growth']} from T={t0} to T={t1} "
          f"(step time ~ T^{res['teco_time_exponent']})")
    if "full_time_exponent" in res:
        print(f"full transformer cost per frame grows x{res['full_per_frame_growth']} from T={min(full)} to "
              f"T={max(full)} (step time ~ T^{res['full_time_exponent']})")
    if common:
        print(f"full / TECO step time at T={common}: {res['ratio_full_over_teco_largest_common_T']}x (goal >= 20)")
    print(f"DropLoss at T={t1}: {nodrop['step_s']:.3f} s -> {teco[t1]['step_s']:.3f} s per step, "
          f"speed-up {speedup:.2f}x (goal >= 1.6), memory {nodrop['peak_mb']:.0f} -> {teco[t1]['peak_mb']:.0f} MB")
    res["goal_ratio_met"] = bool(common and res["ratio_full_over_teco_largest_common_T"] >= 20)
    res["goal_droploss_met"] = bool(speedup >= 1.6)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
