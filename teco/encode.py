"""teco-encode: write VQ-GAN codes int16 (N, T, 16, 16) for every complete episode of a store.

The store records which VQ-GAN made its codes (attribute codes.vqgan_hash = the checkpoint's content
hash); a store holding another VQ-GAN's codes is refused unless --overwrite.
Resumable: `codes` starts filled with -1 and an episode's codes are written as one shard, so an episode
counts as encoded when its last frame's codes are written (>= 0) and readable; a rerun encodes the rest.
An episode whose video is missing or damaged is never encoded: it is named, recorded under
codes.unreadable and skipped (exit status 1); a rerun after repairing it encodes it. A store already
fully encoded by this VQ-GAN is only read (no write access needed).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cli_common import HelpFormatter, run_main
from storage import StoreReader, StoreWriter
from storage.lock import StoreLock

from .episodes import EpisodeUnreadable, read_checked
from .runlog import resolve_device
from .runs import disk_error
from .vqgan import VQGAN, load_vqgan, read_run_config

log = logging.getLogger("teco-encode")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="teco-encode", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="episode store (path or URL)")
    p.add_argument("--vqgan", required=True, help="train-vqgan run folder (run.json + ckpt.pt)")
    p.add_argument("--batch-size", type=int, default=64, help="frames per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--num-workers", type=int, default=2, help="processes reading episodes ahead")
    p.add_argument("--overwrite", action="store_true", help="replace codes made by another VQ-GAN")
    return p


def main(argv=None) -> int:
    return run_main(lambda: _main(argv), "teco-encode")


def is_encoded(reader: StoreReader, i: int) -> bool:
    """Episode i's codes are fully written (see module docstring)."""
    try:
        return bool((np.asarray(reader.read("codes", i, reader.config.length - 1)) >= 0).all())
    except Exception:   # a shard cut short by a crash fails its checksum: encode again
        return False


class _Episodes(Dataset):
    """Item k: (episode index, uint8 video (T, H, W, 3) or None when already encoded, None or the reason
    the episode's video cannot be read)."""

    def __init__(self, url: str, indices: list[int]):
        self.url, self.indices = url, indices
        self._reader: StoreReader | None = None   # opened in each worker, after `codes` exists

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        self._reader = self._reader or StoreReader(self.url)
        i = self.indices[k]
        if is_encoded(self._reader, i):
            return i, None, None
        try:
            return i, read_checked(self._reader, "video", i), None
        except EpisodeUnreadable as e:   # named and skipped in the main process, never encoded
            return i, None, e.reason


@torch.no_grad()
def encode_frames(vqgan: VQGAN, video, batch: int = 64) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames (array or tensor) -> codes long (T, g, g) on the CPU, `batch` frames per
    forward pass on the VQ-GAN's device. The one frames -> codes loop (teco-encode, sampling, eval)."""
    dev = next(vqgan.parameters()).device
    v = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else video
    return torch.cat([vqgan.encode(v[i:i + batch].to(dev)).cpu() for i in range(0, len(v), batch)])


def holds_codes_of(reader: StoreReader, vq_hash: str) -> bool:
    """The store has `codes` made by the VQ-GAN whose checkpoint hash is vq_hash."""
    return reader.has("codes") and (reader.attrs.get("codes") or {}).get("vqgan_hash") == vq_hash


def check_resolution(reader: StoreReader, model: VQGAN, run: str) -> None:
    """One-line ValueError when the store's frames are not the size the VQ-GAN takes."""
    sc, r = reader.config, model.cfg.resolution
    if (sc.height, sc.width) != (r, r):
        raise ValueError(f"store frames are {sc.height}x{sc.width} but the VQ-GAN in {run} takes {r}x{r}")


def check_match(reader: StoreReader, run_meta: dict, model: VQGAN, run: str) -> None:
    """One-line ValueError when the store is not what the VQ-GAN was trained for."""
    sc = reader.config
    check_resolution(reader, model, run)
    if run_meta.get("dataset") != sc.dataset:
        raise ValueError(f"store holds dataset '{sc.dataset}' but the VQ-GAN in {run} was trained on "
                         f"'{run_meta.get('dataset')}'")
    if model.cfg.codebook_size > np.iinfo(np.int16).max + 1:
        raise ValueError(f"codebook of {model.cfg.codebook_size} codes does not fit the store's int16 codes")


@dataclass
class EncodeResult:
    url: str
    vqgan_hash: str
    complete: int                 # complete episodes in the store
    encoded: int = 0              # encoded now
    already: int = 0              # found encoded by this VQ-GAN
    unreadable: dict[int, str] = field(default_factory=dict)   # episode -> why it was skipped


