"""teco-encode: write VQ-GAN codes int16 (N, T, 16, 16) for every complete episode of a store.

The store records which VQ-GAN made its codes (attribute codes.vqgan_hash = the checkpoint's content
hash); a store holding another VQ-GAN's codes is refused unless --overwrite.
Resumable: `codes` starts filled with -1 and an episode's codes are written as one shard, so an episode
counts as encoded when its last frame's codes are written (>= 0) and readable; a rerun encodes the rest.
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from storage import StoreReader, StoreWriter
from storage.cli_util import run_main

from .runlog import resolve_device
from .vqgan import VQGAN, load_vqgan, read_run_config

log = logging.getLogger("teco-encode")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="teco-encode", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="episode store (path or URL)")
    p.add_argument("--vqgan", required=True, help="train-vqgan run folder (config.json + ckpt.pt)")
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
    """Item k: (episode index, uint8 video (T, H, W, 3)), or (index, None) when already encoded."""

    def __init__(self, url: str, indices: list[int]):
        self.url, self.indices = url, indices
        self._reader: StoreReader | None = None   # opened in each worker, after `codes` exists

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        self._reader = self._reader or StoreReader(self.url)
        i = self.indices[k]
        if is_encoded(self._reader, i):
            return i, None
        return i, self._reader.read("video", i)


@torch.inference_mode()
def encode_video(model: VQGAN, video: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    """uint8 (T, H, W, 3) -> int16 (T, g, g) codes."""
    out = [model.encode(video[t:t + batch_size].to(device)).cpu() for t in range(0, len(video), batch_size)]
    return torch.cat(out).numpy().astype(np.int16)


def check_match(reader: StoreReader, run_meta: dict, model: VQGAN, run: str) -> None:
    """One-line ValueError when the store is not what the VQ-GAN was trained for."""
    sc, r = reader.config, model.cfg.resolution
    if (sc.height, sc.width) != (r, r):
        raise ValueError(f"store frames are {sc.height}x{sc.width} but the VQ-GAN in {run} takes {r}x{r}")
    if run_meta.get("dataset") != sc.dataset:
        raise ValueError(f"store holds dataset '{sc.dataset}' but the VQ-GAN in {run} was trained on "
                         f"'{run_meta.get('dataset')}'")
    if model.cfg.codebook_size > np.iinfo(np.int16).max + 1:
        raise ValueError(f"codebook of {model.cfg.codebook_size} codes does not fit the store's int16 codes")


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.num_workers < 0:
        raise ValueError("--batch-size must be >= 1 and --num-workers >= 0")
    device = resolve_device(args.device)
    run_meta = read_run_config(args.vqgan)
    reader = StoreReader(args.store)
    model, vq_hash = load_vqgan(args.vqgan, map_location=device)
    check_match(reader, run_meta, model, args.vqgan)

    writer = StoreWriter.open(reader.url)
    writer.ensure_codes(grid=model.cfg.grid, vqgan_hash=vq_hash, codebook_size=model.cfg.codebook_size,
                        overwrite=args.overwrite)
    todo = np.flatnonzero(writer.complete_mask()).tolist()
    loader = DataLoader(_Episodes(reader.url, todo), batch_size=None, num_workers=args.num_workers,
                        pin_memory=device.type == "cuda")
    encoded = skipped = 0
    with tqdm(total=len(todo), desc="teco-encode", unit="ep", dynamic_ncols=True) as bar:
        for i, video in loader:
            if video is None:
                skipped += 1
            else:
                writer.write_field("codes", i, encode_video(model, video, args.batch_size, device))
                encoded += 1
            bar.update(1)
            bar.set_postfix(encoded=encoded, skipped=skipped)
    writer.update_meta(lambda m: m["codes"].update(vqgan_run=str(args.vqgan), encoded_episodes=encoded + skipped))
    print(f"teco-encode: {encoded} episodes encoded, {skipped} already encoded with VQ-GAN {vq_hash}; "
          f"{len(todo)} complete episodes in {reader.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
