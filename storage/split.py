"""Train/test split by episode index alone: stable as a store grows and identical on every machine."""
from __future__ import annotations

import numpy as np


def is_test(index: np.ndarray | int, test_fraction: float) -> np.ndarray:
    """Knuth multiplicative hash of the index, compared with the fraction."""
    h = (np.asarray(index, np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
    return h.astype(np.float64) / 2**32 < test_fraction


def split_episodes(indices, test_fraction: float = 0.05, min_test: int = 1) -> tuple[list[int], list[int]]:
    """(train, test) lists; at least `min_test` test episodes when there are two or more episodes."""
    idx = np.asarray(sorted(int(i) for i in indices), np.int64)
    mask = is_test(idx, test_fraction)
    if mask.sum() < min_test and len(idx) > min_test:
        order = np.argsort((idx.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32), kind="stable")
        mask[order[:min_test]] = True
    return idx[~mask].tolist(), idx[mask].tolist()


def store_split(params: dict, indices, test_fraction: float = 0.05, min_test: int = 1) -> tuple[list[int], list[int]]:
    """(train, test) for a store: the split recorded in its `config.params["split"]` (an import of the
    released train/ and test/ folders: {"train": [start, stop], "test": [start, stop]}), else split_episodes."""
    rec = (params or {}).get("split")
    if not rec:
        return split_episodes(indices, test_fraction, min_test)
    idx = sorted(int(i) for i in indices)
    lo, hi = rec["test"]
    return [i for i in idx if not lo <= i < hi], [i for i in idx if lo <= i < hi]