@contextlib.contextmanager
def _writing(url: str):
    """A full disk or read-only mount while writing codes: one line with what to do."""
    try:
        yield
    except OSError as e:
        raise disk_error(e, url, "write codes to", "rerun teco-encode (episodes encoded so far are kept)") from None


def encode_store(store, vqgan_run, device: str | torch.device = "auto", batch_size: int = 64,
                 num_workers: int = 2, overwrite: bool = False, progress: bool = True) -> EncodeResult:
    """Encode every complete, not yet encoded episode of `store` with the VQ-GAN of run `vqgan_run`."""
    if batch_size < 1 or num_workers < 0:
        raise ValueError("--batch-size must be >= 1 and --num-workers >= 0")
    device = resolve_device(device) if isinstance(device, str) else device
    run_meta = read_run_config(vqgan_run)
    reader = StoreReader(store)
    model, vq_hash = load_vqgan(vqgan_run, map_location=device)
    check_match(reader, run_meta, model, vqgan_run)
    if model.trained_step is not None and model.trained_step < model.cfg.steps:
        print(f"teco-encode: warning: the VQ-GAN run {vqgan_run} stopped at step {model.trained_step} of "
              f"{model.cfg.steps}: these codes come from an unfinished tokenizer (`train-vqgan --resume` finishes "
              "it; then encode again with --overwrite)", file=sys.stderr)
    want = {"vqgan_hash": vq_hash, "grid": model.cfg.grid, "codebook_size": model.cfg.codebook_size}
    info = reader.attrs.get("codes") or {}
    # The store lock (the one gen-* and verify --mark-incomplete take) is taken when the first write is due,
    # so a rerun with nothing to do needs no write access.
    with contextlib.ExitStack() as stack:
        writer = lock = None
        beat = time.monotonic()

        def open_writer() -> StoreWriter:
            nonlocal writer, lock
            if writer is None:
                lock = stack.enter_context(StoreLock(reader.url, purpose="teco-encode"))
                with _writing(reader.url):
                    writer = StoreWriter.open(reader.url)
                    writer.ensure_codes(**want, overwrite=overwrite)
            return writer

        if not (holds_codes_of(reader, vq_hash) and all(info.get(k) == v for k, v in want.items())):
            open_writer()   # create `codes`, or refuse another VQ-GAN's (or drop them with overwrite)
        todo = reader.complete_indices().tolist()
        res = EncodeResult(reader.url, vq_hash, len(todo))
        loader = DataLoader(_Episodes(reader.url, todo), batch_size=None, num_workers=num_workers,
                            pin_memory=device.type == "cuda")
        with tqdm(total=len(todo), desc="teco-encode", unit="ep", dynamic_ncols=True, disable=not progress) as bar:
            for i, video, problem in loader:
                if problem is not None:
                    res.unreadable[int(i)] = problem
                    tqdm.write(f"teco-encode: skipping episode {i}: {problem}", file=sys.stderr)
                elif video is None:
                    res.already += 1
                else:
                    codes = encode_frames(model, video, batch_size).numpy().astype(np.int16)
                    with _writing(reader.url):
                        open_writer().write_field("codes", i, codes)
                    res.encoded += 1
                    if time.monotonic() - beat > 60:   # a lock seen from another host stays live while we work
                        lock.heartbeat()
                        beat = time.monotonic()
                bar.update(1)
                bar.set_postfix(encoded=res.encoded, skipped=res.already, unreadable=len(res.unreadable))
        facts = {"encoded_episodes": res.encoded + res.already,
                 "unreadable": {str(i): r for i, r in sorted(res.unreadable.items())}}
        if writer is not None or any(info.get(k, {} if k == "unreadable" else None) != v for k, v in facts.items()):
            facts["vqgan_run"] = os.path.abspath(str(vqgan_run))
            with _writing(reader.url):
                open_writer().update_meta(lambda m: m["codes"].update(facts))
        return res


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    res = encode_store(args.store, args.vqgan, args.device, args.batch_size, args.num_workers, args.overwrite)
    print(f"teco-encode: {res.encoded} episodes encoded, {res.already} already encoded with VQ-GAN "
          f"{res.vqgan_hash}; {res.complete} complete episodes in {res.url}")
    if res.unreadable:
        eps = sorted(res.unreadable)
        print(f"teco-encode: {len(eps)} episodes not encoded because their video is missing or damaged "
              f"(episode {', '.join(map(str, eps[:10]))}{', ...' if len(eps) > 10 else ''}; recorded under "
              f"codes.unreadable): repair them (`teco-store verify {res.url}` names the damage) and rerun",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
