"""train-teco: train TECO (stage 2) on the VQ-GAN codes of an episode store.

Single process, or multi-GPU DDP under torchrun (WORLD_SIZE > 1; the loader shards episodes by rank).
The run folder (teco/runs.py): run.json records the config, store, VQ-GAN and the train/test split;
ckpt.pt is the latest checkpoint (checksummed, atomic; ckpt.prev.pt the one before); log.jsonl the
scalars; one process at a time writes it. Checkpoints every --ckpt-every steps and --save-minutes
minutes; SIGINT/SIGTERM finish the current step, save and exit (128 + the signal).
--resume continues exactly: the data stream restarts at every --ckpt-every boundary from a seed derived
from (seed, step), a checkpoint between boundaries records how many batches of the stream were used,
and all RNG states are saved, so a resumed run computes the same losses as an uninterrupted one with
the same --ckpt-every.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from cli_common import HelpFormatter, run_main
from storage import StoreError, StoreReader
from storage.loader import WindowDataset
from storage.split import split_episodes

from . import runs
from .config import TECO_CONFIGS, TECOConfig, get_config, store_default
from .encode import encode_store, holds_codes_of, is_encoded
from .model import TECO
from .runlog import RunLog, resolve_device
from .runs import CKPT_FILE, RUN_FILE
from .vqgan import load_recorded_vqgan

# config fields a resumed run may change (everything else must match the checkpoint)
SCHEDULE_FIELDS = {"total_steps", "save_interval", "log_interval"}
# the flag of each config field a flag sets, for messages
FLAGS = {"total_steps": "--steps", "batch_size": "--batch-size", "seq_len": "--seq-len", "lr": "--lr",
         "save_interval": "--ckpt-every", "log_interval": "--log-every", "grad_clip": "--grad-clip"}
# a new run's seed and test fraction; a resumed run keeps its own (None: not given)
DEFAULT_SEED, DEFAULT_TEST_FRACTION = 0, 0.05


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="train-teco", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="episode store with `codes` (default on --resume: the run's)")
    p.add_argument("--vqgan", help="train-vqgan run whose codes are in the store (default on --resume: the run's)")
    p.add_argument("--out", required=True, help="run folder (run.json, ckpt.pt, log.jsonl)")
    p.add_argument("--config", choices=sorted(TECO_CONFIGS), help="named config (new run; default: the one the store's dataset records)")
    p.add_argument("--steps", type=int, help="train until this many steps in total (default: config)")
    p.add_argument("--batch-size", type=int, help="global batch size, split over DDP ranks (default: config)")
    p.add_argument("--seq-len", type=int, help="frames per training window (default: config)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: config)")
    p.add_argument("--context", type=int,
                   help="sliding-window attention over the last K frames (short-context baseline; default: the "
                        "whole window)")
    p.add_argument("--action-lead", type=int, choices=(0, 1),
                   help="pair the input predicting frame t with actions[t + K] (default: config; dmlab 1, as the "
                        "authors' model on their DMLab files; 0 = the action that produced frame t)")
    p.add_argument("--grad-clip", type=float,
                   help="clip the gradient norm (deviation: the authors do not clip; default: off)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--encode", action="store_true", help="run teco-encode first when the store has no codes")
    p.add_argument("--ckpt-every", type=int, help="checkpoint interval in steps (default: config)")
    p.add_argument("--log-every", type=int, help="log interval in steps (default: config)")
    p.add_argument("--save-minutes", type=float, default=30.0,
                   help="also checkpoint when this many minutes passed since the last save, so a crash loses at "
                        "most that much work (0: only --ckpt-every)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader processes per rank")
    p.add_argument("--seed", type=int, help=f"random seed (default: {DEFAULT_SEED}; on --resume: the run's)")
    p.add_argument("--test-fraction", type=float,
                   help=f"episodes held out for eval-teco (default: {DEFAULT_TEST_FRACTION}; on --resume: the run's)")
    p.add_argument("--heldout-windows", type=int, default=16,
                   help="held-out windows scored at every checkpoint (prior NLL vs code entropy, next-frame "
                        "accuracy vs copying; teco.metrics.LearningStats); 0: off")
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
    return runs.read_run(run_dir, "teco")


def resolve_config(args, saved: dict | None, store_params: dict) -> TECOConfig:
    """The named config (new run; default: the one the store's dataset records) or the run's config
    (resume), with the flags applied."""
    if saved is None:
        cfg = get_config(args.config or store_default(store_params, "teco_config", "TECO"))
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
    if args.action_lead is not None:    # a resumed run refuses a change, as any setting (open_run)
        over["action_lead"] = args.action_lead
    for k, v in over.items():
        if v is not None and k not in ("max_context", "action_lead") and v <= 0:
            raise ValueError(f"{FLAGS[k]} must be positive, got {v}")
    return dataclasses.replace(cfg, **{k: v for k, v in over.items() if v is not None})


def action_dim_for(cfg: TECOConfig, action_names: list[str], say: bool = True) -> int:
    """The action embedding keeps the config's rows (the authors' 6 + 1 for every dataset) unless the store
    has more actions than that; then it grows to them, and says so."""
    n = len(action_names)
    if n > cfg.action_dim and say:
        print(f"train-teco: the store has {n} actions, more than config '{cfg.name}' embeds "
              f"({cfg.action_dim}): action_dim = {n}", file=sys.stderr)
    return max(cfg.action_dim, n)


def check_codes(reader: StoreReader, vq_hash: str, vqgan_run: str, episodes: list[int], encode: bool,
                device: str, grid: int) -> tuple[StoreReader, list[int], dict[int, str]]:
    """The store must hold codes of exactly this VQ-GAN (grid x grid per frame) for every episode we train on. Returns (the
    reader, reopened when --encode just wrote the codes; the episodes to train on; {episode: reason}
    for those left out because teco-encode found their video missing or damaged)."""
    url = reader.url
    if not reader.has("codes"):
        if not encode:
            raise StoreError(f"{url} has no VQ-GAN codes: run `teco-encode --store {url} --vqgan {vqgan_run}` "
                             "first (or pass --encode)")
        encode_store(url, vqgan_run, device=device)
        reader = StoreReader(url)   # reopen: attributes changed
    info = reader.attrs.get("codes") or {}
    if not holds_codes_of(reader, vq_hash):
        raise StoreError(f"{url} holds codes of VQ-GAN {info.get('vqgan_hash')}, but --vqgan {vqgan_run} is "
                         f"{vq_hash}: re-encode with `teco-encode --overwrite` or pass the matching VQ-GAN")
    stored = tuple(reader.array("codes").shape[2:])
    if stored != (grid, grid):      # the hash matched, so only a store encoded by other code gets here
        raise StoreError(f"{url} holds codes of {stored} per frame, but the VQ-GAN's grid is {grid}x{grid}: "
                         "re-encode with `teco-encode --overwrite`")
    bad = info.get("unreadable") if isinstance(info.get("unreadable"), dict) else {}
    dropped = {i: str(bad[str(i)]) for i in episodes if str(i) in bad}
    episodes = [i for i in episodes if i not in dropped]
    if not episodes:
        raise StoreError(f"{url}: no episode to train on has readable video (see codes.unreadable)")
    if int(info.get("encoded_episodes") or 0) >= len(episodes):
        return reader, episodes, dropped
    missing = [i for i in episodes if not is_encoded(reader, i)]
    if missing:
        raise StoreError(f"{url}: {len(missing)} complete episodes (e.g. {missing[:5]}) have no codes yet: "
                         f"rerun `teco-encode --store {url} --vqgan {vqgan_run}`")
    return reader, episodes, dropped


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
                      drop_last=True, worker_init_fn=runs.ignore_stop_signals)


def heldout_windows(reader: StoreReader, episodes: list[int], seq_len: int, n: int) -> list[dict]:
    """Up to n windows of codes + actions from the test episodes, the same every checkpoint: round-robin
    over episodes, starts evenly spaced in each. Unreadable or unencoded episodes are left out."""
    from .episodes import EpisodeUnreadable, read_checked
    T = reader.config.length
    good = []
    for e in episodes:
        try:
            codes = read_checked(reader, "codes", e)
            actions = read_checked(reader, "actions", e)
        except EpisodeUnreadable:
            continue
        if (codes >= 0).all():
            good.append((codes, actions))
    out = []
    per = math.ceil(n / len(good)) if good else 0
    for k in range(min(n, len(good) * per)):
        codes, actions = good[k % len(good)]
        j = k // len(good)
        s = (T - seq_len) * j // max(per - 1, 1) if per > 1 else 0
        out.append({"codes": torch.from_numpy(codes[s:s + seq_len].astype("int64")),
                    "actions": torch.from_numpy(actions[s:s + seq_len].astype("int64"))})
    return out


@torch.no_grad()
def heldout_figures(model: TECO, windows: list[dict], device: torch.device, seed: int, batch: int = 4) -> dict:
    """teco.metrics.LearningStats over the held-out windows (eval mode, no action dropout)."""
    from .metrics import LearningStats
    stats = LearningStats(seed)
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        stats.add(model, torch.stack([x["codes"] for x in w]).to(device),
                  torch.stack([x["actions"] for x in w]).to(device))
    return stats.summary()


def per_token(scalars: dict, cfg: TECOConfig) -> dict:
    """The per-frame sums as per-token figures: prior_loss / (z_grid^2), recon_loss / (codes_grid^2)."""
    out = {}
    if "prior_loss" in scalars:
        out["prior_nll_per_token"] = scalars["prior_loss"] / cfg.z_grid ** 2
    if "recon_loss" in scalars:
        out["recon_ce_per_code"] = scalars["recon_loss"] / cfg.codes_grid ** 2
    return out


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
    bad_fraction = args.test_fraction is not None and not 0.0 < args.test_fraction < 1.0
    if args.num_workers < 0 or bad_fraction or not args.save_minutes >= 0:
        raise ValueError("--num-workers and --save-minutes must be >= 0 and --test-fraction in (0, 1)")
    rank, world, device = init_distributed(args.device)
    try:
        return train(args, rank, world, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def train(args, rank: int, world: int, device: torch.device) -> int:
    """Set up the run, build (or restore) model and optimiser, run the loop; rank 0 holds the run lock."""
    lock = runs.RunLock(args.out, "train-teco") if rank == 0 else None
    if lock and os.path.isdir(args.out):   # read the run only while no other process writes it
        lock.acquire()
    try:
        run = open_run(args, world)
        state = build_model(run, device, rank)
        if rank == 0:
            if not lock.held:   # a new folder: created once the input is known to be good
                lock.acquire()
                if run.resumed is None and runs.has_checkpoint(run.ckpt_path):
                    raise FileExistsError(f"{run.out} already holds a train-teco run: pass --resume to continue it")
            runs.write_json(os.path.join(run.out, RUN_FILE), run.info())
        return fit(run, state, args, rank, world, device)
    finally:
        if lock:
            lock.release()


# -- set-up -----------------------------------------------------------------------------------------

@dataclass
class Run:
    """What a run trains on, fixed before the model exists (run.json is `info()`)."""
    out: str
    ckpt_path: str
    resumed: dict | None          # the run.json being continued, None for a new run
    cfg: TECOConfig
    reader: StoreReader
    vqgan_run: str
    vq_hash: str
    codebook: torch.Tensor        # (K, D) VQ-GAN code vectors the model embeds codes with
    train_eps: list[int]
    test_eps: list[int]
    dropped: dict[int, str]       # train episodes left out: video missing or damaged
    seed: int
    test_fraction: float

    def info(self) -> dict:
        return {"kind": "teco", "config": self.cfg.to_json(), "store": self.reader.url,
                "dataset": self.reader.config.dataset, "vqgan": {"run": self.vqgan_run, "hash": self.vq_hash},
                "seed": self.seed, "context": self.cfg.max_context,
                "split": {"test_fraction": self.test_fraction, "train": self.train_eps, "test": self.test_eps},
                **({"left_out": {str(i): r for i, r in self.dropped.items()}} if self.dropped else {}),
                "created": (self.resumed or {}).get("created") or
                datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def open_run(args, world: int) -> Run:
    """The run in --out (--resume) or a new one: config, store, VQ-GAN and split, all checked."""
    out = os.path.abspath(args.out)
    ckpt_path = os.path.join(out, CKPT_FILE)
    run = None
    if args.resume:
        if not runs.has_checkpoint(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint {ckpt_path} (start the run again without --resume)")
        run = read_run(out)
    elif runs.has_checkpoint(ckpt_path):   # run.json alone (stopped before its first checkpoint) may be redone
        raise FileExistsError(f"{out} already holds a train-teco run: pass --resume to continue it or choose another --out")
    store = args.store or (run or {}).get("store")
    vqgan_run = args.vqgan or ((run or {}).get("vqgan") or {}).get("run")
    if not store or not vqgan_run:
        raise ValueError("--store and --vqgan are required for a new run")
    vqgan_run = os.path.abspath(vqgan_run)

    reader = StoreReader(store)
    cfg = resolve_config(args, run["config"] if run else None, reader.config.params)
    vqgan, vq_hash = load_recorded_vqgan(vqgan_run, os.path.join(out, RUN_FILE), args.vqgan is not None)
    codebook, codes_grid = vqgan.codebook_embeddings(), vqgan.cfg.grid
    del vqgan
    sc = reader.config
    # what the model's code input looks like comes from the VQ-GAN: codebook size, width and grid side
    first = not dist.is_initialized() or dist.get_rank() == 0
    cfg = dataclasses.replace(cfg, vq_codes=codebook.shape[0], vq_dim=int(codebook.shape[1]),
                              codes_grid=codes_grid, action_dim=action_dim_for(cfg, sc.action_names, say=first))
    if cfg.seq_len > sc.length:
        raise ValueError(f"--seq-len {cfg.seq_len} exceeds the store's episode length {sc.length}")
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by the {world} DDP ranks")
    if run is not None:
        if reader.url != run["store"]:
            raise ValueError(f"--store {reader.url} differs from the run's store {run['store']}")
        if vq_hash != run["vqgan"]["hash"]:
            raise ValueError(f"VQ-GAN {vqgan_run} is {vq_hash}, the run was trained on {run['vqgan']['hash']}")
        seed, test_fraction = run["seed"], run["split"]["test_fraction"]
        given = {k: v for k, v in (("seed", args.seed), ("test_fraction", args.test_fraction)) if v is not None}
        now = {k: v for k, v in cfg.to_json().items() if k not in SCHEDULE_FIELDS}
        runs.check_resume(out, {**TECOConfig.from_json(run["config"]).to_json(), "seed": seed,
                                "test_fraction": test_fraction}, {**now, **given})
        train_eps, test_eps = run["split"]["train"], run["split"]["test"]
    else:
        complete = reader.complete_indices().tolist()
        if len(complete) < 2:
            raise StoreError(f"{reader.url} has {len(complete)} complete episodes; training needs at least 2")
        seed = DEFAULT_SEED if args.seed is None else args.seed
        test_fraction = DEFAULT_TEST_FRACTION if args.test_fraction is None else args.test_fraction
        train_eps, test_eps = split_episodes(complete, test_fraction)
    reader, train_eps, dropped = check_codes(reader, vq_hash, vqgan_run, train_eps, args.encode, args.device,
                                               cfg.codes_grid)
    if dropped:
        print(f"train-teco: leaving out {len(dropped)} train episodes whose video teco-encode found missing or "
              f"damaged (episode {', '.join(map(str, sorted(dropped)[:10]))})", file=sys.stderr)
    return Run(out, ckpt_path, run, cfg, reader, vqgan_run, vq_hash, codebook, train_eps, test_eps, dropped,
               seed, test_fraction)


@dataclass
class State:
    """The model and everything that changes while training."""
    model: TECO
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    gen: torch.Generator          # model randomness (masks, DropLoss)
    step: int = 0
    segment: int = 0              # step at which the current data segment started
    batches: int = 0              # batches of that segment already used
    note: str | None = None       # how a resume found its checkpoint, when not the plain way


def build_model(run: Run, device: torch.device, rank: int) -> State:
    """Model and optimiser, restored from the run's checkpoint on --resume."""
    cfg = run.cfg
    torch.manual_seed(run.seed + rank)
    gen = torch.Generator().manual_seed(run.seed * 7919 + rank)
    model = TECO(cfg, run.codebook).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    warmup = schedule_warmup(cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, cfg.total_steps))
    st = State(model, opt, sched, gen)
    if run.resumed is not None:
        ck, st.note = runs.load_for_resume(run.ckpt_path, map_location="cpu")
        if st.note and rank == 0:
            print(f"train-teco: {st.note}", file=sys.stderr)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        sched.lr_lambdas[0] = lr_lambda(warmup, cfg.total_steps)   # --steps may have changed
        for group, base in zip(opt.param_groups, sched.base_lrs):
            group["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
        st.step = int(ck["step"])
        data = ck.get("data") or {}   # checkpoints from before mid-segment saves: a segment boundary
        st.segment, st.batches = int(data.get("segment", st.step)), int(data.get("batches", 0))
        set_rng_state(ck["rng"], gen, rank)
    return st


# -- the loop ---------------------------------------------------------------------------------------

def mean_scalars(m: dict, gnorm: torch.Tensor, world: int) -> dict[str, float]:
    """The step's losses and gradient norm as floats, averaged over DDP ranks."""
    vals = torch.stack([m[k].detach().float() for k in sorted(m)] + [gnorm.float()])
    if world > 1:
        dist.all_reduce(vals)
        vals /= world
    return dict(zip(sorted(m) + ["grad_norm"], vals.tolist()))


def any_rank(flags: list[bool], world: int, device: torch.device) -> list[bool]:
    """Each flag true on any DDP rank (one tiny all-reduce per step under DDP)."""
    if world == 1:
        return flags
    t = torch.tensor(flags, dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def fit(run: Run, st: State, args, rank: int, world: int, device: torch.device) -> int:
    """Train from st.step to cfg.total_steps; checkpoints at --ckpt-every boundaries, every
    --save-minutes and on SIGINT/SIGTERM (then returns 128 + the signal)."""
    cfg, raw = run.cfg, st.model
    net = raw
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            raw, device_ids=[device.index] if device.type == "cuda" else None)
    if args.compile:
        net = torch.compile(net)
    amp = device.type == "cuda"
    per_rank = cfg.batch_size // world

    def data_segment(start: int, skip: int):
        it = iter(make_loader(run.reader.url, run.train_eps, cfg, per_rank, args.num_workers, run.seed, start, amp))
        for _ in range(skip):   # a checkpoint between boundaries: continue the stream where it stopped
            next(it)
        return it

    def checkpoint():
        state = {"model": raw.state_dict(), "optimizer": st.opt.state_dict(), "scheduler": st.sched.state_dict(),
                 "step": st.step, "data": {"segment": st.segment, "batches": st.batches},
                 "rng": rng_state(st.gen, world), "config": cfg.to_json(), "vqgan_hash": run.vq_hash}
        if rank == 0:
            runs.save_checkpoint(run.ckpt_path, state)

    log = RunLog(run.out) if rank == 0 else None
    if log:
        log.event("resume" if run.resumed else "start", step=st.step, total_steps=cfg.total_steps,
                  world_size=world, device=str(device), params=sum(p.numel() for p in raw.parameters()),
                  train_episodes=len(run.train_eps), test_episodes=len(run.test_eps),
                  **({"fallback": st.note} if st.note else {}))
    windows = (heldout_windows(run.reader, run.test_eps, cfg.seq_len, args.heldout_windows)
               if rank == 0 and args.heldout_windows > 0 else [])
    if rank == 0 and args.heldout_windows > 0 and not windows:
        print("train-teco: no encoded, readable test episode: held-out figures are not measured", file=sys.stderr)

    def heldout():
        """Score the held-out windows; logged, and printed above the bar. Returns the seconds it took."""
        if not windows:
            return 0.0
        t = time.time()
        fig = heldout_figures(raw, windows, device, run.seed)
        if log:
            log.event("heldout", step=st.step, **fig)
        bar.write(f"train-teco step {st.step}: held-out prior NLL {fig['prior_nll_per_token']:.3f} nats/token vs "
                  f"code entropy {fig['code_entropy']:.3f}; next-frame code accuracy {fig['next_frame_acc']:.1%} "
                  f"vs copying {fig['copy_acc']:.1%} ({fig['frames']} frames)")
        return time.time() - t

    loader = data_segment(st.segment, st.batches)
    # one rate: ours, steps per second of training over the last log interval (held-out scoring excluded)
    bar = tqdm(total=cfg.total_steps, initial=st.step, desc="train-teco", unit="step", dynamic_ncols=True,
               disable=rank != 0, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    t_last, s_last, t_saved, last_saved = time.time(), st.step, time.time(), st.step
    try:
        with runs.StopSignals("train-teco") as stop:
            while st.step < cfg.total_steps:
                batch = next(loader)
                codes = batch["codes"].to(device, non_blocking=True)          # (B, L, 16, 16)
                actions = batch["actions"].to(device, non_blocking=True)      # (B, L)
                m, gnorm = train_step(net, st.opt, raw.parameters(), cfg.grad_clip, amp, codes, actions, st.gen)
                st.sched.step()
                st.step += 1
                st.batches += 1
                bar.update(1)
                if st.step % cfg.log_interval == 0 or st.step == cfg.total_steps:
                    scalars = mean_scalars(m, gnorm, world)
                    scalars.update(per_token(scalars, cfg))
                    now = time.time()
                    rate = (st.step - s_last) / max(now - t_last, 1e-9)
                    t_last, s_last = now, st.step
                    if log:
                        log.log(st.step, **scalars, lr=st.sched.get_last_lr()[0], steps_per_s=rate)
                    bar.set_postfix(loss=f"{scalars['loss']:.1f}", prior_tok=f"{scalars['prior_nll_per_token']:.3f}",
                                    recon_code=f"{scalars['recon_ce_per_code']:.3f}", steps_s=f"{rate:.2f}")
                boundary = st.step % cfg.save_interval == 0 or st.step == cfg.total_steps
                if boundary:   # a new data segment starts at every boundary (exact resume)
                    st.segment, st.batches = st.step, 0
                due = bool(args.save_minutes) and time.time() - t_saved >= 60 * args.save_minutes
                # every rank must agree: saving gathers RNG states from all of them
                due, stopping = any_rank([due, stop.requested], world, device)
                if boundary or due or stopping:
                    checkpoint()
                    t_saved, last_saved = time.time(), st.step
                if boundary and not stopping:
                    t_last += heldout()   # its time is not training time
                if stopping:
                    bar.close()
                    name = stop.name or "a signal on another rank"
                    if log:
                        log.event("stopped", step=st.step, signal=name, saved=True)
                    if rank == 0:
                        print(f"train-teco: stopped by {name} after step {st.step}; checkpoint saved to "
                              f"{run.ckpt_path}; continue with --resume", file=sys.stderr)
                    return stop.exit_code if stop.requested else 143
                if boundary and st.step < cfg.total_steps:
                    loader = data_segment(st.step, 0)
    except KeyboardInterrupt:   # a second signal: stop at once; the last checkpoint stays
        if log:
            log.event("interrupted", step=st.step, saved=False, last_checkpoint=last_saved)
        raise
    finally:
        bar.close()
        if log:
            log.close()
    if rank == 0:
        print(f"train-teco: {st.step} steps done; checkpoint {run.ckpt_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
