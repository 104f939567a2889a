"""Convert the paper's released datasets into a store: one .npz per episode (`video`, `actions`), or
.mp4 + .npy pairs as its Minecraft collector wrote them. Resumable: complete episodes are skipped."""
from __future__ import annotations

import glob
import os

import numpy as np
from tqdm import tqdm

from .schema import StoreConfig, StoreError
from .writer import StoreWriter

EXTS = (".npz", ".mp4")


def find_episodes(path: str) -> list[str]:
    if os.path.isfile(path):
        files = [path]
    elif os.path.isdir(path):
        files = [f for e in EXTS for f in glob.glob(os.path.join(path, "**", "*" + e), recursive=True)]
    else:
        raise FileNotFoundError(f"{path} does not exist")
    files = sorted(f for f in files if f.endswith(EXTS))
    if not files:
        raise ValueError(f"no .npz or .mp4 episodes under {path}")
    return files


def load_episode(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(video uint8 (T,H,W,3), actions int (T,)) from one released episode file."""
    if path.endswith(".npz"):
        with np.load(path) as z:
            if "video" not in z or "actions" not in z:
                raise StoreError(f"{path}: expected arrays 'video' and 'actions', found {sorted(z.files)}")
            video, actions = z["video"], z["actions"]
    else:
        import imageio.v3 as iio
        npy = os.path.splitext(path)[0] + ".npy"
        if not os.path.exists(npy):
            raise StoreError(f"{path}: no actions file {npy} beside it")
        video, actions = iio.imread(path, plugin="pyav") if _has_pyav() else iio.imread(path), np.load(npy)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise StoreError(f"{path}: video is {video.dtype}{video.shape}, expected uint8 (T, H, W, 3)")
    actions = np.asarray(actions).reshape(len(actions), -1)
    if actions.shape[1] != 1:
        raise StoreError(f"{path}: actions have shape {actions.shape}; expected one id per frame")
    return video, actions[:, 0].astype(np.int64)


def _has_pyav() -> bool:
    import importlib.util
    return importlib.util.find_spec("av") is not None


def import_episodes(src: str, out: str, dataset: str, num_actions: int | None = None,
                    progress: bool = True) -> StoreWriter:
    files = find_episodes(src)
    video, actions = load_episode(files[0])
    t, h, w, _ = video.shape
    if num_actions is None:   # scan ids cheaply from the first episodes; later ones are checked on write
        num_actions = int(max(load_episode(f)[1].max() for f in files[:16])) + 1
    cfg = StoreConfig(dataset=dataset, episodes=len(files), length=t, height=h, width=w,
                      action_names=[f"action_{k}" for k in range(num_actions)], pose_names=[],
                      backend="import", backend_version="1", seed=-1,
                      params={"source": os.path.abspath(src), "files": [os.path.relpath(f, src) if os.path.isdir(src)
                                                                        else os.path.basename(f) for f in files]})
    writer = StoreWriter.create(out, cfg)
    done = writer.complete_mask()
    for i, f in enumerate(tqdm(files, desc="import", unit="ep", disable=not progress)):
        if done[i]:
            continue
        video, actions = load_episode(f)
        if video.shape != (t, h, w, 3):
            raise StoreError(f"{f}: video {video.shape} differs from the first episode's {(t, h, w, 3)}")
        writer.write_episode(i, video, actions, np.empty((t, 0), np.float32))
        writer.mark_complete(i, -1)
    return writer
