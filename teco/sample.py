"""TECO sampling: the API the evaluation calls (load_teco, sample) and the `sample-teco` script.

Frames are generated one at a time: h_t from the temporal transformer (keys/values of past frames
cached), z_t drawn by MaskGit (TECO's draft-and-revise by default, teco/maskgit.py), VQ-GAN codes =
argmax of D(z_t, h_t).
Past the trained sequence length the last seq_len - 1 frames are re-encoded as a sliding window.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from cli_common import HelpFormatter, plural, run_main
from storage import StoreError, StoreReader

from .config import TECOConfig
from .encode import check_resolution, encode_frames, holds_codes_of
from .episodes import EpisodeUnreadable, read_checked
from .maskgit import SAMPLERS
from .model import TECO
from .runlog import resolve_device
from storage.preview import check_video_path, write_grid
from .runs import CKPT_FILE, RUN_FILE, load_checkpoint, read_run
from .vqgan import load_recorded_vqgan


def load_teco(run_dir, device="cpu", vqgan_run=None) -> tuple[TECO, torch.nn.Module, dict]:
    """(TECO in eval mode, its VQ-GAN in eval mode, run_info) from a train-teco run folder.
    run_info is run.json ("config", "store", "vqgan": {"run", "hash"}, "split": {"train", "test"},
    "context", "seed") plus "step", the checkpoint's training step. `vqgan_run`: the VQ-GAN's run folder
    when it is no longer where run.json says (it must be the same VQ-GAN: its checkpoint hash is checked)."""
    run_dir = os.fspath(run_dir)
    run_info = read_run(run_dir, "teco")
    ck = load_checkpoint(os.path.join(run_dir, CKPT_FILE), map_location="cpu")
    if "model" not in ck or "config" not in ck:
        raise ValueError(f"{run_dir}/{CKPT_FILE} is not a train-teco checkpoint")
    model = TECO(TECOConfig.from_json(ck["config"]))
    model.load_state_dict(ck["model"])
    device = torch.device(device)
    recorded = run_info["vqgan"]["run"]
    vqgan, vq_hash = load_recorded_vqgan(vqgan_run or recorded, os.path.join(run_dir, RUN_FILE), bool(vqgan_run),
                                         map_location=device)
    if vq_hash != ck.get("vqgan_hash"):
        raise ValueError(f"the VQ-GAN in {vqgan_run or recorded} ({vq_hash}) is not the one this TECO was "
                         f"trained on ({ck.get('vqgan_hash')})")
    run_info["step"] = int(ck["step"])
    return model.to(device).eval(), vqgan, run_info


@torch.no_grad()
def sample(model: TECO, codes_cond: torch.Tensor, actions: torch.Tensor, length: int, *, draft_steps: int = 8,
           revise_rounds: int = 2, revise_steps: int = 8, temperature: float = 1.0,
           generator: torch.Generator | None = None, progress: bool = False,
           sampler: str = SAMPLERS[0]) -> torch.Tensor:
    """codes_cond long (B, C, 16, 16), actions long (B, C+L) -> codes long (B, C+L, 16, 16), the first C
    frames being codes_cond unchanged. actions[:, t] is the action that produced frame t (the store's
    convention; paired with frames as the model's action_lead says). `sampler`: MaskGit method, one of
    teco.maskgit.SAMPLERS."""
    cfg = model.cfg
    if codes_cond.ndim != 4 or codes_cond.shape[-2:] != (cfg.codes_grid, cfg.codes_grid):
        raise ValueError(f"codes_cond must be (B, C, {cfg.codes_grid}, {cfg.codes_grid}), got {tuple(codes_cond.shape)}")
    B, C = codes_cond.shape[:2]
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if C < cfg.n_cond:
        raise ValueError(f"need at least {cfg.n_cond} conditioning frame(s), got {C}")
    if tuple(actions.shape) != (B, C + length):
        raise ValueError(f"actions must be (B, C+L) = {(B, C + length)}, got {tuple(actions.shape)}")
    if bool((codes_cond < 0).any()) or bool((codes_cond >= cfg.vq_codes).any()):
        raise ValueError(f"conditioning codes must be in 0..{cfg.vq_codes - 1}")
    model.check_actions(actions)
    model.eval()
    device = model.vq_embed.device
    out_device = codes_cond.device
    codes_cond, actions = codes_cond.to(device).long(), actions.to(device).long()
    actions = model.lead_actions(actions)      # the pairing the model was trained with, before any window
    frames = [codes_cond[:, t] for t in range(C)]
    opts = dict(draft_steps=draft_steps, revise_rounds=revise_rounds, revise_steps=revise_steps,
                temperature=temperature, generator=generator, sampler=sampler)
    window = cfg.seq_len - 1   # frames of context that fit the trained length next to the predicted one
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        cache = z_prev = None
        for t in tqdm(range(C, C + length), desc="sample", unit="frame", disable=not progress):
            if t > window:   # sliding window: re-encode the last seq_len - 1 frames
                z = model.encode(torch.stack(frames[t - window:t], 1))[0]
                cache, h = model.start_temporal(z, actions[:, t - window:t + 1])
            elif cache is None:
                z = model.encode(codes_cond)[0]
                cache, h = model.start_temporal(z, actions[:, :C + 1])
            else:
                h = model.step_temporal(cache, t, z_prev, actions[:, t])
            z_prev, codes = model.generate_frame(h, **opts)
            frames.append(codes)
    return torch.stack(frames, 1).to(out_device)


@torch.no_grad()
def decode_codes(vqgan, codes: torch.Tensor, batch: int = 64) -> np.ndarray:
    """codes (..., 16, 16) -> uint8 frames (..., H, W, 3) through the VQ-GAN decoder."""
    lead = codes.shape[:-2]
    flat = codes.reshape(-1, *codes.shape[-2:])
    dev = next(vqgan.parameters()).device
    out = [vqgan.decode(flat[i:i + batch].to(dev)).cpu() for i in range(0, len(flat), batch)]
    frames = torch.cat(out).numpy()
    return frames.reshape(*lead, *frames.shape[1:])


@dataclass
class Sampler:
    """MaskGit settings; None = the model config's (T_draft, M, T_revise: 8, 2, 8 in the paper).
    `method`: "draft-revise" (TECO's) or "confidence" (a deviation, teco/maskgit.py)."""
    draft_steps: int | None = None
    revise_rounds: int | None = None
    revise_steps: int | None = None
    temperature: float = 1.0
    method: str = SAMPLERS[0]

    def __post_init__(self):
        if self.method not in SAMPLERS:
            raise ValueError(f"unknown sampler '{self.method}': choose one of {', '.join(SAMPLERS)}")

    def resolve(self, cfg) -> dict:
        return dict(draft_steps=cfg.T_draft if self.draft_steps is None else self.draft_steps,
                    revise_rounds=cfg.M if self.revise_rounds is None else self.revise_rounds,
                    revise_steps=cfg.T_revise if self.revise_steps is None else self.revise_steps,
                    temperature=self.temperature, sampler=self.method)

    @staticmethod
    def add_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sampler", choices=SAMPLERS, default=SAMPLERS[0],
                       help="MaskGit sampling: draft-revise (TECO's: random-order draft, then every token "
                            "re-drawn once per revision round) or confidence (MaskGIT-style, a deviation)")
        p.add_argument("--draft-steps", type=int, help="MaskGit draft steps (default: the run's config, 8 in the paper)")
        p.add_argument("--revise-rounds", type=int, help="revision rounds (default: the run's config, 2)")
        p.add_argument("--revise-steps", type=int, help="steps per revision round (default: the run's config, 8)")
        p.add_argument("--temperature", type=float, default=1.0)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Sampler":
        return cls(args.draft_steps, args.revise_rounds, args.revise_steps, args.temperature, args.sampler)


# -- sample-teco ------------------------------------------------------------------------------------

def add_vqgan_arg(p: argparse.ArgumentParser) -> None:
    """--vqgan, the same for sample-teco and eval-teco."""
    p.add_argument("--vqgan", help="the train-vqgan run the TECO run was trained with, when it moved (default: the "
                                   "path recorded in the run's run.json; checked to be the same VQ-GAN by its hash)")


def read_test_episodes(reader: StoreReader, candidates: list[int], n: int, length: int, cond: int) -> list[tuple]:
    """The first n readable candidates as (episode, video[:length], actions[:length], codes[:cond] or None).
    An episode with a missing or damaged object is skipped with its name (never read as fill values);
    none readable is an error naming them. cond=0: do not read codes."""
    out, skipped = [], []
    for i in candidates:
        if len(out) == n:
            break
        try:
            video, actions = read_checked(reader, "video", i, 0, length), read_checked(reader, "actions", i, 0, length)
        except EpisodeUnreadable as e:
            skipped.append(str(e))
            continue
        codes = None
        if cond:
            try:
                codes = read_checked(reader, "codes", i, 0, cond)
            except EpisodeUnreadable:   # not encoded or damaged: encode the frames instead
                pass
            if codes is not None and (codes < 0).any():   # -1: not written by teco-encode
                codes = None
        out.append((i, video, actions, codes))
    if not out:
        raise StoreError(f"no readable test episode in {reader.url}: {'; '.join(skipped[:3])}")
    for line in skipped:
        print(f"sample-teco: skipping {line}", file=sys.stderr)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sample-teco", description="sample TECO on held-out episodes",
                                formatter_class=HelpFormatter)
    p.add_argument("--ckpt", required=True, help="train-teco run folder")
    p.add_argument("--store", help="episode store (default: the run's)")
    add_vqgan_arg(p)
    p.add_argument("--cond", type=int, default=36, help="conditioning frames")
    p.add_argument("--length", type=int, default=300, help="total frames (conditioning included)")
    p.add_argument("--out", required=True, help="output .npz (video_true, video_pred, actions, episodes)")
    p.add_argument("--grid", help="side-by-side animation, .gif or .mp4 (default: OUT with .gif)")
    p.add_argument("--episodes", type=int, default=8, help="test episodes to sample")
    p.add_argument("--batch-size", type=int, default=8)
    Sampler.add_args(p)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--scale", type=int, default=3, help="grid pixels per frame pixel (64 px frames -> 192 px)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    return run_main(lambda: _main(argv), "sample-teco")


