"""DMLab-40k (TECO): random 3-D mazes walked by a goal agent. Backends: `embedded` (labmaze mazes in DMLab's
textures, DMLab's motion, a numba raycaster; pip-only) and `deepmind_lab` (the real simulator)."""
