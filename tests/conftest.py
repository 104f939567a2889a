import os
import shutil
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_home():
    """Ray writes its auth token under $HOME and sockets under its temp dir: keep both out of the user's."""
    home = tempfile.mkdtemp(prefix="rayhome")
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield {"home": home, "temp_dir": tmp}
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster(ray_home):
    """One local Ray cluster per test module (starting one costs seconds)."""
    import ray
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = ray_home["home"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_home["temp_dir"])
    yield ray
    ray.shutdown()
    if old_home is not None:
        os.environ["HOME"] = old_home


def subprocess_env(ray_home: dict, **extra) -> dict:
    """Environment for CLI subprocesses: the repo importable, Ray kept in temp dirs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = ray_home["home"]
    env["RAY_TMPDIR"] = ray_home["temp_dir"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def call_cli(fn, argv) -> tuple[int, str]:
    """Run a console script's main(argv) in-process: (exit code, stderr)."""
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = fn(argv)
    return code, err.getvalue()


def copy_run_with_vqgan_moved(run, dst, moved) -> str:
    """A copy of train-teco run `run` at `dst` whose run.json says its VQ-GAN is at `moved` (not there)."""
    import json
    shutil.copytree(run, dst)
    path = os.path.join(dst, "run.json")
    with open(path) as f:
        info = json.load(f)
    info["vqgan"]["run"] = str(moved)
    with open(path, "w") as f:
        json.dump(info, f)
    return dst


def structured_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Frames with real structure (moving gradient + squares), compressible like rendered video."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w, 3), np.uint8)
    for k in range(t):
        out[k, ..., 0] = (xx * 4 + k * 3) % 256
        out[k, ..., 1] = (yy * 4) % 256
        out[k, ..., 2] = 64
        y0, x0 = (k * 2 + g.integers(0, 3)) % max(h - 4, 1), (k * 3) % max(w - 4, 1)
        out[k, y0:y0 + 4, x0:x0 + 4] = 255
    return out


def local_objects(root) -> dict[str, bytes]:
    """Every object of a store on local disk: relative path -> bytes."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def assert_same_objects(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    """Two stores' objects (key -> bytes) are byte-identical; the root zarr.json differs only in the creation
    time."""
    import json
    assert sorted(a) == sorted(b)
    for k in a:
        if k == "zarr.json":
            ma, mb = json.loads(a[k]), json.loads(b[k])
            for m in (ma, mb):
                m["attributes"]["teco_worlds"].pop("created")
            assert ma == mb
        else:
            assert a[k] == b[k], k


def wait_for_complete(proc, url, n: int, timeout: float) -> None:
    """Wait until the store at `url` has >= n complete episodes while `proc` (a gen run) is still running."""
    import time

    from storage import StoreReader
    deadline, done = time.time() + timeout, 0
    while done < n:
        assert proc.poll() is None and time.time() < deadline, \
            proc.stderr.read() if proc.poll() is not None else "too slow"
        try:
            done = StoreReader(url).complete_count()
        except Exception:   # not created yet
            pass
        time.sleep(0.2)
