"""Revisit consistency: when the agent comes back to a place it saw in the conditioning frames, does
the model draw what it saw?

Stores record pose[..., :4] = x, y, z, yaw (degrees). A predicted frame is a *revisit* when some
conditioning frame lies within `radius` (Euclidean over x, y, z, in the store's pose units) and within
`yaw_tol` degrees of heading (wrap-around aware); otherwise it is *novel*.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .metrics import finite_mean, psnr, ssim

def tolerances(store_params: dict, radius: float | None = None, yaw_tol: float | None = None) -> tuple[float, float]:
    """The store's recorded defaults (params["revisit"], written by the dataset's generator), each
    overridable; a store that records none needs both given explicitly."""
    recorded = store_params.get("revisit") or {}
    if (radius is None and "radius" not in recorded) or (yaw_tol is None and "yaw" not in recorded):
        raise ValueError("the store records no revisit tolerances (params['revisit']): "
                         "give --revisit-radius and --revisit-yaw")
    radius = float(recorded["radius"] if radius is None else radius)
    yaw_tol = float(recorded["yaw"] if yaw_tol is None else yaw_tol)
    if not radius > 0 or not 0 <= yaw_tol <= 180:
        raise ValueError(f"revisit radius must be > 0 and yaw tolerance in [0, 180], got {radius}, {yaw_tol}")
    return radius, yaw_tol


def yaw_difference(a, b) -> np.ndarray:
    """Absolute heading difference in degrees, in [0, 180] (359 vs 1 -> 2)."""
    d = np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64) + 180.0, 360.0) - 180.0
    return np.abs(d)


def match_revisits(cond_pose: np.ndarray, pred_pose: np.ndarray, radius: float, yaw_tol: float) -> np.ndarray:
    """For each predicted frame, the conditioning frame it revisits, or -1.

    cond_pose (C, P), pred_pose (L, P) with P >= 4 -> (L,) int64. Among several matches the closest in
    position wins (ties: the latest conditioning frame, the freshest memory). NaN poses never match.
    """
    cond_pose, pred_pose = np.asarray(cond_pose, np.float64), np.asarray(pred_pose, np.float64)
    if cond_pose.ndim != 2 or pred_pose.ndim != 2 or min(cond_pose.shape[1], pred_pose.shape[1]) < 4:
        raise ValueError(f"poses must be (frames, P >= 4) with x, y, z, yaw first, got {cond_pose.shape} and {pred_pose.shape}")
    dist = np.linalg.norm(pred_pose[:, None, :3] - cond_pose[None, :, :3], axis=-1)   # (L, C)
    dyaw = yaw_difference(pred_pose[:, None, 3], cond_pose[None, :, 3])                # (L, C)
    ok = (dist <= radius) & (dyaw <= yaw_tol)       # NaN compares False
    dist = np.where(ok, dist, np.inf)
    # argmin over the reversed axis picks the latest of equally close frames
    best = cond_pose.shape[0] - 1 - np.argmin(dist[:, ::-1], axis=1)
    return np.where(ok.any(axis=1), best, -1).astype(np.int64)


@dataclass
class RevisitStats:
    """Accumulates per-frame scores over a run; `summary()` gives the figures for metrics.json."""
    revisit: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {
        "psnr_vs_truth": [], "ssim_vs_truth": [], "psnr_vs_earlier": [], "ssim_vs_earlier": [],
        "truth_psnr_vs_earlier": [], "truth_ssim_vs_earlier": []})
    novel: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {"psnr_vs_truth": [], "ssim_vs_truth": []})
    examples: int = 0

    def add(self, pred, truth, cond_video, matches: np.ndarray, psnr_pt: torch.Tensor | None = None,
            ssim_pt: torch.Tensor | None = None, device=None) -> None:
        """One example: pred/truth uint8 (L, H, W, 3), cond_video (C, H, W, 3), matches (L,) from
        match_revisits. psnr_pt/ssim_pt (L,) are the prediction-vs-truth scores if already computed."""
        matches = np.asarray(matches)
        pred, truth = torch.as_tensor(pred), torch.as_tensor(truth)
        psnr_pt = psnr(pred, truth, device).cpu() if psnr_pt is None else psnr_pt.cpu()
        ssim_pt = ssim(pred, truth, device).cpu() if ssim_pt is None else ssim_pt.cpu()
        rev = torch.as_tensor(np.flatnonzero(matches >= 0))
        nov = torch.as_tensor(np.flatnonzero(matches < 0))
        self.novel["psnr_vs_truth"].append(psnr_pt[nov])
        self.novel["ssim_vs_truth"].append(ssim_pt[nov])
        self.revisit["psnr_vs_truth"].append(psnr_pt[rev])
        self.revisit["ssim_vs_truth"].append(ssim_pt[rev])
        if len(rev):
            earlier = torch.as_tensor(cond_video)[torch.as_tensor(matches[rev.numpy()])]
            self.revisit["psnr_vs_earlier"].append(psnr(pred[rev], earlier, device).cpu())
            self.revisit["ssim_vs_earlier"].append(ssim(pred[rev], earlier, device).cpu())
            # the same comparison for the real frames: how alike a true revisit looks (the ceiling)
            self.revisit["truth_psnr_vs_earlier"].append(psnr(truth[rev], earlier, device).cpu())
            self.revisit["truth_ssim_vs_earlier"].append(ssim(truth[rev], earlier, device).cpu())
        self.examples += 1

    def summary(self) -> dict:
        def mean(d):
            return {k: (finite_mean(torch.cat(v)) if v and sum(x.numel() for x in v) else None) for k, v in d.items()}
        n_rev = sum(int(x.numel()) for x in self.revisit["psnr_vs_truth"])
        n_nov = sum(int(x.numel()) for x in self.novel["psnr_vs_truth"])
        return {"examples": self.examples, "revisited_frames": n_rev, "novel_frames": n_nov,
                "revisited": mean(self.revisit), "novel": mean(self.novel)}


# -- revisits across one whole window (conditioning and predicted frames alike) ------------------------

def last_seen_gaps(pose: np.ndarray, radius: float, yaw_tol: float, after_leaving: bool = False) -> np.ndarray:
    """For each frame t of one episode window, how many frames ago its place (position within `radius`,
    heading within `yaw_tol`) was last seen: t - s for the latest s < t that matches, -1 if none.

    pose (T, P >= 4) -> (T,) int64. after_leaving=False counts any earlier matching frame, so a frame
    whose place is still in view one step earlier has gap 1: the figure that decides whether a model
    with a k-frame context can see the place (gap <= k). after_leaving=True skips the current stay
    (the unbroken run of matching frames just before t) and measures the gap to the visit before it:
    the figure for "the agent left and came back".
    """
    pose = np.asarray(pose, np.float64)
    if pose.ndim != 2 or pose.shape[1] < 4:
        raise ValueError(f"pose must be (frames, P >= 4) with x, y, z, yaw first, got {pose.shape}")
    T = pose.shape[0]
    dist = np.linalg.norm(pose[:, None, :3] - pose[None, :, :3], axis=-1)
    ok = (dist <= radius) & (yaw_difference(pose[:, None, 3], pose[None, :, 3]) <= yaw_tol)   # (T, T)
    gaps = np.full(T, -1, np.int64)
    for t in range(1, T):
        row = ok[t, :t]
        if after_leaving:
            broken = np.flatnonzero(~row)             # frames that do not show the place
            if not len(broken):
                continue                              # in view the whole time: never left
            row = row[:broken[-1]]                    # before the latest frame away from it
        hits = np.flatnonzero(row)
        if len(hits):
            gaps[t] = t - hits[-1]
    return gaps


def gap_cohorts(gaps: np.ndarray, short: int, long: int | None) -> dict[str, np.ndarray]:
    """bool masks of the frames by when their place was last seen (gaps from last_seen_gaps):
    "memory": more than `short` frames ago (outside a short model's context) but at most `long` ago (inside
    the long model's; None = any distance; long <= short leaves it empty); "recent": 1..short frames ago;
    "novel": never before."""
    gaps = np.asarray(gaps)
    if short < 0:
        raise ValueError(f"the short context must be >= 0, got {short}")
    memory = (gaps > short) & ((gaps <= long) if long is not None else True)
    return {"memory": memory, "recent": (gaps >= 1) & (gaps <= short), "novel": gaps < 0}


def revisit_signal(poses, radius: float, yaw_tol: float, bins=((1, 16), (17, 144), (145, None))) -> dict:
    """How much revisit signal a set of episodes holds: per gap bin (lo, hi inclusive; hi None = no
    bound), the fraction of all frames whose place was last seen that many frames earlier, for both
    definitions of last_seen_gaps ("any": latest earlier view; "after_leaving": the previous visit)."""
    out = {"episodes": len(poses), "frames": int(sum(len(p) for p in poses)), "radius": radius,
           "yaw_tolerance": yaw_tol}
    for name, leave in (("any", False), ("after_leaving", True)):
        g = np.concatenate([last_seen_gaps(p, radius, yaw_tol, leave) for p in poses])
        out[name] = {f"{lo}-{hi if hi is not None else 'inf'}":
                     float(((g >= lo) & ((g <= hi) if hi is not None else True)).mean()) for lo, hi in bins}
        out[name]["never_seen"] = float((g < 0).mean())
    return out
