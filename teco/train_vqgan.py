"""train-vqgan: train the VQ-GAN tokenizer on random frames of a store's train episodes.

RUN/ (teco/runs.py) holds run.json (kind "vqgan": VQ-GAN config, store, dataset), ckpt.pt (checksummed,
atomic; model, discriminator, optimisers, step) and ckpt.prev.pt, log.jsonl and, at the end, recon.png
(test frames over their reconstructions). SIGINT/SIGTERM: finish the step, save, exit.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cli_common import HelpFormatter, run_main
from storage import StoreError, StoreReader
from storage.loader import WindowDataset
from storage.preview import tile
from storage.split import split_episodes

from . import runs
from .config import store_default
from .episodes import EpisodeUnreadable, read_checked
from .lpips import LPIPS, add_backbone_arg
from .runlog import RunLog, resolve_device
from .vqgan import (VQGAN, VQGAN_CONFIGS, PatchDiscriminator, VQGANConfig, adaptive_weight, hinge_d_loss,
                    named_config, reconstruction_loss, to_float)

log = logging.getLogger("train-vqgan")

# a new run's value of the settings run.json records; a resumed run keeps its own (None: not given)
DEFAULTS = {"window": 4, "test_fraction": 0.05, "seed": 0}
# VQ-GAN config fields --resume may change: the step target, and --lr (each change listed in lr_changes)
RESUME_OVERRIDES = {"steps", "lr"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="train-vqgan", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="episode store (path or URL)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", choices=sorted(VQGAN_CONFIGS),
                   help="named VQ-GAN config (default: the one the store's dataset records)")
    p.add_argument("--steps", type=int, help="total generator steps (default: the config's; --resume may change it)")
    p.add_argument("--batch-size", type=int, help="frames per step (default: the config's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the config's; on --resume: the run's latest; "
                                          "a change on --resume is recorded in run.json lr_changes)")
    p.add_argument("--disc-start", type=int, help="step at which the GAN loss starts (default: the config's)")
    p.add_argument("--l2-codes", action="store_true",
                   help="new run: look codes up l2-normalised (ViT-VQGAN; deviation: the authors' VQ-GAN is plain "
                        "Euclidean; the tiny configs have it on)")
    p.add_argument("--lpips-weights", help="local LPIPS state dict (see teco/lpips.py); without it: L1+L2 only "
                                           "(a run trained with it needs it on --resume too)")
    add_backbone_arg(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--save-minutes", type=float, default=30.0,
                   help="also checkpoint when this many minutes passed since the last save (0: only --ckpt-every)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader processes reading the store")
    p.add_argument("--window", type=int, help="consecutive frames read per random window "
                                               f"(default: {DEFAULTS['window']}; on --resume: the run's)")
    p.add_argument("--test-fraction", type=float,
                   help=f"episodes held out (default: {DEFAULTS['test_fraction']}; on --resume: the run's)")
    p.add_argument("--eval-frames", type=int, default=64, help="test frames for the final reconstruction metrics")
    p.add_argument("--seed", type=int, help=f"random seed (default: {DEFAULTS['seed']}; on --resume: the run's)")
    return p


def main(argv=None) -> int:
    return run_main(lambda: _main(argv), "train-vqgan")


# -- setup ------------------------------------------------------------------------------------------

def _lpips_files(args) -> dict | None:
    if not args.lpips_weights:
        return None
    return {"weights": os.path.abspath(args.lpips_weights),
            "backbone": os.path.abspath(args.lpips_backbone) if args.lpips_backbone else None}


def current_lr(meta: dict) -> float:
    """The learning rate a run trains with now: its config's, or the last --lr given on a --resume."""
    changes = meta.get("lr_changes") or []
    return changes[-1]["lr"] if changes else meta["vqgan"]["lr"]


def _resume_lpips(out: str, meta: dict, args) -> None:
    """A run trained with the LPIPS loss is resumed only with LPIPS weights: one line naming the file."""
    if not meta.get("lpips") or args.lpips_weights:
        return
    files = meta.get("lpips_files") or {}
    flags = (f"--lpips-weights {files['weights']}" + (f" --lpips-backbone {files['backbone']}"
                                                      if files.get("backbone") else "")
             if files.get("weights") else "--lpips-weights with the LPIPS weights file it was trained with")
    raise ValueError(f"{out} was trained with the LPIPS loss: pass {flags} to resume it "
                     "(without it training would continue on L1 + L2 only)")


