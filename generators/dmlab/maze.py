"""Maze grids as DeepMind Lab sees them: text layouts, world coordinates, BFS goal paths.

DMLab text mazes (and `DEBUG.MAZE.LAYOUT`) are one character per 100-unit cell, '*' a wall, line 0
the northern edge. World coordinates follow DMLab's map translation (translate_text_level.cc):
cell (row, col) spans x in [col, col+1) * 100 and y in [rows-row-1, rows-row) * 100, so +x is east
and +y is north.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

CELL_SIZE = 100.0        # DMLab world units per maze cell (TextLevelSettings.cell_size)
WALL_CHAR = "*"

# Neighbour order of the paper's BFS (x-1, y-1, y+1, x+1 in its (col, row) indexing); it decides
# which shortest path is walked when several exist.
_NEIGHBOURS = ((0, -1), (-1, 0), (1, 0), (0, 1))   # (drow, dcol)


@dataclass(frozen=True)
class MazeLayout:
    """A maze grid; what the goal agent needs from either backend."""
    walls: np.ndarray    # bool (rows, cols), row 0 = first text line (north)

    @property
    def rows(self) -> int:
        return int(self.walls.shape[0])

    @property
    def cols(self) -> int:
        return int(self.walls.shape[1])

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the cell containing world point (x, y)."""
        col = int(np.floor(x / CELL_SIZE))
        row = self.rows - 1 - int(np.floor(y / CELL_SIZE))
        return row, col

    def centre(self, row: int, col: int) -> tuple[float, float]:
        """World (x, y) of a cell's centre: the goal agent's landmarks."""
        return (col + 0.5) * CELL_SIZE, (self.rows - row - 0.5) * CELL_SIZE

    def is_open(self, row: int, col: int) -> bool:
        return 0 <= row < self.rows and 0 <= col < self.cols and not self.walls[row, col]

    def open_cells(self) -> np.ndarray:
        """int (K, 2) of (row, col), in row-major order."""
        return np.argwhere(~self.walls)

    def text(self) -> str:
        return "\n".join("".join(WALL_CHAR if w else " " for w in line) for line in self.walls) + "\n"


def parse_layout(text: str) -> MazeLayout:
    """A DMLab entity layer (e.g. `DEBUG.MAZE.LAYOUT`) -> MazeLayout. Every character other than '*'
    (spawns 'P', apples 'A', goals 'G', ...) is floor; ragged lines are padded with walls."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    lines = str(text).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ValueError("empty maze layout")
    width = max(len(line) for line in lines)
    walls = np.ones((len(lines), width), bool)
    for r, line in enumerate(lines):
        walls[r, :len(line)] = [c == WALL_CHAR for c in line]
    if walls.all():
        raise ValueError("maze layout has no open cell")
    return MazeLayout(walls)


def generate_layout(seed: int, size: int, open_fraction: float) -> MazeLayout:
    """A labmaze perfect maze of `size` x `size` interior cells inside a one-cell outer wall, then each
    interior cell opened with probability `open_fraction`, as DMLab's demos/random_maze does (it opens
    15% to create loops). `seed` drives labmaze and the opening draws."""
    import labmaze

    if size < 3 or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= 3 (labmaze needs an odd grid), got {size}")
    g = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, 1]))
    # One 1x1 "room" keeps labmaze from carving big rooms: the result is a corridor maze with thick
    # walls like DMLab's depth-first random_maze.
    maze = labmaze.RandomMaze(height=size + 2, width=size + 2, max_rooms=1, room_min_size=1, room_max_size=1,
                              simplify=False, spawns_per_room=0, objects_per_room=0,
                              random_seed=int(g.integers(0, 2**31 - 1)))
    walls = parse_layout(str(maze.entity_layer)).walls
    if walls.shape != (size + 2, size + 2):
        raise RuntimeError(f"labmaze returned a {walls.shape} grid for size {size}")
    opened = g.random(walls.shape) < open_fraction
    interior = np.zeros_like(walls)
    interior[1:-1, 1:-1] = True
    walls &= ~(opened & interior)
    return MazeLayout(walls)


def bfs_distances(layout: MazeLayout, start: tuple[int, int]) -> np.ndarray:
    """int (rows, cols) steps from `start` over 4-connected open cells; -1 where unreachable or wall."""
    dist = np.full(layout.walls.shape, -1, np.int64)
    if not layout.is_open(*start):
        raise ValueError(f"start cell {start} is a wall")
    dist[start] = 0
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in _NEIGHBOURS:
            n = (r + dr, c + dc)
            if layout.is_open(*n) and dist[n] < 0:
                dist[n] = dist[r, c] + 1
                queue.append(n)
    return dist


def round_trip(layout: MazeLayout, start: tuple[int, int], goal_dist: int,
               rng: np.random.Generator) -> list[tuple[int, int]]:
    """Cells to walk from `start` to a random goal `goal_dist` BFS steps away and back to `start`
    (start itself excluded at the front, included at the end). Where no cell is that far, the goal
    is drawn among the farthest reachable cells."""
    if goal_dist < 1:
        raise ValueError(f"goal distance must be >= 1, got {goal_dist}")
    dist = bfs_distances(layout, start)
    d = min(goal_dist, int(dist.max()))
    if d < 1:
        raise ValueError(f"start cell {start} has no reachable neighbour")
    candidates = np.argwhere(dist == d)         # row-major: a fixed order for the seeded draw
    goal = tuple(int(v) for v in candidates[rng.integers(len(candidates))])
    path = [goal]
    while path[-1] != start:       # walk back down the distance field, first neighbour in BFS order
        r, c = path[-1]
        path.append(next((r + dr, c + dc) for dr, dc in _NEIGHBOURS
                         if layout.is_open(r + dr, c + dc) and dist[r + dr, c + dc] == dist[r, c] - 1))
    out_path = path[::-1][1:]                   # start excluded ... goal
    return out_path + path[1:]                  # ... back to start
