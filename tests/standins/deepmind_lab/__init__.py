"""A stand-in for DeepMind Lab's `deepmind_lab` module, for tests where the real one (a Bazel build)
cannot be installed. It keeps the documented API and the C module's argument checks and exceptions
(python/dmlab_module.c): Lab(level, observations, config, renderer, level_cache), reset, step,
observations, is_running, num_steps, fps, action_spec, observation_spec, events, close; version,
runfiles_path, set_runfiles_path.

Levels behave as in a stock install:
  * `demos/random_maze` is stock DMLab's level: a 15x15 thick-wall depth-first maze, 15% of interior cells
    opened, a goal 'G', apples 'A' within 5 cells of it and spawns 'P' more than 5 cells away. It never calls
    `debug_observations.setMaze`, so DEBUG.MAZE.LAYOUT is the empty string; it rejects settings it does not
    know (setting_overrides: "Invalid setting").
  * Any other level is a Lua file found as DMLab's Context::GetLevelPath finds it (a name ending in .lua is a
    path; else `<levelDirectory>/<name>.lua` for an absolute levelDirectory). It is run for real with lupa
    (Lua 5.1) against small Lua models of the DMLab modules it requires (maze_generation{entity=...},
    common.random, common.make_map, decorators.debug_observations/custom_observations/setting_overrides);
    DEBUG.MAZE.LAYOUT is whatever the level published with debug_observations.setMaze, '' otherwise.
The player turns at DMLab's look rate and walks at 320 units/s, stopping at walls; it spawns at a 'P' cell
facing east; the picture is a flat colour from the pose. Every `step` call is appended to `Lab.calls` as
(action copy, num_steps) so tests can check them.
"""
from __future__ import annotations

import os
from collections import deque

import numpy as np

_VERSION = "1.0"
_runfiles = "."

_ACTIONS = [("LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", -512, 512), ("LOOK_DOWN_UP_PIXELS_PER_FRAME", -512, 512),
            ("STRAFE_LEFT_RIGHT", -1, 1), ("MOVE_BACK_FORWARD", -1, 1), ("FIRE", 0, 1), ("JUMP", 0, 1),
            ("CROUCH", 0, 1)]
_LEVELS = {"demos/random_maze": 180.0}       # stock levels modelled in Python -> episodeLengthSeconds
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


def _level_path(level: str, level_directory: str) -> str | None:
    """Context::GetLevelPath for the cases a stand-in can resolve (no runfiles tree here)."""
    if level.endswith(".lua"):
        return level
    if level_directory.startswith("/"):
        return os.path.join(level_directory, level + ".lua")
    return None


# Lua models of the DMLab modules a level may require; `py` carries the Python side.
_LUA_MODULES = r"""
local py = ...
package.preload['common.random'] = function()
  local r = {}
  function r:seed(s) py.seed(s) end
  function r:uniformInt(a, b) return py.uniform_int(a, b) end
  function r:uniformReal(a, b) return py.uniform_real(a, b) end
  return r
end
package.preload['dmlab.system.maze_generation'] = function()
  local M = {}
  function M.mazeGeneration(kw)
    assert(kw.entity, 'stand-in models only mazeGeneration{entity = ...}')
    local maze = {_entity = kw.entity, _variations = kw.variations or ''}
    function maze:entityLayer() return self._entity end
    function maze:variationsLayer() return self._variations end
    function maze:size()
      local h, w = 0, 0
      for line in self._entity:gmatch('[^\n]+') do h = h + 1; w = math.max(w, #line) end
      return h, w
    end
    return maze
  end
  return M
end
package.preload['common.make_map'] = function()
  return {makeMap = function(kw)
    assert(kw.mapName and kw.mapEntityLayer, 'makeMap needs mapName and mapEntityLayer')
    py.make_map(kw.mapEntityLayer)
    return kw.mapName
  end}
end
package.preload['decorators.debug_observations'] = function()
  return {setMaze = function(maze) py.set_maze(maze:entityLayer()) end}
end
package.preload['decorators.custom_observations'] = function()
  return {decorate = function(api) end}
end
package.preload['decorators.setting_overrides'] = function()
  local whitelist = {episodeLengthSeconds = true, logLevel = true, randomSeed = true}
  return {decorate = function(kw)
    local api, params = kw.api, kw.apiParams
    py.set_params(params)
    function api:init(settings)
      for k, v in pairs(settings) do
        if params[k] ~= nil then
          params[k] = tonumber(v) or v
        elseif not whitelist[k] then
          error('Invalid setting: "' .. k .. '" = "' .. v .. '"')
        end
      end
    end
  end}
end
"""


