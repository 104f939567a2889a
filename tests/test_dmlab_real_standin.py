"""The deepmind_lab adapter against the API-faithful stand-in module in tests/standins/deepmind_lab."""
import argparse
import importlib.util
import os
import sys

import numpy as np
import pytest

from generators.backend import pick_backend
from generators.dmlab import protocol as P
from generators.dmlab.maze import parse_layout
from generators.dmlab.maze import bfs_distances
from generators.dmlab.real import (DEFAULT_LEVEL, LEVEL_DIR, OBSERVATIONS, DeepMindLabBackend, RealConfig, dmlab_seed,
                                   lab_settings, level_path)
from generators.dmlab.spec import MAX_REDRAWS, SPEC
from generators.rollout import EpisodeDiscarded

STANDINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins")


@pytest.fixture
def dmlab(monkeypatch):
    monkeypatch.syspath_prepend(STANDINS)
    sys.modules.pop("deepmind_lab", None)
    import deepmind_lab
    yield deepmind_lab
    sys.modules.pop("deepmind_lab", None)       # later tests must not see a "real" deepmind_lab


# The stand-in runs the shipped Lua level for real with lupa (Lua 5.1); without it only stock levels work.
needs_lupa = pytest.mark.skipif(importlib.util.find_spec("lupa") is None, reason="pip install lupa")


def _params(*argv):
    parser = argparse.ArgumentParser()
    SPEC.add_args(parser)
    return SPEC.params(parser.parse_args(list(argv)))


@needs_lupa
def test_lab_is_built_with_the_documented_arguments(dmlab):
    b = DeepMindLabBackend(RealConfig())
    assert b.env._level == DEFAULT_LEVEL == "teco_maze" and b.env._observations == list(OBSERVATIONS)
    assert (b.env._width, b.env._height, b.env._fps) == (64, 64, 30.0)
    assert b.env.settings == {"mazeSize": "7", "openFraction": "0.15"}       # levelDirectory is an engine setting
    assert lab_settings(RealConfig())["levelDirectory"] == LEVEL_DIR and os.path.isabs(LEVEL_DIR)
    assert os.path.isfile(level_path()) and b.version.startswith("deepmind_lab-1.0:teco_maze+")
    hud_off = ("+set cg_draw2D 0 +set cg_drawCrosshair 0 +set cg_drawStatus 0 +set cg_drawIcons 0 "
               "+set cg_draw3dIcons 0")                  # the authors' fork's q3config.cfg: no crosshair, no HUD
    assert lab_settings(RealConfig(level="demos/random_maze")) == {"width": "64", "height": "64", "fps": "30",
                                                                  "appendCommand": hud_off}
    assert lab_settings(RealConfig())["appendCommand"] == hud_off
    with pytest.raises(RuntimeError):             # as the real module: an unknown level fails at init
        DeepMindLabBackend(RealConfig(level="no/such_level"))
    b.close()
    assert pick_backend("auto", "deepmind_lab", "deepmind_lab", "") == "deepmind_lab"


def test_stock_random_maze_publishes_no_layout(dmlab):
    """Stock DMLab's demos/random_maze never calls debug_observations.setMaze: the adapter must say so
    (the old adapter assumed a 15x15 layout there and could not run)."""
    env = dmlab.Lab("demos/random_maze", ["DEBUG.MAZE.LAYOUT", "DEBUG.POS.TRANS"])
    env.reset(seed=1)
    assert env.observations()["DEBUG.MAZE.LAYOUT"] == ""
    b = DeepMindLabBackend(RealConfig(level="demos/random_maze"))
    with pytest.raises(ValueError, match="setMaze"):
        b.reset(1)
    with pytest.raises(RuntimeError, match="Invalid setting"):     # stock levels reject settings they lack
        dmlab.Lab("demos/random_maze", ["RGB_INTERLEAVED"], config={"mazeSize": "7"})


@needs_lupa
def test_shipped_level_runs_in_a_stock_install(dmlab, tmp_path):
    """The Lua level itself (run by lupa) builds the paper's mazes and publishes them."""
    b = DeepMindLabBackend(RealConfig())
    b.reset(11)
    lay = b.layout()
    assert lay.walls.shape == (9, 9) and lay.walls[0].all() and lay.walls[:, -1].all()
    assert not lay.walls[1::2, 1::2].any()                               # every junction carved
    text = b.env.observations()["DEBUG.MAZE.LAYOUT"]
    assert text.count("P") == 1 and set(text) <= set("* P\n")
    r, c = lay.cell_of(*b.pose()[:2])
    assert text.splitlines()[r][c] == "P"
    anchors = [(i, j) for i in range(1, 8, 2) for j in range(1, 8, 2)]
    assert any(bfs_distances(lay, a)[r, c] > 5 for a in anchors)          # the spawn rule
    opened = DeepMindLabBackend(RealConfig())
    pillars = []
    for seed in range(40):
        opened.reset(seed)
        pillars.append(opened.layout().walls[2:-1:2, 2:-1:2])
    assert 0.08 < 1 - np.mean(pillars) < 0.24                             # ~15% of interior cells opened
    big = DeepMindLabBackend(RealConfig(maze_size=11))
    big.reset(3)
    assert big.layout().walls.shape == (13, 13)                          # mazeSize reaches the level
    # the same level file loaded by absolute path (a level name ending in .lua)
    env = dmlab.Lab(level_path(), ["DEBUG.MAZE.LAYOUT"], config={"mazeSize": "7"})
    env.reset(seed=11)
    assert env.observations()["DEBUG.MAZE.LAYOUT"] == text
    # a level that never publishes its maze: no layout, like stock DMLab
    quiet = tmp_path / "quiet.lua"
    quiet.write_text(open(level_path()).read().replace("debug_observations.setMaze(maze)", ""))
    env = dmlab.Lab("quiet", ["DEBUG.MAZE.LAYOUT"], config={"levelDirectory": str(tmp_path)})
    env.reset(seed=11)
    assert env.observations()["DEBUG.MAZE.LAYOUT"] == ""
    with pytest.raises(RuntimeError, match="Invalid setting"):
        dmlab.Lab("teco_maze", [], config={"levelDirectory": LEVEL_DIR, "noSuchSetting": "1"})


