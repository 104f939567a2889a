"""The real DeepMind Lab backend: the `deepmind_lab` Python module (built from github.com/deepmind/lab
with Bazel) running this package's level `teco_maze` (generators/dmlab/levels/teco_maze.lua), which
builds the paper's 9x9 mazes and publishes their layout as DEBUG.MAZE.LAYOUT.

Stock DeepMind Lab's `demos/random_maze` is not the paper's level (15x15 mazes, a goal and apples) and
never calls `debug_observations.setMaze`, so its DEBUG.MAZE.LAYOUT is empty: the goal agent cannot run
on it, and `reset` says so. The authors' fork (wilson1yan/lab) changed that level to 9x9 and to publish
the layout; `--level demos/random_maze` works with a build of that fork.

Loading the shipped level into a stock install needs no copy: `Lab('teco_maze', ..., config={
'levelDirectory': <absolute path of generators/dmlab/levels>, ...})`, as DMLab resolves a level name
against an absolute levelDirectory (engine/context.cc GetLevelPath). The level's settings (mazeSize,
openFraction) travel in the same config dict.

It follows the module's documented API (docs/users/python_api.md, python/dmlab_module.c):
`Lab(level, observations, config={'width', 'height', 'fps', ...}, renderer=...)`, `reset(seed=...)`,
`step(np.intc (7,) action, num_steps=4)`, `observations()` with RGB_INTERLEAVED, DEBUG.POS.TRANS
(x, y, z in game units), DEBUG.POS.ROT (pitch, yaw, roll in degrees) and DEBUG.MAZE.LAYOUT (the
text maze, parsed once per episode).

Determinism: for one seed DMLab rebuilds the same maze, spawn and motion (the level draws from the
seeded `random`, the engine runs at a fixed frame time), so a fixed build replays an episode
exactly. Pixels are only identical for the same DMLab build, level script and renderer: the software
(OSMesa) and hardware (EGL) renderers, GPU drivers and Mesa versions rasterise differently. The
store records "deepmind_lab-<module version>:<level>"; compare stores made on the same build.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..rollout import EpisodeDiscarded
from .maze import MazeLayout, parse_layout
from .protocol import ACTION_NAMES, DMLAB_ACTION_NAMES, MAX_LOOK_PIXELS, action_vector

OBSERVATIONS = ("RGB_INTERLEAVED", "DEBUG.POS.TRANS", "DEBUG.POS.ROT", "DEBUG.MAZE.LAYOUT")
LEVEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "levels")
DEFAULT_LEVEL = "teco_maze"
SHIPPED_LEVELS = ("teco_maze",)     # levels in LEVEL_DIR; they take the settings below


def level_path(level: str = DEFAULT_LEVEL) -> str:
    """Absolute path of a shipped level's Lua file."""
    if level not in SHIPPED_LEVELS:
        raise ValueError(f"{level!r} is not a level shipped with teco-worlds: choose one of {SHIPPED_LEVELS}")
    return os.path.join(LEVEL_DIR, level + ".lua")


@dataclass(frozen=True)
class RealConfig:
    level: str = DEFAULT_LEVEL
    resolution: int = 64
    fps: float = 30
    look_rate: int = 20
    action_repeat: int = 4
    maze_size: int = 7
    open_fraction: float = 0.15
    renderer: str = "software"      # "software" (OSMesa) or "hardware" (EGL/GLX), as deepmind_lab.Lab takes

    @classmethod
    def from_params(cls, p: dict) -> "RealConfig":
        return cls(level=str(p["level"]), resolution=int(p["resolution"]), fps=float(p["fps"]),
                   look_rate=int(p["look_rate"]), action_repeat=int(p["action_repeat"]),
                   maze_size=int(p["maze_size"]), open_fraction=float(p["open_fraction"]),
                   renderer=str(p.get("renderer", "software")))


def dmlab_seed(seed: int) -> int:
    """Our 63-bit episode seed -> the non-negative C int that Lab.reset(seed=) takes."""
    return int(seed) & 0x7FFFFFFF


# The authors' fork turns the 2D overlay off in its q3config.cfg (commit fd576d6: cg_draw2D, cg_drawCrosshair,
# cg_drawStatus, cg_drawIcons, cg_draw3dIcons 0); a stock build draws a crosshair in every frame. Set at
# start-up through the console (not `minimalUI`, which forces cg_drawCrosshairAlways 1).
HUD_OFF = " ".join(f"+set {var} 0" for var in ("cg_draw2D", "cg_drawCrosshair", "cg_drawStatus", "cg_drawIcons",
                                                "cg_draw3dIcons"))


