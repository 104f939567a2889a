"""Sampling speed: seconds per generated frame of TECO (MaskGit draft-and-revise: 1 temporal step +
T_draft + M x T_revise prior passes over the 8x8 latent + 1 decoder pass per frame) vs a token-by-token autoregressive prior
over all flattened 16x16 VQ codes (teco/baselines.py: KV-cached, one forward per token, 256 per frame),
randomly initialised, on the same conditioning codes and actions.

    python bench/sample.py [--context 144 --frames 2 --batch 1 --width 512 --depth 8 --threads 1]

Per-frame figures are the steady-state cost: the conditioning (TECO's encode of the context, the AR
prefill of context x 256 tokens) is timed separately and excluded. An AR token's cost grows with the
number of cached tokens, TECO's per-frame cost barely does, so the ratio grows with --context. Widths
default to half of the DMLab config's (1024/512) so that it runs in minutes on one CPU core.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from teco.baselines import ARPrior, StaticKVCache  # noqa: E402
from teco.config import TransformerConfig, get_config  # noqa: E402
from teco.maskgit import SAMPLERS  # noqa: E402
from teco.model import TECO  # noqa: E402
from teco.sample import sample  # noqa: E402
from teco.transformer import num_params  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--context", type=int, default=144, help="conditioning frames (the PSNR protocol's 144)")
    p.add_argument("--frames", type=int, default=2, help="frames timed after the first generated one")
    p.add_argument("--batch", type=int, default=1, help="videos sampled in parallel")
    p.add_argument("--width", type=int, default=512, help="temporal transformer width (DMLab: 1024); the AR prior's too")
    p.add_argument("--depth", type=int, default=8, help="temporal transformer layers (DMLab: 8); the AR prior's too")
    p.add_argument("--prior-width", type=int, default=256, help="MaskGit width (DMLab: 512)")
    p.add_argument("--prior-depth", type=int, default=8, help="MaskGit layers (DMLab: 8)")
    p.add_argument("--codes", type=int, default=1024, help="VQ-GAN codebook size")
    p.add_argument("--ar-prefill", choices=("auto", "model", "random"), default="auto",
                   help="fill the AR cache by running the context tokens (model) or with random keys/values of "
                        "the same length (random: the same per-token cost without the O(context^2) prefill, "
                        "minutes at 144 frames); auto: model up to 64 context frames, else random")
    p.add_argument("--sampler", choices=SAMPLERS, default=SAMPLERS[0], help="TECO's MaskGit sampling method")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    return p


def teco_model(args) -> TECO:
    """The DMLab config's structure (8x8 latent, z_ds 8, 1024 TECO codes, 8/2/8 sampling) at the given widths."""
    heads = lambda w: max(1, w // 64)
    cfg = get_config("dmlab", z_tfm=TransformerConfig(args.width, 4 * args.width, heads(args.width), args.depth),
                     z_git=TransformerConfig(args.prior_width, 4 * args.prior_width, heads(args.prior_width),
                                             args.prior_depth),
                     encoder_depths=(args.prior_width // 2, args.prior_width),
                     decoder_depths=(args.prior_width // 2, args.prior_width),
                     vq_codes=args.codes, vq_dim=64, action_dim=6)
    return TECO(cfg, torch.randn(cfg.vq_codes, cfg.vq_dim)).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_teco(model, cond, actions, frames: int, device, gen, sampler: str = SAMPLERS[0]) -> dict:
    """(context + first frame) and (context + first frame + `frames`) runs, best of two each; the
    difference is the cost of `frames` frames in steady state."""
    def run(n):
        sync(device)
        t = time.perf_counter()
        sample(model, cond, actions[:, :cond.shape[1] + n], length=n, generator=gen, sampler=sampler)
        sync(device)
        return time.perf_counter() - t
    run(1)                                   # warm-up (allocator, kernels)
    # best of two: the difference of two timings is sensitive to other load on the machine
    first = min(run(1), run(1))
    total = min(run(1 + frames), run(1 + frames))
    return {"context_and_first_s": first, "s_per_frame": max(total - first, 0.0) / frames}


def random_prefill(model: ARPrior, batch: int, n_ctx: int, capacity: int, device):
    """A cache holding `n_ctx` + 1 positions of random keys/values: a token's cost depends on the cache
    length only, so this times long contexts without the O(n_ctx^2) prefill."""
    cache = StaticKVCache(len(model.net.blocks), capacity)
    for i, block in enumerate(model.net.blocks):
        heads, dim = block.attn.heads, model.token_embed.embedding_dim
        kv = torch.randn(batch, heads, n_ctx + 1, dim // heads, device=device)
        cache.extend(i, kv, kv.clone())
    cache.commit(torch.arange(n_ctx + 1))
    return cache, torch.randn(batch, model.token_embed.embedding_dim, device=device)


def time_ar(model, cond, actions, frames: int, device, gen, prefill: str) -> dict:
    """Context prefill + (1 + frames) frames in one run; per-frame time from token timestamps."""
    per = cond.shape[-1] * cond.shape[-2]
    B, C = cond.shape[:2]
    n_ctx, total = C * per, (C + 1 + frames) * per
    stamps = {}
    bar = tqdm(total=(1 + frames) * per, desc="AR tokens", unit="tok", leave=False)

    def progress(k):
        bar.update(1)
        if k in (1, per, (1 + frames) * per):
            sync(device)
            stamps[k] = time.perf_counter()
    sync(device)
    t0 = time.perf_counter()
    out = torch.empty(B, total, dtype=torch.long, device=device)
    out[:, :n_ctx] = cond.flatten(1)
    with torch.no_grad():
        if prefill == "model":
            cache, h = model.prefill(cond, actions, total)
        else:
            cache, h = random_prefill(model, B, n_ctx, total, device)
    model.decode(out, n_ctx, cache, h, actions, generator=gen, progress=progress)
    bar.close()
    return {"prefill_s": stamps[1] - t0, "s_per_frame": (stamps[(1 + frames) * per] - stamps[per]) / frames}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.context, args.frames, args.batch, args.threads) < 1:
        raise SystemExit("--context, --frames, --batch and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    if args.ar_prefill == "auto":
        args.ar_prefill = "model" if args.context <= 64 else "random"
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    teco = teco_model(args).to(device)
    ar = ARPrior(args.codes, teco.cfg.z_tfm, action_dim=teco.cfg.action_dim, grid=teco.cfg.codes_grid).to(device).eval()
    g = torch.Generator().manual_seed(args.seed)
    cond = torch.randint(0, args.codes, (args.batch, args.context, 16, 16), generator=g).to(device)
    actions = torch.randint(0, teco.cfg.action_dim, (args.batch, args.context + 1 + args.frames), generator=g).to(device)

    print(f"sampling {args.batch} x ({args.context} context + {1 + args.frames}) frames on {device}, "
          f"{args.threads} thread(s)", flush=True)
    t = time_teco(teco, cond, actions, args.frames, device, torch.Generator().manual_seed(1), args.sampler)
    a = time_ar(ar, cond, actions, args.frames, device, torch.Generator().manual_seed(1), args.ar_prefill)
    cfg = teco.cfg
    revise_passes = cfg.M * (cfg.T_revise + (args.sampler == "confidence"))   # confidence: +1 scoring pass a round
    teco_passes = 1 + cfg.T_draft + revise_passes + 1
    ratio = a["s_per_frame"] / t["s_per_frame"]
    rows = [(f"TECO ({args.sampler})", num_params(teco), f"{teco_passes} (1 temporal, {cfg.T_draft}+{revise_passes} prior, 1 decoder)",
             t["s_per_frame"], f"context encode + 1st frame {t['context_and_first_s']:.2f} s"),
            ("AR token-by-token", num_params(ar), f"{cfg.codes_grid ** 2} (one per code)", a["s_per_frame"],
             f"{args.ar_prefill} prefill of {args.context * cfg.codes_grid ** 2 + 1} tokens {a['prefill_s']:.2f} s")]
    print(f"{'model':20s} {'params':>11s}  {'s/frame':>9s}  sequential passes per frame; setup")
    for name, params, passes, spf, note in rows:
        print(f"{name:20s} {params:11,d}  {spf:9.4f}  {passes}; {note}")
    print(f"AR / TECO seconds per frame: {ratio:.1f}x (goal >= 20x)")
    print(json.dumps({
        "teco_s_per_frame": t["s_per_frame"], "ar_s_per_frame": a["s_per_frame"], "speedup_ar_over_teco": ratio,
        "teco_context_and_first_frame_s": t["context_and_first_s"], "ar_prefill_s": a["prefill_s"], "ar_prefill": args.ar_prefill,
        "teco_params": num_params(teco), "ar_params": num_params(ar), "teco_passes_per_frame": teco_passes, "sampler": args.sampler,
        "ar_passes_per_frame": cfg.codes_grid ** 2, "context": args.context, "frames_timed": args.frames,
        "batch": args.batch, "width": args.width, "depth": args.depth, "prior_width": args.prior_width,
        "prior_depth": args.prior_depth, "threads": args.threads, "device": str(device)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
