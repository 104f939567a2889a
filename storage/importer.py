"""Convert the paper's released datasets into a store. Resumable: complete episodes are skipped.

Layouts (the authors' collectors):
- DMLab: one `NAME.npz` per episode with `video` (T, H, W, 3) and `actions` (T,): the action taken AFTER frame t.
- Minecraft, Habitat: `NAME.mp4` + `NAME.npz` (key `actions`, np.savez_compressed); `NAME.npy` is accepted too.
  Both store the action that PRODUCED frame t; Minecraft's frame 0 is the reset view with a placeholder id 0
  there, Habitat stores no start view (frame 0 follows the first action).
Actions are converted to the store's convention (storage/FORMAT.md): actions[t] produced frame t, -1 for none.
A released `train/` + `test/` tree keeps its split: train episodes first, recorded in `config.params["split"]`.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import zipfile

import numpy as np
from tqdm import tqdm

from cli_common import first_line

from .schema import StoreConfig, StoreError
from .writer import StoreWriter, actions_valid

NO_ACTION = -1

# How a released file's actions[t] relates to frame t.
AFTER = "after"                    # taken after frame t (DMLab): shift right by one, -1 first
PRODUCED = "produced"              # produced frame t (Habitat): as is
PRODUCED_RESET = "produced-reset"  # produced frame t, index 0 a placeholder for the reset view (Minecraft)
CONVENTIONS = (AFTER, PRODUCED, PRODUCED_RESET)

SPLITS = ("train", "test")
MAX_ACTIONS = 1 << 16   # a larger id inferred from the files is a damaged file, not an action space


def to_store_actions(actions: np.ndarray, convention: str) -> np.ndarray:
    """Released per-frame action ids -> the store's `actions[t]` (the action that produced frame t)."""
    a = np.asarray(actions).astype(np.int64)
    out = np.empty(len(a), np.int64)   # checked against the action space before the store's int32
    if convention == AFTER:
        out[0] = NO_ACTION                # what produced the first kept frame is not in the file
        out[1:] = a[:-1]                  # the action after the last frame produced nothing recorded
    elif convention == PRODUCED:
        out[:] = a
    elif convention == PRODUCED_RESET:
        out[:] = a
        out[0] = NO_ACTION
    else:
        raise ValueError(f"unknown action convention '{convention}': choose one of {', '.join(CONVENTIONS)}")
    return out


def _episodes_in(folder: str) -> list[str]:
    """Episode files under `folder`, sorted: every .mp4, and every .npz that is not an .mp4's actions file."""
    mp4 = glob.glob(os.path.join(folder, "**", "*.mp4"), recursive=True)
    stems = {os.path.splitext(f)[0] for f in mp4}
    npz = [f for f in glob.glob(os.path.join(folder, "**", "*.npz"), recursive=True)
           if os.path.splitext(f)[0] not in stems]
    return sorted(mp4 + npz)


def find_episodes(path: str) -> tuple[list[str], dict[str, list[int]] | None]:
    """(episode files, released split or None). A folder with `train/` and/or `test/` keeps that split:
    train files first, then test; the split is {"train": [start, stop], "test": [start, stop]}."""
    if os.path.isfile(path):
        if not path.endswith((".npz", ".mp4")):
            raise ValueError(f"{path} is not an .npz or .mp4 episode")
        return [path], None
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} does not exist")
    split_dirs = [s for s in SPLITS if os.path.isdir(os.path.join(path, s))]
    if split_dirs:
        parts = {s: _episodes_in(os.path.join(path, s)) for s in SPLITS}
        files = parts["train"] + parts["test"]
        n = len(parts["train"])
        split = {"train": [0, n], "test": [n, len(files)]}
    else:
        files, split = _episodes_in(path), None
    if not files:
        raise ValueError(f"no .npz or .mp4 episodes under {path}")
    return files, split


def _read_mp4(path: str) -> np.ndarray:
    import imageio.v3 as iio
    if importlib.util.find_spec("av") is not None:
        return iio.imread(path, plugin="pyav")
    return iio.imread(path)           # imageio-ffmpeg