def lab_settings(cfg: RealConfig) -> dict[str, str]:
    """The `config` dict for deepmind_lab.Lab: every value a string, as the module requires."""
    fps = int(cfg.fps) if float(cfg.fps).is_integer() else cfg.fps
    settings = {"width": str(cfg.resolution), "height": str(cfg.resolution), "fps": str(fps),
                "appendCommand": HUD_OFF}
    if cfg.level in SHIPPED_LEVELS:      # other levels reject unknown settings (setting_overrides)
        settings.update(levelDirectory=LEVEL_DIR, mazeSize=str(cfg.maze_size), openFraction=repr(cfg.open_fraction))
    return settings


def backend_version(level: str) -> str:
    """"deepmind_lab-<module version>:<level>", plus the first 12 hex digits of the Lua file's sha256 for a
    shipped level (its bytes decide the mazes)."""
    import hashlib

    import deepmind_lab
    tag = f"deepmind_lab-{deepmind_lab.version()}:{level}"
    if level in SHIPPED_LEVELS:
        with open(level_path(level), "rb") as f:
            tag += "+" + hashlib.sha256(f.read()).hexdigest()[:12]
    return tag


class DeepMindLabBackend:
    name = "deepmind_lab"

    def __init__(self, cfg: RealConfig = RealConfig()):
        import deepmind_lab

        if not 0 < cfg.look_rate <= MAX_LOOK_PIXELS:
            raise ValueError(f"look rate must be in 1..{MAX_LOOK_PIXELS} pixels per frame, got {cfg.look_rate}")
        self.cfg = cfg
        self.version = backend_version(cfg.level)
        self.env = deepmind_lab.Lab(cfg.level, list(OBSERVATIONS), config=lab_settings(cfg), renderer=cfg.renderer)
        self._check_specs()
        self.actions = [action_vector(a, cfg.look_rate) for a in range(len(ACTION_NAMES))]
        self._layout: MazeLayout | None = None

    def _check_specs(self) -> None:
        """Fail early if this build's action or observation layout is not the one the protocol assumes."""
        names = [a["name"] for a in self.env.action_spec()]
        if names[:len(DMLAB_ACTION_NAMES)] != DMLAB_ACTION_NAMES:
            raise RuntimeError(f"unexpected deepmind_lab action layout {names}")
        shapes = {o["name"]: tuple(o["shape"]) for o in self.env.observation_spec()}
        want = (self.cfg.resolution, self.cfg.resolution, 3)
        if shapes.get("RGB_INTERLEAVED") != want:
            raise RuntimeError(f"deepmind_lab RGB_INTERLEAVED is {shapes.get('RGB_INTERLEAVED')}, expected {want}")

    def _read(self) -> None:
        obs = self.env.observations()
        self._frame = np.array(obs["RGB_INTERLEAVED"], dtype=np.uint8, copy=True)      # (H, W, 3)
        trans, rot = np.asarray(obs["DEBUG.POS.TRANS"]), np.asarray(obs["DEBUG.POS.ROT"])
        self._pose = np.array([trans[0], trans[1], trans[2], rot[1]], np.float32)
        self._layout_text = obs["DEBUG.MAZE.LAYOUT"]

    def reset(self, seed: int, **episode) -> np.ndarray:
        if episode:
            raise ValueError(f"the deepmind_lab backend takes no episode arguments, got {sorted(episode)}")
        self.env.reset(seed=dmlab_seed(seed))
        self._read()
        text = self._layout_text.decode() if isinstance(self._layout_text, bytes) else str(self._layout_text)
        if not text.strip():
            raise ValueError(f"level {self.cfg.level} publishes no DEBUG.MAZE.LAYOUT (stock demos/random_maze never "
                             f"calls debug_observations.setMaze): use the shipped level {DEFAULT_LEVEL!r}")
        self._layout = parse_layout(text)     # the maze is fixed for the episode
        want = self.cfg.maze_size + 2
        if self._layout.walls.shape != (want, want):
            raise ValueError(f"level {self.cfg.level} built a {self._layout.rows}x{self._layout.cols} maze but "
                             f"maze size {self.cfg.maze_size} needs {want}x{want}")
        return self._frame.copy()

    def step(self, action: int) -> np.ndarray:
        if not 0 <= action < len(self.actions):
            raise ValueError(f"action must be in 0..{len(self.actions) - 1}, got {action}")
        if not self.env.is_running():
            raise EpisodeDiscarded("deepmind_lab episode is not running (reset first, or the level timed out)")
        self.env.step(self.actions[action], num_steps=self.cfg.action_repeat)
        if not self.env.is_running():
            raise EpisodeDiscarded(f"deepmind_lab level {self.cfg.level} ended the episode early")
        self._read()
        return self._frame.copy()

    def pose(self) -> np.ndarray:
        """float32 [x, y, z, yaw_deg] from DEBUG.POS.TRANS and DEBUG.POS.ROT."""
        return self._pose.copy()

    def layout(self) -> MazeLayout:
        if self._layout is None:
            raise RuntimeError("layout() before reset()")
        return self._layout

    def close(self) -> None:
        self.env.close()
