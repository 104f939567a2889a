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

from ..seeds import rng

CELL_SIZE = 100.0        # DMLab world units per maze cell (TextLevelSettings.cell_size)
WALL_CHAR = "*"

# Neighbour order of the script's BFS (x-1, y-1, y+1, x+1 in its (col, row) indexing); it decides
# which shortest path is walked when several exist (the script takes the first neighbour of least distance).
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
        """World (x, y) of a cell's centre: the goal agent's waypoints."""
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


def generate_layout(g: np.random.Generator, size: int, open_fraction: float) -> MazeLayout:
    """A maze as the paper's random_maze level builds it: a grid of `size` x `size` interior cells inside
    a one-cell outer wall, carved depth-first between the odd-indexed cells from a random odd cell (thick
    walls, one cell per junction), then every interior cell opened with probability `open_fraction`
    (15% in the level) to make loops. All draws come from `g`."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= 3, got {size}")
    n = size + 2
    carved = np.zeros((n, n), bool)
    junctions = np.arange(1, n - 1, 2)
    stack = [(int(g.choice(junctions)), int(g.choice(junctions)))]
    carved[stack[0]] = True
    while stack:
        r, c = stack[-1]
        options = [(dr, dc) for dr, dc in ((-2, 0), (0, -2), (2, 0), (0, 2))
                   if 0 < r + dr < n - 1 and 0 < c + dc < n - 1 and not carved[r + dr, c + dc]]
        if not options:
            stack.pop()
            continue
        dr, dc = options[int(g.integers(len(options)))]
        carved[r + dr // 2, c + dc // 2] = carved[r + dr, c + dc] = True
        stack.append((r + dr, c + dc))
    opened = g.random((size, size)) < open_fraction          # row-major over the interior
    carved[1:-1, 1:-1] |= opened
    return MazeLayout(~carved)


SPAWN_MIN_STEPS = 5       # random_maze: spawns are the cells more than 5 BFS steps from a random junction


def spawn_cells(layout: MazeLayout, anchor: tuple[int, int], min_steps: int = SPAWN_MIN_STEPS) -> np.ndarray:
    """int (K, 2) of the cells more than `min_steps` BFS steps from `anchor`, row-major: the level's 'P' cells."""
    return np.argwhere(bfs_distances(layout, anchor) > min_steps)


def draw_spawn(layout: MazeLayout, g: np.random.Generator) -> tuple[int, int] | None:
    """The level's spawn rule: a random odd (junction) cell as anchor, then a uniform pick among the cells
    more than 5 steps from it (DMLab picks uniformly among 'P' spawn points); None when there is none."""
    anchor = (int(g.choice(np.arange(1, layout.rows - 1, 2))), int(g.choice(np.arange(1, layout.cols - 1, 2))))
    cells = spawn_cells(layout, anchor)
    if len(cells) == 0:
        return None
    r, c = cells[int(g.integers(len(cells)))]
    return int(r), int(c)


def can_host(layout: MazeLayout, spawn: tuple[int, int] | None) -> bool:
    """A world hosts an episode if the spawn exists and the agent can plan a leg from it (a reachable neighbour)."""
    return spawn is not None and layout.is_open(*spawn) and int(bfs_distances(layout, spawn).max()) >= 1


def draw_world(seed: int, size: int, open_fraction: float,
               max_attempts: int = 64) -> tuple[MazeLayout, tuple[int, int], int]:
    """(layout, spawn cell, attempt) for an episode seed. Attempt 0 draws from the seed's "maze" and "spawn"
    streams; a world that cannot host an episode is redrawn from streams "maze/<k>", "spawn/<k>" of the same
    seed, so the redraw is as deterministic as the first draw and never depends on the worker or a retry."""
    for attempt in range(max_attempts):
        tag = "" if attempt == 0 else f"/{attempt}"
        layout = generate_layout(rng(seed, "maze" + tag), size, open_fraction)
        spawn = draw_spawn(layout, rng(seed, "spawn" + tag))
        if can_host(layout, spawn):
            return layout, spawn, attempt
    raise ValueError(f"no maze of size {size} with open fraction {open_fraction} could host an episode "
                     f"in {max_attempts} draws for seed {seed}")


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


class Traversal:
    """The final collection script's goal choice (random_agent_traverse.py at wilson1yan/lab "ready"), one per
    episode: each leg goes from the current cell to a random cell at the largest BFS distance found among the
    not-yet-visited cells (the draw is among all cells at that distance, as the script's `np.where` does); the
    leg's cells and its start are marked visited; when every reachable cell is visited the marks are cleared.
    Legs are one-way: the next one starts where the agent arrived."""

    def __init__(self, layout: MazeLayout):
        self.layout = layout
        self.visited = layout.walls.copy()       # walls count as visited, as in the script

    def plan(self, start: tuple[int, int], rng: np.random.Generator) -> list[tuple[int, int]]:
        """Cells of the next leg, start excluded, goal last."""
        dist = bfs_distances(self.layout, start)
        far = int(np.where(self.visited, 0, np.maximum(dist, 0)).max())
        if far == 0:                             # every reachable cell visited: start over
            self.visited = self.layout.walls.copy()
            far = int(np.maximum(dist, 0).max())
        if far == 0:
            raise ValueError(f"start cell {start} has no reachable neighbour")
        candidates = np.argwhere(dist == far)     # row-major: a fixed order for the seeded draw
        goal = tuple(int(v) for v in candidates[rng.integers(len(candidates))])
        path = [goal]
        while dist[path[-1]] > 1:    # walk down the distance field, first neighbour in the script's order
            r, c = path[-1]
            path.append(next((r + dr, c + dc) for dr, dc in _NEIGHBOURS
                             if self.layout.is_open(r + dr, c + dc) and dist[r + dr, c + dc] == dist[r, c] - 1))
        self.visited[start] = True
        for cell in path:
            self.visited[cell] = True
        return path[::-1]
