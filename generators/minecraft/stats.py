"""Walk statistics of the Minecraft protocol on the embedded world (no store, tiny frames: the physics
and the policy do not depend on the resolution).

    python -m generators.minecraft.stats [--episodes 8] [--seed 0] [gen-minecraft flags, e.g. --sea-level 63]

Per episode of the default 301 frames: share of each executed action, share of steps whose step moves
the player horizontally (> 1 mm), share of forward steps blocked, distinct blocks (x, z) visited, path
length and net displacement in blocks, share of frames within 3 blocks of a place seen >= 50 frames
earlier (revisits), share of frames standing in water. The last line is JSON (means and per episode).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from . import protocol as P
from . import world as W

REVISIT_BLOCKS, REVISIT_GAP = 3.0, 50


def episode_stats(ep, in_water: np.ndarray) -> dict:
    """Statistics of one Episode (actions[t] produced frame t; pose rows x, y, z, yaw, pitch)."""
    a = ep.actions[1:]
    xz = ep.pose[:, [0, 2]].astype(np.float64)
    step = np.hypot(*(xz[1:] - xz[:-1]).T)
    moved = step > 1e-3
    fwd = a == P.FORWARD
    d = np.hypot(*(xz[:, None] - xz[None]).transpose(2, 0, 1))
    t = np.arange(len(xz))
    old = t[None, :] <= t[:, None] - REVISIT_GAP
    revisit = ((d < REVISIT_BLOCKS) & old).any(axis=1)
    return {
        "share_" + P.ACTION_NAMES[k]: float((a == k).mean()) for k in (P.FORWARD, P.LEFT, P.RIGHT)
    } | {
        "share_steps_moving": float(moved.mean()),
        "share_forward_blocked": float((~moved[fwd]).mean()) if fwd.any() else 0.0,
        "distinct_blocks": int(len({(math.floor(x), math.floor(z)) for x, z in xz})),
        "path_length": float(step.sum()),
        "net_displacement": float(np.hypot(*(xz[-1] - xz[0]))),
        "revisit_fraction": float(revisit.mean()),
        "share_frames_in_water": float(in_water.mean()),
        "longest_forward_run": int(max((len(r) for r in "".join("f" if x else "." for x in fwd).split(".")), default=0)),
    }


class _WaterLog:
    """Wraps the embedded backend to record whether the player stands in water at every frame."""

    def __init__(self, backend):
        self.b, self.log = backend, []
        self.name, self.version, self.done = backend.name, backend.version, False

    def reset(self, seed, **kw):
        obs = self.b.reset(seed, **kw)
        self.log = [self._wet()]
        return obs

    def step(self, action):
        obs = self.b.step(action)
        self.log.append(self._wet())
        return obs

    def _wet(self) -> bool:
        p = self.b.player
        return self.b.view.get(math.floor(p.x), math.floor(p.y), math.floor(p.z)) == W.WATER

    def pose(self):
        return self.b.pose()

    def layout(self):
        return None

    def close(self):
        self.b.close()


def main(argv: list[str] | None = None) -> int:
    from .embedded import EmbeddedMinecraft
    from .spec import SPEC
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    SPEC.add_args(ap)
    args = ap.parse_args(argv)
    params = SPEC.params(args)
    SPEC.validate(params, "embedded")
    b = _WaterLog(EmbeddedMinecraft(8, 8, turn_degrees=params["turn_degrees"], sea_level=params["sea_level"],
                                    turn_jump=params["turn_jump"]))
    rows = []
    for i in range(args.episodes):
        ep = SPEC.episode(b, i, args.seed, params)
        rows.append(episode_stats(ep, np.array(b.log)))
        print(f"episode {i}: " + ", ".join(f"{k} {v:.3g}" for k, v in rows[-1].items()), file=sys.stderr)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    rng = {k: [float(np.min([r[k] for r in rows])), float(np.max([r[k] for r in rows]))] for k in rows[0]}
    print(json.dumps({"episodes": args.episodes, "length": params["length"], "sea_level": params["sea_level"],
                      "turn_jump": params["turn_jump"], "max_consec_forward": params["max_consec_forward"],
                      "mean": mean, "min_max": rng}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
