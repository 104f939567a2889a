"""DMLab-40k (TECO): 9x9 random mazes walked by the authors' final goal agent (PROTOCOL.md). Backends: `embedded`
(the level's mazes in DMLab's textures from labmaze, DMLab's motion, a numba raycaster; pip-only) and
`deepmind_lab` (the real simulator running the shipped level levels/teco_maze.lua)."""
