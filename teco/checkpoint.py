"""Checkpoint files: kept importable here; they live with the rest of the run folder in teco/runs.py."""
from .runs import CheckpointDamaged, checkpoint_hash, load_checkpoint, save_checkpoint  # noqa: F401
