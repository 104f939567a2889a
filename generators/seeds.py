"""Seeds: episode i of a dataset with base seed s depends on (s, i) only, never on worker or order."""
from __future__ import annotations

import numpy as np

MAX_SEED = 2 ** 63 - 1   # base seeds are 0..MAX_SEED (two 32-bit words of SeedSequence entropy)


def check_seed(seed: int, flag: str = "--seed") -> None:
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{flag} must be within 0..2**63-1, got {seed}")


def episode_seed(base_seed: int, index: int, attempt: int = 0) -> int:
    """A 63-bit seed for episode `index`; `attempt` > 0 gives the deterministic redraws used when a
    simulator episode must be discarded (e.g. MineRL's early `done`)."""
    words = [int(base_seed) & 0xFFFFFFFF, int(base_seed) >> 32, int(index), int(attempt)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def rng(seed: int, stream: str = "") -> np.random.Generator:
    """An independent generator per named stream (maze, textures, policy, ...) of one episode seed,
    so adding a random draw to one part never shifts another part's numbers."""
    tag = [ord(c) for c in stream]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, *tag]))
