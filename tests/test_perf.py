"""Issue 14 plumbing: store layout defaults, layout-independent identity, other readers, numba's cache
directory, Ray's start-up notice, labelled rates (no timing assertions: speed is bench/*.py's job)."""
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, structured_frames
from generators.runner import RunReport, hide_ray_auth_notice
from storage import StoreConfig, StoreReader, StoreWriter


def config(**kw):
    base = dict(dataset="t", episodes=2, length=30, height=16, width=16, action_names=["a", "b"],
                pose_names=["x", "y", "z", "yaw"])
    return StoreConfig(**{**base, **kw})


def fill(url, cfg):
    w = StoreWriter.create(str(url), cfg)
    videos = []
    for i in range(cfg.episodes):
        v = structured_frames(cfg.length, cfg.height, cfg.width, seed=i)
        w.write_episode(i, v, np.r_[-1, np.ones(cfg.length - 1, int)], np.zeros((cfg.length, 4)))
        w.mark_complete(i, i)
        videos.append(v)
    return videos


def test_a_store_reopens_with_other_layout_defaults_and_keeps_its_own(tmp_path):
    url = tmp_path / "s.zarr"
    fill(url, config(chunk_frames=10, compression_level=1))
    w = StoreWriter.create(str(url), config(chunk_frames=15, compression_level=5, episodes=3))   # new defaults, grown
    assert (w.config.chunk_frames, w.config.compression_level, w.config.episodes) == (10, 1, 3)
    assert StoreReader(url).array("video").chunks[1] == 10
    from storage import StoreError
    with pytest.raises(StoreError, match="differs in: length"):
        StoreWriter.create(str(url), config(length=31))      # what the bytes mean still must match


def test_default_layout_is_read_identically_by_tensorstore(tmp_path):
    ts = pytest.importorskip("tensorstore")
    url = tmp_path / "d.zarr"
    videos = fill(url, config(length=160))    # two full default chunks and a partial one
    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(url) + "/video"}}).result()
    for i, v in enumerate(videos):
        assert np.array_equal(store[i].read().result(), v)
        assert np.array_equal(StoreReader(url).read("video", i, 70, 86), v[70:86])


def run_py(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    e.update(PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)


def test_numba_cache_lives_in_the_users_cache_dir(tmp_path):
    show = "import generators, numba, os; print(os.environ['NUMBA_CACHE_DIR']); print(numba.config.CACHE_DIR)"
    out = run_py(show, HOME=str(tmp_path))
    assert out.stdout.split() == [str(tmp_path / ".cache/teco-worlds/numba")] * 2, out.stderr
    out = run_py(show, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert out.stdout.split() == [str(tmp_path / "xdg/teco-worlds/numba")] * 2, out.stderr
    out = run_py(show, NUMBA_CACHE_DIR=str(tmp_path / "mine"))     # the user's own setting wins
    assert out.stdout.split() == [str(tmp_path / "mine")] * 2, out.stderr
    # numba imported first: its config is pointed there too
    out = run_py("import numba, generators; print(numba.config.CACHE_DIR)", HOME=str(tmp_path))
    assert out.stdout.strip() == str(tmp_path / ".cache/teco-worlds/numba"), out.stderr


def test_compiled_simulator_cache_goes_to_the_cache_dir_not_the_sources(tmp_path):
    code = ("import generators.dmlab.physics as p, numpy as np, glob, os\n"
            "fs = [getattr(p, n) for n in dir(p) if hasattr(getattr(p, n), 'stats')]\n"
            "print(fs[0]._cache._cache_path)")
    out = run_py(code, HOME=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(tmp_path / ".cache/teco-worlds/numba")), out.stdout


def test_rates_are_labelled():
    r = RunReport(store="x", backend="embedded", requested=3, frames=300, seconds=10.0, first_done=5.0,
                  last_done=6.0, frames_after_first=200)
    assert r.rates() == "steady 200 frames/s, wall clock 30 frames/s (with start-up)"
    one = RunReport(store="x", backend="embedded", requested=1, frames=100, seconds=10.0, first_done=5.0, last_done=5.0)
    assert one.rates() == "wall clock 10 frames/s (with start-up)"     # one episode: no steady rate to give


def test_only_rays_auth_enabled_notice_is_hidden():
    rec = lambda msg: logging.LogRecord("ray", logging.WARNING, "f", 1, msg, None, None)
    assert not hide_ray_auth_notice(rec("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=..."))
    assert hide_ray_auth_notice(rec("Token authentication is disabled for this Ray cluster. Anyone with ..."))


def test_process_writer_writes_the_same_bytes_reports_errors_and_survives_its_child(tmp_path):
    from generators.bgwriter import NICENESS, ProcessWriter
    from storage import StoreError
    cfg = config(episodes=3)
    url = str(tmp_path / "p.zarr")
    StoreWriter.create(url, cfg)
    v = structured_frames(cfg.length, cfg.height, cfg.width, seed=5)
    acts, pose = np.r_[-1, np.zeros(cfg.length - 1, int)], np.arange(cfg.length * 4.0).reshape(-1, 4)
    w = ProcessWriter(url)
    try:
        w.write_episode(0, v, acts, pose)
        with pytest.raises(StoreError, match="action ids outside"):     # the child's error, raised here
            w.write_episode(1, v, np.full(cfg.length, 9), pose)
        mine = os.getpriority(os.PRIO_PROCESS, 0)                       # it yields to the simulator
        assert os.getpriority(os.PRIO_PROCESS, w._proc.pid) == min(19, mine + NICENESS) > mine or mine == 19
        w._proc.kill()                                                  # a dead child is replaced
        w._proc.wait()
        w.write_episode(2, v, acts, pose)
    finally:
        w.close()
    r = StoreReader(url)
    for i in (0, 2):
        assert np.array_equal(r.read("video", i), v) and np.array_equal(r.read("actions", i), acts)
        assert np.array_equal(r.read("pose", i), pose.astype(np.float32))