def _run_config(args, reader: StoreReader) -> tuple[VQGANConfig, dict]:
    """(the VQ-GAN config with CLI overrides, the run.json to write), checked against the store. On
    --resume both are the run's own: a changed setting other than RESUME_OVERRIDES is refused, the
    recorded originals are kept."""
    ckpt_path = os.path.join(args.out, runs.CKPT_FILE)
    if runs.has_checkpoint(ckpt_path) and not args.resume:
        raise FileExistsError(f"{args.out} already holds a checkpoint: pass --resume or choose another --out")
    try:   # the run's own record, even when only ckpt.prev.pt survived a crash
        meta = runs.read_run(args.out, "vqgan") if args.resume else None
    except FileNotFoundError:   # --resume of a run stopped before writing anything: start it
        meta = None
    if meta is not None:
        _resume_lpips(args.out, meta, args)
        if not isinstance(meta.get("vqgan"), dict):
            raise ValueError(f"{args.out} holds no train-vqgan config (no 'vqgan' entry in its run file)")
        if args.config is not None and meta.get("name") != args.config:
            raise ValueError(f"{args.out} was trained with --config {meta.get('name')}, not {args.config}")
        name = meta.get("name")
        if meta.get("dataset") != reader.config.dataset:
            raise ValueError(f"{args.out} was trained on dataset '{meta.get('dataset')}', "
                             f"the store holds '{reader.config.dataset}'")
        cfg = VQGANConfig.from_json(meta["vqgan"])
    else:
        choice = args.config or store_default(reader.config.params, "vqgan_config", "VQ-GAN")
        name = choice if isinstance(choice, str) else f"{reader.config.dataset} (from the store)"
        cfg = named_config(choice)
    lr = args.lr if args.lr is not None or meta is None else current_lr(meta)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", lr),
                                   ("disc_start", args.disc_start)) if v is not None}
    if args.l2_codes:
        if meta is not None and not cfg.l2_normalize:
            raise ValueError(f"--l2-codes: {args.out} was trained with plain codes; a resumed run keeps its lookup")
        overrides["l2_normalize"] = True
    cfg = dataclasses.replace(cfg, **overrides)
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.disc_start < 0:
        raise ValueError("--steps and --batch-size must be >= 1, --disc-start >= 0 and --lr > 0")
    sc = reader.config
    if (sc.height, sc.width) != (cfg.resolution, cfg.resolution):
        raise ValueError(f"store frames are {sc.height}x{sc.width} but VQ-GAN config '{name}' expects "
                         f"{cfg.resolution}x{cfg.resolution}")
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    lpips = {"lpips": bool(args.lpips_weights), "lpips_files": _lpips_files(args)}
    if meta is None:
        return cfg, {"kind": "vqgan", "name": name, "vqgan": cfg.to_json(), "store": reader.url,
                     "dataset": sc.dataset, "resolution": [sc.height, sc.width], **lpips, **DEFAULTS, **given}
    recorded = {**meta, **VQGANConfig.from_json(meta["vqgan"]).to_json()}
    now = {k: v for k, v in cfg.to_json().items() if k not in RESUME_OVERRIDES}
    runs.check_resume(args.out, recorded, {**now, **given, "lpips": lpips["lpips"]})
    # the recorded run with its new step target; what a run made before it was recorded: as given now
    return cfg, {**DEFAULTS, **given, **lpips, **meta, "kind": "vqgan", "store": reader.url,
                 "vqgan": {**meta["vqgan"], "steps": cfg.steps}}


def frame_batches(url: str, episodes: list[int], batch: int, window: int, seed: int, num_workers: int,
                  pin: bool):
    """Endless uint8 (batch, H, W, 3) batches of frames from random windows of `episodes`."""
    ds = WindowDataset(url, window=window, fields=("video",), episodes=episodes, seed=seed, infinite=True)
    dl = DataLoader(ds, batch_size=math.ceil(batch / window), num_workers=num_workers, pin_memory=pin,
                    persistent_workers=num_workers > 0, worker_init_fn=runs.ignore_stop_signals)
    for item in dl:
        v = item["video"]                                     # (b, window, H, W, 3)
        yield v.reshape(-1, *v.shape[2:])[:batch]


# -- one step ---------------------------------------------------------------------------------------