def grid_title(episodes: list[int]) -> str:
    """'episode  3' / 'episodes  0, 3, ...': two spaces, as PIL's default font draws one 2 px wide."""
    word = "episode" if len(episodes) == 1 else "episodes"
    return f"{word}  {', '.join(map(str, episodes[:8]))}{' ...' if len(episodes) > 8 else ''}"


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.episodes < 1 or args.batch_size < 1 or args.scale < 1:
        raise ValueError("--episodes, --batch-size and --scale must be >= 1")
    if not args.fps > 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    if not args.out.endswith(".npz"):
        raise ValueError(f"--out must be a .npz file, got {args.out}")
    grid = args.grid or args.out[:-4] + ".gif"
    check_video_path(grid)   # before sampling: write_grid would refuse it only after
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {args.out}: folder {parent} does not exist")
    if os.path.isdir(args.out):
        raise ValueError(f"cannot write {args.out}: it is a folder")
    device = resolve_device(args.device)
    model, vqgan, info = load_teco(args.ckpt, device, args.vqgan)
    cfg = model.cfg
    reader = StoreReader(args.store or info["store"])
    check_resolution(reader, vqgan, args.ckpt)
    T = reader.config.length
    if not cfg.n_cond <= args.cond < args.length <= T:
        raise ValueError(f"need {cfg.n_cond} <= --cond ({args.cond}) < --length ({args.length}) <= the store's "
                         f"episode length ({T})")
    complete = set(reader.complete_indices().tolist())
    candidates = [i for i in info["split"]["test"] if i in complete]
    if not candidates:
        raise StoreError(f"{reader.url} holds none of the run's test episodes")
    use_codes = holds_codes_of(reader, info["vqgan"]["hash"])
    data = read_test_episodes(reader, candidates, args.episodes, args.length, args.cond if use_codes else 0)
    episodes = [i for i, *_ in data]
    if len(data) < args.episodes:
        print(f"sample-teco: --episodes {args.episodes}: the run's test split has {len(info['split']['test'])}, "
              f"{len(data)} of them complete and readable in {reader.url}; sampling {plural(len(data), 'episode')}",
              file=sys.stderr)
    window = cfg.seq_len - 1   # sample() slides this window: earlier frames are not seen
    if args.cond > window:
        print(f"sample-teco: the model was trained on {cfg.seq_len}-frame windows: sampling sees only the last "
              f"{window} of the {args.cond} conditioning frames", file=sys.stderr)
    gen = torch.Generator().manual_seed(args.seed)
    opts = Sampler.from_args(args).resolve(cfg)
    true, pred, acts = [], [], []
    for b in range(0, len(data), args.batch_size):
        eps = data[b:b + args.batch_size]
        video = np.stack([v for _, v, _, _ in eps])
        a = np.stack([x for _, _, x, _ in eps]).astype(np.int64)
        # the store's codes of this VQ-GAN where written, else tokenize the conditioning frames here
        cond = torch.stack([torch.from_numpy(c.astype(np.int64)) if c is not None else
                            encode_frames(vqgan, v[: args.cond]) for _, v, _, c in eps])
        codes = sample(model, cond, torch.from_numpy(a), args.length - args.cond, generator=gen, progress=True, **opts)
        true.append(video)
        pred.append(decode_codes(vqgan, codes))
        acts.append(a)
    true, pred, acts = np.concatenate(true), np.concatenate(pred), np.concatenate(acts)
    np.savez_compressed(args.out, video_true=true, video_pred=pred, actions=acts,
                        episodes=np.asarray(episodes, np.int64), cond=np.int64(args.cond))
    pairs = np.stack([true, pred], 1).reshape(-1, *true.shape[1:])   # rows: [truth | sample] per episode
    write_grid(grid, pairs, rows=len(episodes), fps=args.fps, scale=args.scale,
               labels=["ground truth", f"TECO (step {info['step']})"], boundary=args.cond,
               title=grid_title(episodes))
    print(f"sample-teco: {plural(len(episodes), 'episode')}, {args.cond} + {args.length - args.cond} frames -> "
          f"{args.out}, {grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
