"""train-teco: train TECO (stage 2) on the VQ-GAN codes of an episode store.

Single process, or multi-GPU DDP under torchrun (WORLD_SIZE > 1; the loader shards episodes by rank).
RUN/run.json records the config, store, VQ-GAN and the train/test split; RUN/ckpt.pt is the latest
checkpoint (atomic); RUN/log.jsonl the scalars. --resume continues exactly: the data stream restarts
at every checkpoint from a seed derived from (seed, step), and all RNG states are saved, so a resumed
run computes the same losses as an uninterrupted one with the same --ckpt-every.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from storage import StoreError, StoreReader
from storage.cli_util import run_main
from storage.loader import WindowDataset
from storage.split import split_episodes

from .checkpoint import load_checkpoint, save_checkpoint
from .config import TECO_CONFIGS, TECOConfig, get_config
from .model import TECO
from .runlog import RunLog, resolve_device
from .vqgan import load_vqgan

RUN_FILE, CKPT_FILE = "run.json", "ckpt.pt"
# config fields a resumed run may change (everything else must match the checkpoint)
SCHEDULE_FIELDS = {"total_steps", "save_interval", "log_interval"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train-teco", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="episode store with `codes` (default on --resume: the run's)")
    p.add_argument("--vqgan", help="train-vqgan run whose codes are in the store (default on --resume: the run's)")
    p.add_argument("--out", required=True, help="run folder (run.json, ckpt.pt, log.jsonl)")
    p.add_argument("--config", choices=sorted(TECO_CONFIGS), help="named config (required for a new run)")
    p.add_argument("--steps", type=int, help="train until this many steps in total (default: config)")
    p.add_argument("--batch-size", type=int, help="global batch size, split over DDP ranks")
    p.add_argument("--seq-len", type=int, help="frames per training window")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--context", type=int, help="sliding-window attention over the last K frames (short-context baseline)")
    p.add_argument("--grad-clip", type=float, help="clip the gradient norm (deviation: the authors do not clip)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--encode", action="store_true", help="run teco-encode first when the store has no codes")
    p.add_argument("--ckpt-every", type=int, help="checkpoint interval in steps (default: config)")
    p.add_argument("--log-every", type=int, help="log interval in steps (default: config)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader processes per rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.05, help="episodes held out for eval-teco")
    return p


def main(argv=None) -> int:
    return run_main(lambda: _main(argv), "train-teco")


# -- setup ------------------------------------------------------------------------------------------

def init_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, resolve_device(device_arg)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_arg != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), world, torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")


def read_run(run_dir: str) -> dict:
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} is not a train-teco run: {RUN_FILE} is missing")
    with open(path) as f:
        return json.load(f)


def resolve_config(args, saved: dict | None) -> TECOConfig:
    """The named config (new run) or the run's config (resume), with the flags applied."""
    if saved is None:
        if args.config is None:
            raise ValueError("--config is required for a new run")
        cfg = get_config(args.config)
    else:
        cfg = TECOConfig.from_json(saved)
        if args.config is not None and args.config != cfg.name:
            raise ValueError(f"--config {args.config} differs from the run's config '{cfg.name}'")
    over = {"total_steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr,
            "save_interval": args.ckpt_every, "log_interval": args.log_every}
    if args.context is not None:
        over["max_context"] = args.context
    if args.grad_clip is not None:
        over["grad_clip"] = args.grad_clip
    for k, v in over.items():
        if v is not None and k != "max_context" and v <= 0:
            raise ValueError(f"--{k.replace('_', '-')} must be positive, got {v}")
    return dataclasses.replace(cfg, **{k: v for k, v in over.items() if v is not None})


def check_codes(reader: StoreReader, vq_hash: str, vqgan_run: str, episodes: list[int], encode: bool,
                device: str) -> StoreReader:
    """The store must hold codes of exactly this VQ-GAN for every episode we train on; returns the
    reader (reopened when --encode just wrote the codes)."""
    url = reader.url
    if not reader.has("codes"):
        if not encode:
            raise StoreError(f"{url} has no VQ-GAN codes: run `teco-encode --store {url} --vqgan {vqgan_run}` "
                             "first (or pass --encode)")
        from . import encode as teco_encode
        if teco_encode.main(["--store", url, "--vqgan", vqgan_run, "--device", device]) != 0:
            raise StoreError(f"teco-encode failed on {url} (see the message above)")
        reader = StoreReader(url)   # reopen: attributes changed
    info = reader.attrs.get("codes") or {}
    if info.get("vqgan_hash") != vq_hash:
        raise StoreError(f"{url} holds codes of VQ-GAN {info.get('vqgan_hash')}, but --vqgan {vqgan_run} is "
                         f"{vq_hash}: re-encode with `teco-encode --overwrite` or pass the matching VQ-GAN")
    if int(info.get("encoded_episodes") or 0) >= len(episodes):
        return reader
    from .encode import is_encoded
    missing = [i for i in episodes if not is_encoded(reader, i)]
    if missing:
        raise StoreError(f"{url}: {len(missing)} complete episodes (e.g. {missing[:5]}) have no codes yet: "
                         f"rerun `teco-encode --store {url} --vqgan {vqgan_run}`")
    return reader


