"""Simulator backends, scripted exploration policies and the Ray runner that fills episode stores."""
import os as _os
import sys as _sys


def _numba_cache_dir() -> str:
    """numba caches compiled simulators in the user's cache directory, not next to the sources, so an
    installed (read-only) package works. Set before numba is imported; Ray workers inherit it from the
    driver's environment, and a worker of a cluster we joined sets it here when it imports us."""
    base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    path = _os.environ.setdefault("NUMBA_CACHE_DIR", _os.path.join(base, "teco-worlds", "numba"))
    if "numba" in _sys.modules:        # imported before us: its config already read the environment
        _sys.modules["numba"].config.CACHE_DIR = path
    return path


_numba_cache_dir()
