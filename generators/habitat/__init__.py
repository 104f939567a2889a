"""Habitat-200k: agents walking habitat's greedy shortest paths through indoor 3D scans (TECO, Yan et al.
2022), from habitat-sim or the pip-only embedded backend (trimesh + moderngl + a voxel navigation grid)."""
from .protocol import ACTION_NAMES, POSE_NAMES, ProtocolConfig

__all__ = ["ACTION_NAMES", "POSE_NAMES", "ProtocolConfig"]
