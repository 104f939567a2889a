"""A stand-in for DeepMind Lab's `deepmind_lab` module, for tests where the real one (a Bazel build)
cannot be installed. It keeps the documented API and the C module's argument checks and exceptions
(python/dmlab_module.c): Lab(level, observations, config, renderer, level_cache), reset, step,
observations, is_running, num_steps, fps, action_spec, observation_spec, events, close; version,
runfiles_path, set_runfiles_path.

Only `demos/random_maze` exists. Its maze follows that level's script (15x15 thick-wall depth-first
maze, 15% of interior cells opened, spawns more than 5 cells from a goal); the player turns at DMLab's
look rate and walks at 320 units/s, stopping at walls; the picture is a flat colour from the pose.
Every `step` call is appended to `Lab.calls` as (action copy, num_steps) so tests can check them.
"""
from __future__ import annotations

from collections import deque

import numpy as np

_VERSION = "1.0"
_runfiles = "."

_ACTIONS = [("LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", -512, 512), ("LOOK_DOWN_UP_PIXELS_PER_FRAME", -512, 512),
            ("STRAFE_LEFT_RIGHT", -1, 1), ("MOVE_BACK_FORWARD", -1, 1), ("FIRE", 0, 1), ("JUMP", 0, 1),
            ("CROUCH", 0, 1)]
_LEVELS = {"demos/random_maze": 180.0}       # level -> episodeLengthSeconds
_ENGINE_SETTINGS = {"width", "height", "fps", "levelDirectory", "appendCommand", "mixerSeed"}
_CELL = 100.0


def version() -> str:
    return _VERSION


def runfiles_path() -> str:
    return _runfiles


def set_runfiles_path(path: str) -> bool:
    global _runfiles
    _runfiles = str(path)
    return True


def _observation_specs(height: int, width: int) -> list[dict]:
    return [{"name": "RGB_INTERLEAVED", "shape": (height, width, 3), "dtype": np.uint8},
            {"name": "RGBD_INTERLEAVED", "shape": (height, width, 4), "dtype": np.uint8},
            {"name": "RGB", "shape": (3, height, width), "dtype": np.uint8},
            {"name": "MAP_FRAME_NUMBER", "shape": (1,), "dtype": np.float64},
            {"name": "DEBUG.POS.TRANS", "shape": (3,), "dtype": np.float64},
            {"name": "DEBUG.POS.ROT", "shape": (3,), "dtype": np.float64},
            {"name": "DEBUG.MAZE.LAYOUT", "shape": (), "dtype": str}]