def train_step(model: VQGAN, disc: PatchDiscriminator, lpips: LPIPS | None, opt_g, opt_d,
               frames: torch.Tensor, step: int, amp: bool) -> dict[str, float]:
    """One generator update and, once step >= disc_start, one discriminator update. frames uint8 (B,H,W,3)."""
    cfg = model.cfg
    x = to_float(frames)
    gan = step >= cfg.disc_start
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)
    disc.requires_grad_(False)   # the generator step must not accumulate discriminator gradients
    with ctx:
        recon, vq_loss, codes = model(x)
        parts = reconstruction_loss(x, recon, cfg, lpips)
        loss = parts["rec"] + vq_loss
        if gan:
            g_loss = -disc(recon).mean()
            d_weight = adaptive_weight(parts["rec"], g_loss, model.last_layer()) * cfg.disc_weight
            loss = loss + d_weight * g_loss
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    stats = {"loss": loss.item(), "vq": vq_loss.item(), **{k: v.item() for k, v in parts.items()},
             "code_usage": codes.unique().numel() / cfg.codebook_size}
    if gan:
        disc.requires_grad_(True)
        with ctx:
            d_loss = hinge_d_loss(disc(x), disc(recon.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        stats.update(g=g_loss.item(), d=d_loss.item(), d_weight=d_weight.item())
    return stats


# -- evaluation ---------------------------------------------------------------------------------------

def _eval_frames(reader: StoreReader, episodes: list[int], n: int) -> tuple[np.ndarray | None, list[str]]:
    """(n frames spread over `episodes` and time, deterministic: uint8 (n, H, W, 3), or None when no
    episode is readable; one line per episode skipped because an object is missing or damaged)."""
    T, pool, skipped, out = reader.config.length, list(episodes), [], []
    while pool and len(out) < n:
        per_episode = math.ceil(n / len(pool))
        k = len(out)   # round-robin over episodes, evenly spaced in time within each
        e, t = pool[k % len(pool)], (k // len(pool)) * T // per_episode
        try:
            out.append(read_checked(reader, "video", e, t, t + 1)[0])
        except EpisodeUnreadable as err:   # never measure on fill values: drop it by name, start over
            skipped.append(str(err))
            pool.remove(e)
            out.clear()
    return (np.stack(out) if out else None), skipped


@torch.no_grad()
def evaluate(model: VQGAN, frames: np.ndarray, device: torch.device, batch: int = 32) -> tuple[np.ndarray, dict]:
    """(reconstructions uint8 (n, H, W, 3), {"test_l1", "test_mse", "test_psnr"} on [0, 1] pixels)."""
    model.eval()
    recs = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i:i + batch]).to(device)
        recs.append(model.decode(model.encode(x)).cpu().numpy())
    rec = np.concatenate(recs)
    diff = rec.astype(np.float64) / 255 - frames.astype(np.float64) / 255
    mse = float((diff ** 2).mean())
    return rec, {"test_l1": float(np.abs(diff).mean()), "test_mse": mse,
                 "test_psnr": float(10 * np.log10(1.0 / max(mse, 1e-10)))}


def save_grid(path: str, top: np.ndarray, bottom: np.ndarray) -> None:
    """Two rows of uint8 (n, H, W, 3) frames, 2 px gaps, as a PNG."""
    from PIL import Image
    grid = tile(np.concatenate([top, bottom])[:, None], rows=2)[0]
    try:
        Image.fromarray(grid).save(path)
    except OSError as e:
        raise runs.disk_error(e, path, "write") from None


# -- main ---------------------------------------------------------------------------------------------

def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    for name in ("log_every", "ckpt_every", "window", "eval_frames"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_workers < 0 or not args.save_minutes >= 0:
        raise ValueError("--num-workers and --save-minutes must be >= 0")
    reader = StoreReader(args.store)
    lock = runs.RunLock(args.out, "train-vqgan")
    if os.path.isdir(args.out):   # read the run only while no other process writes it
        lock.acquire()
    try:
        return _train(args, reader, lock)
    finally:
        lock.release()


def _train(args, reader: StoreReader, lock: runs.RunLock) -> int:
    cfg, meta = _run_config(args, reader)
    complete = reader.complete_indices().tolist()
    if not complete:
        raise StoreError(f"{reader.url} has no complete episodes")
    window, seed = meta["window"], meta["seed"]
    if window > reader.config.length:
        raise ValueError(f"--window {window} exceeds the store's episode length {reader.config.length}")
    train, test = split_episodes(complete, meta["test_fraction"])
    if not train:   # a one-episode store: train and test on the same episode rather than refuse
        train = test
    device = resolve_device(args.device)
    torch.manual_seed(seed)
    if not lock.held:   # a new folder: created now that the input is known to be good
        lock.acquire()
        _run_config(args, reader)   # a run that finished meanwhile in the same --out is not overwritten

    lpips = None
    if args.lpips_weights:
        lpips = LPIPS.from_file(args.lpips_weights, backbone=args.lpips_backbone).to(device)
    else:
        log.warning("no --lpips-weights given: training with L1 + L2 reconstruction loss only")
    model = VQGAN(cfg).to(device)
    disc = PatchDiscriminator(cfg.disc_channels, cfg.disc_layers).to(device)
    opt_g = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay)
    ckpt_path = os.path.join(args.out, runs.CKPT_FILE)
    step, note = 0, None
    if args.resume and runs.has_checkpoint(ckpt_path):
        ckpt, note = runs.load_for_resume(ckpt_path, device)
        if note:
            print(f"train-vqgan: {note}", file=sys.stderr)
        model.load_state_dict(ckpt["model"])
        disc.load_state_dict(ckpt["disc"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        for opt in (opt_g, opt_d):   # a --lr override applies to a resumed run too
            for group in opt.param_groups:
                group["lr"] = cfg.lr
        step = int(ckpt["step"])
    if cfg.lr != current_lr(meta):   # --lr on --resume: kept in the record, the config's stays
        meta["lr_changes"] = [*meta.get("lr_changes", []), {"step": step, "lr": cfg.lr}]
    runs.write_json(os.path.join(args.out, runs.RUN_FILE), meta)

    def save() -> None:
        runs.save_checkpoint(ckpt_path, {"model": model.state_dict(), "disc": disc.state_dict(),
                                         "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                         "step": step, "config": cfg.to_json()})

    amp = device.type == "cuda"
    with RunLog(args.out) as runlog:
        runlog.event("resume" if step else "start", step=step, config=meta, train_episodes=len(train),
                     test_episodes=len(test), device=str(device), lpips=lpips is not None,
                     **({"fallback": note} if note else {}))
        if step < cfg.steps:
            batches = frame_batches(reader.url, train, cfg.batch_size, window, seed + step,
                                    args.num_workers, pin=amp)
            model.train()
            disc.train()
            held, _ = _eval_frames(reader, test or train, args.eval_frames)   # the same frames every checkpoint
            # one rate: ours, steps per second of training over the last log interval (held-out scoring excluded)
            bar = tqdm(total=cfg.steps, initial=step, desc="train-vqgan", unit="step", dynamic_ncols=True,
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
            t_last, s_last, saved, t_saved = time.time(), step, step, time.time()
            rate = None
            try:
                with runs.StopSignals("train-vqgan") as stop:
                    for frames in batches:
                        stats = train_step(model, disc, lpips, opt_g, opt_d,
                                           frames.to(device, non_blocking=True), step, amp)
                        step += 1
                        bar.update(1)
                        if step % args.log_every == 0 or step == cfg.steps:
                            if not math.isfinite(stats["loss"]):
                                raise FloatingPointError(f"loss is {stats['loss']} at step {step}; lower --lr")
                            now = time.time()
                            rate = (step - s_last) / max(now - t_last, 1e-9)
                            runlog.log(step, **stats, lr=cfg.lr, steps_per_s=rate)
                            t_last, s_last = now, step
                            # rec is already a per-pixel mean (L1 + L2 on [-1, 1]); loss adds the GAN terms
                            bar.set_postfix(loss=f"{stats['loss']:.4f}", rec_px=f"{stats['rec']:.4f}",
                                            steps_s=f"{rate:.2f}")
                        due = args.save_minutes and time.time() - t_saved >= 60 * args.save_minutes
                        if step % args.ckpt_every == 0 or due or stop.requested:
                            save()
                            saved, t_saved = step, time.time()
                            if held is not None and not stop.requested and step < cfg.steps:
                                t_eval = time.time()
                                _, m = evaluate(model, held, device)   # held-out PSNR at every checkpoint
                                model.train()
                                runlog.event("heldout", step=step, **m)
                                bar.write(f"train-vqgan step {step}: held-out PSNR {m['test_psnr']:.2f} dB "
                                          f"({len(held)} test frames)")
                                t_last += time.time() - t_eval   # not training time
                        if stop.requested:
                            bar.close()
                            runlog.event("stopped", step=step, signal=stop.name, saved=True)
                            print(f"train-vqgan: stopped by {stop.name} after step {step}; checkpoint saved to "
                                  f"{ckpt_path}; continue with --resume", file=sys.stderr)
                            return stop.exit_code
                        if step >= cfg.steps:
                            break
            except KeyboardInterrupt:   # a second signal: stop at once, the last checkpoint stays
                runlog.event("interrupted", step=step, saved=False, last_saved=saved)
                raise
            finally:
                bar.close()
            if saved != step:
                save()
        elif not os.path.exists(ckpt_path):   # done, resumed from ckpt.prev.pt: a loadable run again
            save()

        frames, skipped = _eval_frames(reader, test or train, args.eval_frames)
        for line in skipped:
            print(f"train-vqgan: not measured on {line}", file=sys.stderr)
            runlog.event("skipped_episode", reason=line)
        if frames is None:
            print(f"train-vqgan: step {step}/{cfg.steps}; wrote {ckpt_path}; test PSNR not measured: no readable "
                  "test episode (see above; `teco-store verify` names the damage)")
            return 0
        rec, metrics = evaluate(model, frames, device)
        save_grid(os.path.join(args.out, "recon.png"), frames[:8], rec[:8])
        runlog.log(step, **metrics)
    print(f"train-vqgan: step {step}/{cfg.steps}, test PSNR {metrics['test_psnr']:.2f} dB; "
          f"wrote {ckpt_path} and {os.path.join(args.out, 'recon.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