def _load_arrays(path: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays `keys` of an .npz (or the one array of an .npy, as 'actions'); a file numpy cannot read
    (cut short, not an .npz, object arrays) is a StoreError naming it."""
    try:
        if path.endswith(".npy"):
            return {"actions": np.load(path)}
        with np.load(path) as z:
            if set(keys) - set(z.files):
                raise StoreError(f"{path}: expected arrays {', '.join(repr(k) for k in keys)}, found {sorted(z.files)}")
            return {k: z[k] for k in keys}
    except StoreError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        # np.load takes what is neither a zip nor an .npy for a pickle, which we never load: say what it is not
        why = ("neither a zip archive nor an .npy array" if "contains pickled" in str(e)
               else f"{type(e).__name__}: {first_line(e)}")
        raise StoreError(f"{path}: not a readable {os.path.splitext(path)[1]} file ({why})") from None


def load_episode(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(video uint8 (T, H, W, 3), released action ids int64 (T,)) from one episode file."""
    if path.endswith(".npz"):
        z = _load_arrays(path, ("video", "actions"))
        video, actions = z["video"], z["actions"]
    else:
        stem = os.path.splitext(path)[0]
        if os.path.exists(stem + ".npz"):
            actions = _load_arrays(stem + ".npz", ("actions",))["actions"]
        elif os.path.exists(stem + ".npy"):
            actions = _load_arrays(stem + ".npy", ("actions",))["actions"]
        else:
            raise StoreError(f"{path}: no actions file {stem}.npz (or .npy) beside it")
        try:
            video = _read_mp4(path)
        except Exception as e:       # imageio raises several types for unreadable files (ffmpeg's banner: cut)
            raise StoreError(f"{path}: cannot decode the video ({type(e).__name__}: {first_line(e)})") from None
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise StoreError(f"{path}: video is {video.dtype}{video.shape}, expected uint8 (T, H, W, 3)")
    if len(video) == 0:
        raise StoreError(f"{path}: the video has no frames")
    actions = np.asarray(actions)
    if actions.ndim == 2 and actions.shape[1] == 1:
        actions = actions[:, 0]
    if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
        raise StoreError(f"{path}: actions are {actions.dtype}{actions.shape}; expected one integer id per frame")
    if len(actions) != len(video):
        raise StoreError(f"{path}: {len(actions)} actions for {len(video)} frames; expected one per frame")
    return video, actions.astype(np.int64)


def import_episodes(src: str, out: str, dataset: str = "imported", num_actions: int | None = None,
                    convention: str | None = None, progress: bool = True,
                    known: dict | None = None) -> StoreWriter:
    """Import every episode under `src` into the store `out`. `known` is what the dataset's generator
    knows about its released files (generators/registry.py `release`): {"action_names", "convention",
    "params"}: its action names, the files' action convention and the facts the store records. Without
    it the actions are named action_<k> and `convention` defaults to produced."""
    if known is not None:
        names = list(known["action_names"])
        if num_actions is not None and num_actions != len(names):
            raise ValueError(f"--num-actions {num_actions} contradicts {dataset}'s {len(names)} actions")
        convention = convention or known["convention"]
    else:
        names = None
        convention = convention or PRODUCED
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown action convention '{convention}': choose one of {', '.join(CONVENTIONS)}")
    files, split = find_episodes(src)
    video, first = load_episode(files[0])
    t, h, w, _ = video.shape
    if names is None:
        if num_actions is None:   # scan ids cheaply from the first episodes; later ones are checked on write
            num_actions = max(int(load_episode(f)[1].max()) for f in files[:16]) + 1
        if not 1 <= num_actions <= MAX_ACTIONS:
            raise ValueError(f"{num_actions} actions (ids 0..{num_actions - 1}, from --num-actions or the files' "
                             f"largest id) is not a discrete action space of 1..{MAX_ACTIONS}: check the files")
        names = [f"action_{k}" for k in range(num_actions)]
    # before the store exists: a first file that does not fit leaves nothing behind to block a corrected rerun
    check_actions(files[0], to_store_actions(first, convention), names, dataset)
    root = src if os.path.isdir(src) else os.path.dirname(src)
    params = {**((known or {}).get("params") or {}), "source": os.path.abspath(src),
              "action_convention_of_source": convention, "files": [os.path.relpath(f, root) for f in files]}
    if split is not None:
        params["split"] = split
    cfg = StoreConfig(dataset=dataset, episodes=len(files), length=t, height=h, width=w, action_names=names,
                      pose_names=[], backend="import", backend_version="2", seed=-1, params=params)
    writer = StoreWriter.create(out, cfg)
    done = writer.complete_mask()
    for i, f in enumerate(tqdm(files, desc="import", unit="ep", disable=not progress)):
        if done[i]:
            continue
        video, released = load_episode(f)
        if video.shape != (t, h, w, 3):
            raise StoreError(f"{f}: video {video.shape} differs from the first episode's {(t, h, w, 3)}")
        actions = to_store_actions(released, convention)
        check_actions(f, actions, names, dataset)
        writer.write_episode(i, video, actions, np.empty((t, 0), np.float32))
        writer.mark_complete(i, -1)
    return writer


def check_actions(path: str, actions: np.ndarray, names: list[str], dataset: str) -> None:
    """A StoreError naming `path` unless its converted ids are the store's: 0..K-1, -1 only at frame 0."""
    if not actions_valid(actions, len(names)):
        ok = (actions >= 0) & (actions < len(names))
        ok[0] |= actions[0] == NO_ACTION
        t = int(np.flatnonzero(~ok)[0])
        raise StoreError(f"{path}: action id {int(actions[t])} at frame {t} (after conversion) is outside "
                         f"0..{len(names) - 1} ({dataset}; -1, no action, only at frame 0)")