def lr_lambda(warmup: int, total: int):
    """LR factor at update `step` (0-based), as the authors' optax.warmup_cosine_decay_schedule(0, lr,
    warmup, decay_steps=total - warmup): linear from 0 to 1 over `warmup` steps, then a cosine over
    total - 2 * warmup steps, so it reaches 0 at total - warmup and stays there."""
    decay = max(1, total - 2 * warmup)

    def f(step: int) -> float:
        if step < warmup:
            return step / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / decay)))
    return f


def schedule_warmup(cfg: TECOConfig) -> int:
    """cfg.warmup_steps, except for runs too short for it (total_steps <= 2 x warmup, where the
    authors' optax schedule has no cosine phase and raises): then a tenth of the run."""
    if cfg.total_steps > 2 * cfg.warmup_steps:
        return cfg.warmup_steps
    return max(1, cfg.total_steps // 10)


def make_loader(url, episodes, cfg: TECOConfig, batch: int, workers: int, seed: int, epoch: int,
                pin: bool) -> DataLoader:
    """One data segment: random windows of `codes` + `actions`, seeded by (seed, epoch = start step)."""
    ds = WindowDataset(url, window=cfg.seq_len, fields=("codes", "actions"), episodes=episodes, seed=seed)
    ds.set_epoch(epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)   # worker seeds, off the global RNG
    return DataLoader(ds, batch_size=batch, num_workers=workers, pin_memory=pin, generator=g,
                      drop_last=True)


def _gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def rng_state(gen: torch.Generator, world: int) -> dict:
    s = {"torch": torch.get_rng_state(), "generators": _gather(gen.get_state(), world)}
    if torch.cuda.is_available():
        s["cuda"] = _gather(torch.cuda.get_rng_state(), world)
    return s


def set_rng_state(s: dict, gen: torch.Generator, rank: int) -> None:
    torch.set_rng_state(s["torch"])
    if rank < len(s["generators"]):
        gen.set_state(s["generators"][rank])
    if torch.cuda.is_available() and "cuda" in s and rank < len(s["cuda"]):
        torch.cuda.set_rng_state(s["cuda"][rank])


# -- training ---------------------------------------------------------------------------------------

def train_step(net, opt, params, grad_clip: float | None, amp: bool, *inputs) -> tuple[dict, torch.Tensor]:
    """One update: forward (bf16 autocast when amp) -> dict with "loss", backward, AdamW step; the
    gradient norm is clipped to grad_clip only when set (the authors do not clip).
    Returns (the forward's dict, the gradient norm before any clipping)."""
    net.train()
    device = inputs[0].device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        m = net(*inputs)
    opt.zero_grad(set_to_none=True)
    m["loss"].backward()
    params = list(params)
    if grad_clip is not None:
        gnorm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:   # the norm only, for the log
        gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach().float())
                                                      for p in params if p.grad is not None]))
    opt.step()
    return m, gnorm


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.num_workers < 0 or not 0.0 < args.test_fraction < 1.0:
        raise ValueError("--num-workers must be >= 0 and --test-fraction in (0, 1)")
    rank, world, device = init_distributed(args.device)
    try:
        return train(args, rank, world, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def train(args, rank: int, world: int, device: torch.device) -> int:
    out = os.path.abspath(args.out)
    ckpt_path = os.path.join(out, CKPT_FILE)
    run = None
    if args.resume:
        if not os.path.isfile(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint {ckpt_path} (start the run again without --resume)")
        run = read_run(out)
    elif os.path.exists(ckpt_path):   # run.json alone (stopped before its first checkpoint) may be redone
        raise FileExistsError(f"{out} already holds a train-teco run: pass --resume to continue it or choose another --out")
    store = args.store or (run or {}).get("store")
    vqgan_run = args.vqgan or ((run or {}).get("vqgan") or {}).get("run")
    if not store or not vqgan_run:
        raise ValueError("--store and --vqgan are required for a new run")
    vqgan_run = os.path.abspath(vqgan_run)

    cfg = resolve_config(args, run["config"] if run else None)
    reader = StoreReader(store)
    vqgan, vq_hash = load_vqgan(vqgan_run)
    sc = reader.config
    cfg = dataclasses.replace(cfg, vq_codes=vqgan.codebook_size, vq_dim=int(vqgan.codebook_embeddings().shape[1]),
                              action_dim=len(sc.action_names))
    if cfg.seq_len > sc.length:
        raise ValueError(f"--seq-len {cfg.seq_len} exceeds the store's episode length {sc.length}")
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by the {world} DDP ranks")
    if run is not None:
        if reader.url != run["store"]:
            raise ValueError(f"--store {reader.url} differs from the run's store {run['store']}")
        if vq_hash != run["vqgan"]["hash"]:
            raise ValueError(f"VQ-GAN {vqgan_run} is {vq_hash}, the run was trained on {run['vqgan']['hash']}")
        old = TECOConfig.from_json(run["config"]).to_json()
        diff = [k for k, v in cfg.to_json().items() if k not in SCHEDULE_FIELDS and old.get(k) != v]
        if diff:
            raise ValueError(f"resumed run's settings differ from {out}/{RUN_FILE} in: {', '.join(diff)}")
        train_eps, test_eps = run["split"]["train"], run["split"]["test"]
        seed = run["seed"]
    else:
        complete = reader.complete_indices().tolist()
        if len(complete) < 2:
            raise StoreError(f"{reader.url} has {len(complete)} complete episodes; training needs at least 2")
        train_eps, test_eps = split_episodes(complete, args.test_fraction)
        seed = args.seed
    reader = check_codes(reader, vq_hash, vqgan_run, train_eps, args.encode, args.device)

    torch.manual_seed(seed + rank)
    gen = torch.Generator().manual_seed(seed * 7919 + rank)          # model randomness (masks, DropLoss)
    model = TECO(cfg, vqgan.codebook_embeddings()).to(device)
    del vqgan
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    warmup = schedule_warmup(cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, cfg.total_steps))
    step = 0
    if run is not None:
        ck = load_checkpoint(ckpt_path, map_location="cpu")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        sched.lr_lambdas[0] = lr_lambda(warmup, cfg.total_steps)   # --steps may have changed
        for group, base in zip(opt.param_groups, sched.base_lrs):
            group["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
        step = int(ck["step"])
        set_rng_state(ck["rng"], gen, rank)

    run_info = {"kind": "teco", "config": cfg.to_json(), "store": reader.url, "dataset": sc.dataset,
                "vqgan": {"run": vqgan_run, "hash": vq_hash}, "seed": seed, "context": cfg.max_context,
                "split": {"test_fraction": args.test_fraction if run is None else run["split"]["test_fraction"],
                          "train": train_eps, "test": test_eps},
                "created": (run or {}).get("created") or
                datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        tmp = os.path.join(out, RUN_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(run_info, f, indent=1)
        os.replace(tmp, os.path.join(out, RUN_FILE))

    raw = model
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if args.compile:
        net = torch.compile(net)
    amp = device.type == "cuda"
    per_rank = cfg.batch_size // world

    def checkpoint():
        state = {"model": raw.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "step": step, "rng": rng_state(gen, world), "config": cfg.to_json(), "vqgan_hash": vq_hash}
        if rank == 0:
            save_checkpoint(ckpt_path, state)

    log = RunLog(out) if rank == 0 else None
    if log:
        log.event("resume" if run else "start", step=step, total_steps=cfg.total_steps, world_size=world,
                  device=str(device), params=sum(p.numel() for p in raw.parameters()),
                  train_episodes=len(train_eps), test_episodes=len(test_eps))
    loader = iter(make_loader(reader.url, train_eps, cfg, per_rank, args.num_workers, seed, step, amp))
    bar = tqdm(total=cfg.total_steps, initial=step, desc="train-teco", unit="step", dynamic_ncols=True,
               disable=rank != 0)
    t_last, s_last = time.time(), step
    consistent = True   # False while an update is half applied: no checkpoint on Ctrl-C then
    try:
        while step < cfg.total_steps:
            batch = next(loader)
            codes = batch["codes"].to(device, non_blocking=True)          # (B, L, 16, 16)
            actions = batch["actions"].to(device, non_blocking=True)      # (B, L)
            consistent = False
            m, gnorm = train_step(net, opt, raw.parameters(), cfg.grad_clip, amp, codes, actions, gen)
            sched.step()
            step += 1
            consistent = True
            bar.update(1)
            if step % cfg.log_interval == 0 or step == cfg.total_steps:
                vals = torch.stack([m[k].detach().float() for k in sorted(m)] + [gnorm.float()])
                if world > 1:
                    dist.all_reduce(vals)
                    vals /= world
                scalars = dict(zip(sorted(m) + ["grad_norm"], vals.tolist()))
                now = time.time()
                rate = (step - s_last) / max(now - t_last, 1e-9)
                t_last, s_last = now, step
                if log:
                    log.log(step, **scalars, lr=sched.get_last_lr()[0], steps_per_s=rate)
                bar.set_postfix(loss=f"{scalars['loss']:.3f}", steps_s=f"{rate:.2f}")
            if step % cfg.save_interval == 0 or step == cfg.total_steps:
                checkpoint()
                if step < cfg.total_steps:   # a new data segment starts at every checkpoint (exact resume)
                    loader = iter(make_loader(reader.url, train_eps, cfg, per_rank, args.num_workers, seed, step, amp))
    except KeyboardInterrupt:
        if consistent and world == 1:   # DDP ranks may stop at different points: keep the last checkpoint
            checkpoint()
        if log:
            log.event("interrupted", step=step, saved=consistent and world == 1)
        raise
    finally:
        bar.close()
        if log:
            log.close()
    if rank == 0:
        print(f"train-teco: {step} steps done; checkpoint {ckpt_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
