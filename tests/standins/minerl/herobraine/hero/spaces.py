"""minerl.herobraine.hero.spaces: the MineRL spaces the adapter touches (Box, Discrete, Dict)."""
from collections import OrderedDict

import numpy as np


class Box:
    def __init__(self, low, high, shape, dtype=np.float32):
        self.low, self.high, self.shape, self.dtype = low, high, tuple(shape), np.dtype(dtype)

    def no_op(self):
        return np.zeros(self.shape, self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all(x >= self.low)) and bool(np.all(x <= self.high))


class Discrete:
    def __init__(self, n: int):
        self.n = n

    def no_op(self):
        return 0

    def contains(self, x) -> bool:
        return int(x) == x and 0 <= int(x) < self.n


class Dict:
    def __init__(self, spaces: dict):
        self.spaces = OrderedDict(spaces)

    def no_op(self):
        return OrderedDict((k, s.no_op()) for k, s in self.spaces.items())

    noop = no_op

    def contains(self, x) -> bool:
        return set(x) == set(self.spaces) and all(self.spaces[k].contains(v) for k, v in x.items())
