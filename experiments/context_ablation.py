"""Does a TECO use its far context? Teacher-forced prior NLL per frame cohort, with the temporal
transformer's attention cut to the last K frames at evaluation time vs its full context.

Sampling PSNR is a coarse, noisy test of memory: a model that has learned to use far frames a little may
still draw blurry samples. The likelihood is sharper. For one trained model, on held-out windows of its
training length with the true past (teacher forcing), it scores every frame's TECO latent codes under
the MaskGit prior with every token masked (predicted from h_t, the past, alone) twice: with the model's
own context and with attention limited to the last K frames. The same weights and the same codes, so the
only difference is whether frames more than K back are visible. Frames are grouped as in eval-teco by
when their place (pose) was last seen in the window: memory (K < gap <= the model's context), recent
(gap <= K), novel (never). A model that uses memory has a lower NLL on memory frames with its full
context; on recent and novel frames the cut should cost little.

    python -m experiments.context_ablation --run RUN --cut 16 [--episodes N] [--out ablation.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def frame_nll(model, codes, actions):
    """Per-frame prior NLL (nats per token) of TECO's latent codes, every token masked:
    codes long (B, T, G, G), actions long (B, T) -> (B, T - n_cond)."""
    import torch
    import torch.nn.functional as F
    from teco.metrics import prior_from_past
    with torch.no_grad():
        _, _, zc, logits = prior_from_past(model, codes, actions)
        nll = F.cross_entropy(logits.permute(0, 3, 1, 2), zc, reduction="none")   # (B*L, g, g)
        return nll.mean((1, 2)).reshape(codes.shape[0], -1)


def ablate(run_dir: str, cut: int, episodes: int | None = None, batch: int = 8, stride: int | None = None,
           progress: bool = True) -> dict:
    """Mean prior NLL per token by cohort, full context vs attention cut to `cut` frames, over windows of
    the model's seq_len every `stride` frames (default a third of a window) of each held-out episode;
    with the spread of the per-episode paired differences on memory frames."""
    import torch
    from tqdm import tqdm
    from storage import StoreReader
    from teco.revisit import gap_cohorts, last_seen_gaps, tolerances
    from teco.sample import load_teco

    model, _, info = load_teco(run_dir)
    cfg = model.cfg
    own = min(cfg.seq_len - 1, cfg.max_context or cfg.seq_len)
    if not 0 < cut < own:
        raise ValueError(f"--cut must be within 1..{own - 1} (the model's context is {own}), got {cut}")
    reader = StoreReader(info["store"])
    radius, yaw = tolerances(reader.config.params)
    test = sorted(info["split"]["test"])[:episodes]
    T, length = cfg.seq_len, reader.config.length
    stride = stride or max(1, T // 3)
    windows = [(e, s) for e in test for s in range(0, length - T + 1, stride)]
    sums = {m: {g: 0.0 for g in ("memory", "recent", "novel", "all")} for m in ("full", "cut")}
    counts = {g: 0 for g in ("memory", "recent", "novel", "all")}
    per_episode: dict[int, list[float]] = {}          # memory frames: sum of (cut - full) and count
    tfm = model.z_tfm
    for k in tqdm(range(0, len(windows), batch), desc="context ablation", unit="batch", disable=not progress):
        chunk = windows[k:k + batch]
        codes = torch.from_numpy(np.stack([reader.read("codes", e, s, s + T) for e, s in chunk]).astype(np.int64))
        acts = torch.from_numpy(np.stack([reader.read("actions", e, s, s + T) for e, s in chunk]).astype(np.int64))
        if bool((codes < 0).any()):
            raise ValueError(f"{info['store']} has episodes without codes: run teco-encode first")
        out = {}
        for mode, ctx in (("full", tfm.max_context), ("cut", cut)):
            saved = tfm.max_context
            tfm.max_context = ctx
            try:
                out[mode] = frame_nll(model, codes, acts).numpy()
            finally:
                tfm.max_context = saved
        n = cfg.n_cond
        for b, (e, s) in enumerate(chunk):
            gaps = last_seen_gaps(np.asarray(reader.read("pose", e, s, s + T)), radius, yaw)[n:]
            masks = {**gap_cohorts(gaps, cut, own), "all": np.ones_like(gaps, bool)}
            for g, m in masks.items():
                counts[g] += int(m.sum())
                for mode in ("full", "cut"):
                    sums[mode][g] += float(out[mode][b][m].sum())
            d = per_episode.setdefault(e, [0.0, 0])
            d[0] += float((out["cut"][b] - out["full"][b])[masks["memory"]].sum())
            d[1] += int(masks["memory"].sum())
    res = {"run": run_dir, "train_step": info["step"], "context": own, "cut": cut, "episodes": len(test),
           "windows": len(windows), "stride": stride, "window_frames": T, "frames": counts}
    for g in counts:
        full = sums["full"][g] / counts[g] if counts[g] else None
        cutv = sums["cut"][g] / counts[g] if counts[g] else None
        res[g] = {"nll_full": full, "nll_cut": cutv,
                  "cut_minus_full": None if full is None else cutv - full}
    diffs = [d / c for d, c in per_episode.values() if c]
    if len(diffs) > 1:   # spread of the memory-frame effect over episodes (paired: same frames, same weights)
        res["memory"]["episodes_with_memory_frames"] = len(diffs)
        res["memory"]["per_episode_std"] = float(np.std(diffs, ddof=1))
        res["memory"]["sem"] = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.context_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a train-teco run folder")
    p.add_argument("--cut", type=int, default=16, help="frames of context left when cut")
    p.add_argument("--episodes", type=int, default=None, help="first N held-out episodes (default: all)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--stride", type=int, default=None, help="frames between window starts (default seq_len // 3)")
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args(argv)
    try:
        res = ablate(args.run, args.cut, args.episodes, args.batch, args.stride)
    except (ValueError, FileNotFoundError) as e:
        print(f"context_ablation: error: {e}", file=sys.stderr)
        return 1
    text = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