@needs_lupa
def test_reset_reads_frame_pose_and_layout(dmlab):
    b = DeepMindLabBackend(RealConfig())
    frame = b.reset(2**40 + 5)
    obs = b.env.observations()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, obs["RGB_INTERLEAVED"])
    want = [*obs["DEBUG.POS.TRANS"], obs["DEBUG.POS.ROT"][1]]
    assert b.pose().dtype == np.float32 and np.allclose(b.pose(), want)
    lay = b.layout()
    assert lay.walls.shape == (9, 9)
    assert np.array_equal(lay.walls, parse_layout(obs["DEBUG.MAZE.LAYOUT"]).walls)
    assert lay.is_open(*lay.cell_of(*b.pose()[:2]))           # spawned on a floor cell
    b.reset(2**40 + 5)
    same = b.layout().walls.copy()
    b.reset(6)
    assert np.array_equal(same, lay.walls) and not np.array_equal(b.layout().walls, lay.walls)
    assert dmlab_seed(2**40 + 5) == 5 and dmlab_seed(-1) == 2**31 - 1


@needs_lupa
def test_step_sends_action_vectors_with_num_steps(dmlab):
    b = DeepMindLabBackend(RealConfig(action_repeat=4))
    b.reset(1)
    for a in range(5):
        y0 = b.pose()[3]
        b.step(a)
        vec, n = b.env.calls[-1]
        assert vec.dtype == np.intc and vec.tolist() == P.action_vector(a).tolist() and n == 4
        turned = (b.pose()[3] - y0 + 180) % 360 - 180
        look = P.ACTION_TABLE[a][0]
        assert turned == pytest.approx(-look * 0.132 * 32 * 4, abs=1e-3)   # the stand-in's rate, unquantised
    assert b.env.num_steps() == 20
    with pytest.raises(ValueError):
        b.step(5)
    b.close()
    assert not b.env.is_running()


def test_standin_raises_like_the_real_module(dmlab):
    with pytest.raises(ValueError):
        dmlab.Lab("demos/random_maze", ["NOT_AN_OBSERVATION"])
    with pytest.raises(TypeError):
        dmlab.Lab("demos/random_maze", ("RGB_INTERLEAVED",))
    with pytest.raises(RuntimeError):
        dmlab.Lab("demos/random_maze", [], renderer="gpu")
    env = dmlab.Lab("demos/random_maze", ["RGB_INTERLEAVED"], config={"width": "32", "height": "32"})
    with pytest.raises(RuntimeError):
        env.step(np.zeros(7, np.intc))                  # before reset
    with pytest.raises(RuntimeError):
        env.observations()
    env.reset(seed=3)
    with pytest.raises(ValueError):
        env.step(np.zeros(7, np.int64))                 # wrong dtype
    with pytest.raises(ValueError):
        env.step(np.zeros(6, np.intc))                  # wrong shape
    with pytest.raises(ValueError):
        env.reset(seed="3")
    assert env.observations()["RGB_INTERLEAVED"].shape == (32, 32, 3)


@needs_lupa
def test_spec_episode_through_the_adapter(dmlab):
    params = _params("--length", "60")
    SPEC.validate(params, "deepmind_lab")
    backend = SPEC.make_backend("deepmind_lab", params)
    ep = SPEC.episode(backend, 0, 0, params)
    assert ep.video.shape == (60, 64, 64, 3) and ep.actions.shape == (60,) and ep.pose.shape == (60, 4)
    assert (ep.actions[:21] == P.LOOK_LEFT).all() and ep.actions.max() < 5
    assert (ep.actions[21:] == P.FORWARD).any()                                          # it heads off
    cfg = SPEC.store_config(params, "deepmind_lab", 4, 0)
    assert cfg.backend == "deepmind_lab" and cfg.backend_version.startswith("deepmind_lab-1.0:teco_maze+")
    again = SPEC.episode(backend, 0, 0, params)
    assert np.array_equal(ep.pose, again.pose) and np.array_equal(ep.actions, again.actions)


@needs_lupa
def test_early_end_is_discarded_and_redrawn(dmlab, monkeypatch):
    params = _params("--length", "60")
    monkeypatch.setattr(dmlab._LuaLevel, "episode_length", lambda self: 1.0)     # a 1-second level
    backend = SPEC.make_backend("deepmind_lab", params)
    with pytest.raises(EpisodeDiscarded):
        SPEC.episode(backend, 0, 0, params)
    assert len(backend.env.calls) == (MAX_REDRAWS + 1) * 8      # 30 engine frames end it: 8 calls each try
