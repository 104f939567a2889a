"""The pip-only DMLab backend: the paper's level rules (maze.draw_world) dressed in DMLab's textures (from
labmaze) and generated posters, DMLab's player motion, rendered headless on the CPU by the column raycaster.
One instance serves many episodes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..seeds import rng
from .maze import MazeLayout, draw_world
from .physics import X, Y, YAW, box_clear, player_step, solid_grid, state_yaw
from .protocol import ACTION_TABLE, ORIGIN_Z, engine_frame_msec, yaw_rate
from .render import Camera, render
from .textures import DECAL_FREQUENCY, SKIES, PosterSet, poster_set, sky_faces, texture_set

# Bump when the bytes of an episode change (renderer, physics, maze or texture draws).
EMBEDDED_VERSION = "3"   # 3: uniform spawn heading (was east)
SPAWN_ANGLE_STEPS = 32768   # Quake III random(): (rand() & 0x7fff) / 0x8000


@dataclass(frozen=True)
class EmbeddedConfig:
    resolution: int = 64
    maze_size: int = 7            # interior cells per side; the grid adds a one-cell outer wall
    open_fraction: float = 0.15   # extra interior cells opened, as DMLab's random_maze does
    fps: float = 30
    look_rate: int = 20           # LOOK_LEFT_RIGHT_PIXELS_PER_FRAME of the look actions
    action_repeat: int = 4        # engine frames per recorded step
    poster_frequency: float = DECAL_FREQUENCY    # share of wall faces with a poster

    @classmethod
    def from_params(cls, p: dict) -> "EmbeddedConfig":
        return cls(resolution=int(p["resolution"]), maze_size=int(p["maze_size"]),
                   open_fraction=float(p["open_fraction"]), fps=float(p["fps"]),
                   look_rate=int(p["look_rate"]), action_repeat=int(p["action_repeat"]),
                   poster_frequency=float(p.get("poster_frequency", DECAL_FREQUENCY)))


def quadrant_groups(layout: MazeLayout) -> np.ndarray:
    """int (rows, cols) texture group 0..3 by maze quadrant, as random_maze sets DMLab variations."""
    r = np.arange(layout.rows)[:, None] + 1 > layout.rows / 2
    c = np.arange(layout.cols)[None, :] + 1 > layout.cols / 2
    return (r.astype(np.int64) + 2 * c.astype(np.int64))


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, cfg: EmbeddedConfig = EmbeddedConfig()):
        self.cfg = cfg
        self.textures = texture_set()
        self.camera = Camera.make(cfg.resolution, cfg.resolution, len(self.textures.sizes))
        self.msec = engine_frame_msec(cfg.fps)
        # per action: (yaw rate deg/ms, forward)
        self.moves = [(yaw_rate(look * cfg.look_rate), fwd) for look, fwd in ACTION_TABLE]
        self.frame = np.zeros((cfg.resolution, cfg.resolution, 3), np.uint8)
        self.state = np.zeros(5)
        self._layout: MazeLayout | None = None
        self.posters: PosterSet | None = None
        self.redraws = 0

    def reset(self, seed: int, **episode) -> np.ndarray:
        if episode:
            raise ValueError(f"the embedded DMLab backend takes no episode arguments, got {sorted(episode)}")
        # Maze and spawn by the level's rules; a world that cannot host an episode is redrawn from the same seed.
        self._layout, (r, c), self.redraws = draw_world(seed, self.cfg.maze_size, self.cfg.open_fraction)
        self.solid = solid_grid(self._layout)
        self.posters = poster_set(self.solid, rng(seed, "posters"), self.cfg.poster_frequency)
        # Texture groups: group 0 takes DMLab's first wall/floor texture, the others a random one.
        g = rng(seed, "textures")
        nw = self.textures.n_walls
        nf = self.textures.texels.shape[0] - nw
        walls = np.concatenate([[0], g.integers(0, nw, 3)])
        floors = nw + np.concatenate([[0], g.integers(0, nf, 3)])
        self.sky = sky_faces(SKIES[int(g.integers(len(SKIES)))])
        groups = quadrant_groups(self._layout)[::-1, :].T            # world-axis (cols, rows) like solid
        self.wall_tex = np.ascontiguousarray(walls[groups])
        self.floor_tex = np.ascontiguousarray(floors[groups])
        # Spawn at the cell's centre with a uniform heading: a text-level 'P' has no angle and the level sets
        # no randomAngleRange, so the engine's default 360 applies: yaw = random() * 360, Quake's random()
        # being a multiple of 1/32768 (g_client.c SelectRandomSpawnPoint)
        x, y = self._layout.centre(r, c)
        yaw = float(rng(seed, "heading").integers(SPAWN_ANGLE_STEPS)) * 360.0 / SPAWN_ANGLE_STEPS
        self.state[:] = (x, y, 0.0, 0.0, yaw)
        return self._render()

    def _render(self) -> np.ndarray:
        render(self.frame, self.state[X], self.state[Y], state_yaw(self.state[YAW]), self.solid,
               self.wall_tex, self.floor_tex, self.textures, self.sky, self.camera, self.posters)
        return self.frame.copy()

    def step(self, action: int) -> np.ndarray:
        if self._layout is None:
            raise RuntimeError("step() before reset()")
        if not 0 <= action < len(self.moves):
            raise ValueError(f"action must be in 0..{len(self.moves) - 1}, got {action}")
        rate, fwd = self.moves[action]
        player_step(self.state, self.solid, rate, fwd, self.cfg.action_repeat, self.msec)
        return self._render()

    def pose(self) -> np.ndarray:
        """float32 [x, y, z, yaw_deg]: DMLab's DEBUG.POS.TRANS and the yaw of DEBUG.POS.ROT."""
        return np.array([self.state[X], self.state[Y], ORIGIN_Z, state_yaw(self.state[YAW])], np.float32)

    def layout(self) -> MazeLayout:
        if self._layout is None:
            raise RuntimeError("layout() before reset()")
        return self._layout

    def in_free_space(self) -> bool:
        """The player box overlaps no wall (collision invariant, for tests)."""
        return bool(box_clear(self.solid, self.state[X], self.state[Y]))

    def close(self) -> None:
        self._layout = None