class _LuaLevel:
    """A level script run with lupa against the module models above."""

    def __init__(self, path: str, settings: dict[str, str]):
        try:
            from lupa import lua51
        except ImportError:
            raise RuntimeError("Failed to init environment - \"the stand-in runs Lua levels with lupa "
                               "(pip install lupa)\"") from None
        self._rng = np.random.RandomState(0)
        self._map = self._maze = None
        self._params = None
        lua = lua51.LuaRuntime(unpack_returned_tuples=True)
        py = lua.table_from({"seed": self._seed, "uniform_int": self._uniform_int, "uniform_real": self._uniform_real,
                             "make_map": self._make_map, "set_maze": self._set_maze, "set_params": self._set_params})
        lua.execute(_LUA_MODULES, py)
        with open(path) as f:
            source = f.read()
        try:
            self._api = lua.execute(source)
            if self._api.init is not None:
                self._api.init(self._api, lua.table_from(settings))
        except Exception as e:  # lupa.LuaError: the engine reports level errors at init
            raise RuntimeError(f"Failed to init environment - \"{e}\"") from None

    def _seed(self, s):
        self._rng = np.random.RandomState(int(s) % 2**32)

    def _uniform_int(self, a, b):
        a, b = int(a), int(b)
        if a > b:
            raise ValueError(f"uniformInt({a}, {b})")
        return int(self._rng.randint(a, b + 1))

    def _uniform_real(self, a, b):
        return float(self._rng.uniform(float(a), float(b)))

    def _make_map(self, entity):
        self._map = str(entity)

    def _set_maze(self, entity):
        self._maze = str(entity)

    def _set_params(self, params):
        self._params = params

    def episode_length(self) -> float:
        value = self._params["episodeLengthSeconds"] if self._params is not None else None
        return float(value) if value is not None else float("inf")

    def start(self, episode: int, seed: int) -> tuple[np.ndarray, str]:
        """Run api:start; the built map as a char grid and the published layout ('' if none)."""
        self._map = self._maze = None
        try:
            self._api.start(self._api, episode, seed)
        except Exception as e:
            raise RuntimeError(f"Failed to start environment - \"{e}\"") from None
        if self._map is None:
            raise RuntimeError("Failed to start environment - \"the level built no map\"")
        lines = [line for line in self._map.split("\n") if line]
        width = max(len(line) for line in lines)
        grid = np.array([list(line.ljust(width, "*")) for line in lines], dtype="<U1")
        return grid, self._maze or ""


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
        self._lua = None
        self._length = _LEVELS.get(level)
        if level in _LEVELS:
            for key, value in self.settings.items():     # stock levels: setting_overrides without extras
                raise RuntimeError(f"Failed to init environment - \"Invalid setting: \"{key}\" = \"{value}\"\"")
        else:
            path = _level_path(level, (config or {}).get("levelDirectory", ""))
            if path is None or not os.path.isfile(path):
                raise RuntimeError(f"Failed to init environment - \"Could not find level '{level}'\"")
            self._lua = _LuaLevel(path, self.settings)
            self._length = self._lua.episode_length()
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
        if self._lua is None:
            self._grid, spawns = _random_maze(seed)
            self._layout_text = ""                  # stock random_maze never calls setMaze
        else:
            self._grid, self._layout_text = self._lua.start(self._episode, seed)
            spawns = [tuple(int(v) for v in rc) for rc in np.argwhere(self._grid == "P")]
            if not spawns:
                raise RuntimeError("Failed to start environment - \"the level placed no spawn point\"")
        r, c = spawns[np.random.RandomState(seed + 1).randint(len(spawns))]
        rows = self._grid.shape[0]
        self._pos = np.array([(c + 0.5) * _CELL, (rows - r - 0.5) * _CELL, 24.03125])
        # the engine's default randomAngleRange 360: a uniform heading, random() in steps of 1/32768
        self._yaw = np.random.RandomState(seed + 2).randint(32768) * 360.0 / 32768 - 180.0
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
                r, c = self._grid.shape[0] - 1 - int(new[1] // _CELL), int(new[0] // _CELL)
                if self._grid[r, c] != "*":
                    self._pos[:2] = new
            self._steps += 1
            if self._steps * msec / 960.0 >= self._length:
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
                out[name] = self._layout_text
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