def _random_maze(seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """demos/random_maze's layout for `seed`: char grid (15, 15) and its spawn cells."""
    g = np.random.RandomState(seed)
    n = 15
    open_ = np.zeros((n, n), bool)
    start = (2 * g.randint(1, n // 2 + 1) - 1, 2 * g.randint(1, n // 2 + 1) - 1)   # 0-based odd cells
    stack = [start]
    while stack:
        r, c = stack[-1]
        open_[r, c] = True
        options = [((r + dr, c + dc), (r + dr // 2, c + dc // 2)) for dr, dc in ((-2, 0), (0, -2), (2, 0), (0, 2))
                   if 0 < r + dr < n - 1 and 0 < c + dc < n - 1 and not open_[r + dr, c + dc]]
        if options:
            cell, between = options[g.randint(len(options))]
            open_[between] = True
            stack.append(cell)
        else:
            stack.pop()
    interior = np.zeros_like(open_)
    interior[1:-1, 1:-1] = True
    open_ |= interior & (g.uniform(size=(n, n)) < 0.15)
    grid = np.where(open_, " ", "*").astype("<U1")
    goal = (2 * g.randint(1, n // 2 + 1) - 1, 2 * g.randint(1, n // 2 + 1) - 1)
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            q = (r + dr, c + dc)
            if open_[q] and q not in dist:
                dist[q] = dist[(r, c)] + 1
                queue.append(q)
    spawns = [q for q, d in dist.items() if d > 5]
    for q, d in dist.items():
        grid[q] = "P" if d > 5 else ("A" if 0 < d < 5 else grid[q])
    grid[goal] = "G"
    return grid, sorted(spawns)


class Lab:
    def __init__(self, level, observations, config=None, renderer="software", level_cache=None):
        if not isinstance(level, str):
            raise TypeError("level must be str")
        if not isinstance(observations, list):
            raise TypeError("observations must be list")
        if config is not None and not isinstance(config, dict):
            raise TypeError("config must be dict")
        if renderer not in ("software", "hardware"):
            raise RuntimeError(f'Failed to set renderer must be "hardware" or "software" actual "{renderer}"!')
        self._width, self._height, self._fps = 320, 240, 60.0
        self.settings: dict[str, str] = {}
        for key, value in (config or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("config keys and values must be str")
            try:
                if key in ("width", "height"):
                    setattr(self, "_" + key, int(value, 0))
                elif key == "fps":
                    self._fps = float(value)
            except ValueError:
                raise RuntimeError(f"Failed to apply setting '{key} = {value}' - \"Invalid setting {value}\"") from None
            if key not in _ENGINE_SETTINGS:
                self.settings[key] = value          # handed to the level's api:init
        if level not in _LEVELS:
            raise RuntimeError(f"Failed to init environment - \"Could not find level '{level}'\"")
        specs = _observation_specs(self._height, self._width)
        known = {s["name"] for s in specs}
        for name in observations:
            if name not in known:
                raise ValueError(f"Unknown observation '{name}'.")
        self._level, self._observations = level, list(observations)
        self._status = "uninitialized"
        self._episode = 0
        self._steps = 0
        self.calls: list[tuple[np.ndarray, int]] = []

    # -- episode control --
    def reset(self, episode=-1, seed=None):
        self._check_open()
        if episode >= 0:
            self._episode = episode
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        elif not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"'seed' must be int or None, was '{type(seed).__name__}'.")
        if not -2**31 <= int(seed) < 2**31:
            raise OverflowError("signed integer is greater than maximum")
        seed = int(seed) + 2**31 if seed < 0 else int(seed)   # dmlab_start: a non-negative seed
        self._grid, spawns = _random_maze(seed)
        r, c = spawns[np.random.RandomState(seed + 1).randint(len(spawns))]
        self._pos = np.array([(c + 0.5) * _CELL, (15 - r - 0.5) * _CELL, 24.03125])
        self._yaw = 0.0
        self._steps = 0
        self._episode += 1
        self._status = "running"
        return True

    def num_steps(self) -> int:
        return self._steps

    def is_running(self) -> bool:
        return self._status == "running"

    def step(self, action, num_steps=1):
        if not isinstance(action, np.ndarray):
            raise TypeError("argument 1 must be numpy.ndarray")
        if not isinstance(num_steps, int):
            raise TypeError("an integer is required")
        if not self.is_running():
            raise RuntimeError("Environment in wrong status to advance.")
        if action.ndim != 1 or action.shape[0] != len(_ACTIONS):
            raise ValueError(f"action must have shape ({len(_ACTIONS)})")
        if action.dtype != np.intc:
            raise ValueError("action must have dtype np.intc")
        self.calls.append((action.copy(), num_steps))
        msec = int(0.96 * 1000.0 / self._fps + 0.5)
        rate = float(np.float32(-int(action[0]) * 0.11 * 60 / 1000))
        for _ in range(num_steps):
            self._yaw = (self._yaw + rate * msec + 180.0) % 360.0 - 180.0
            fwd = int(action[3])
            if fwd:
                a = np.radians(self._yaw)
                new = self._pos[:2] + fwd * 320.0 * msec / 1000.0 * np.array([np.cos(a), np.sin(a)])
                r, c = 14 - int(new[1] // _CELL), int(new[0] // _CELL)
                if self._grid[r, c] != "*":
                    self._pos[:2] = new
            self._steps += 1
            if self._steps * msec / 960.0 >= _LEVELS[self._level]:
                self._status = "terminated"
                break
        return 0.0

    # -- observations --
    def observations(self):
        if not self.is_running():
            raise RuntimeError("Environment in wrong status for call to observations()")
        out = {}
        for name in self._observations:
            if name == "RGB_INTERLEAVED":
                img = np.empty((self._height, self._width, 3), np.uint8)
                img[...] = (int(self._pos[0]) % 256, int(self._pos[1]) % 256, int(self._yaw + 180) % 256)
                out[name] = img
            elif name == "RGBD_INTERLEAVED":
                out[name] = np.zeros((self._height, self._width, 4), np.uint8)
            elif name == "RGB":
                out[name] = np.zeros((3, self._height, self._width), np.uint8)
            elif name == "MAP_FRAME_NUMBER":
                out[name] = np.array([float(self._steps)])
            elif name == "DEBUG.POS.TRANS":
                out[name] = self._pos.copy()
            elif name == "DEBUG.POS.ROT":
                out[name] = np.array([0.0, self._yaw, 0.0])
            elif name == "DEBUG.MAZE.LAYOUT":
                out[name] = "\n".join("".join(row) for row in self._grid) + "\n"
        return out

    def observation_spec(self):
        return _observation_specs(self._height, self._width)

    def action_spec(self):
        return [{"min": lo, "max": hi, "name": name} for name, lo, hi in _ACTIONS]

    def fps(self) -> int:
        return int(self._fps)

    def events(self):
        if self._status not in ("running", "terminated"):
            raise RuntimeError("Environment in wrong status for call to events()")
        return []

    def close(self) -> bool:
        if self._status == "closed":
            return False
        self._status = "closed"
        return True

    def _check_open(self) -> None:
        if self._status == "closed":
            raise RuntimeError("Failed to start environment - \"environment is closed\"")
