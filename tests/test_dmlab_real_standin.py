"""The deepmind_lab adapter against the API-faithful stand-in module in tests/standins/deepmind_lab."""
import argparse
import os
import sys

import numpy as np
import pytest

from generators.backend import pick_backend
from generators.dmlab import protocol as P
from generators.dmlab.maze import parse_layout
from generators.dmlab.real import OBSERVATIONS, DeepMindLabBackend, RealConfig, dmlab_seed, lab_settings
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


def _params(*argv):
    parser = argparse.ArgumentParser()
    SPEC.add_args(parser)
    return SPEC.params(parser.parse_args(["--maze-size", "13", *argv]))


def test_lab_is_built_with_the_documented_arguments(dmlab):
    b = DeepMindLabBackend(RealConfig())
    assert b.env._level == "demos/random_maze" and b.env._observations == list(OBSERVATIONS)
    assert (b.env._width, b.env._height, b.env._fps) == (64, 64, 30.0)
    assert b.env.settings == {}                   # random_maze gets no maze-size settings
    assert b.version == "deepmind_lab-1.0:demos/random_maze"
    assert lab_settings(RealConfig(level="my/maze", maze_size=7)) == \
        {"width": "64", "height": "64", "fps": "30", "mazeHeight": "9", "mazeWidth": "9"}
    with pytest.raises(RuntimeError):             # as the real module: an unknown level fails at init
        DeepMindLabBackend(RealConfig(level="no/such_level"))
    b.close()
    assert pick_backend("auto", "deepmind_lab", "deepmind_lab", "") == "deepmind_lab"


def test_reset_reads_frame_pose_and_layout(dmlab):
    b = DeepMindLabBackend(RealConfig())
    frame = b.reset(2**40 + 5)
    obs = b.env.observations()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, obs["RGB_INTERLEAVED"])
    want = [*obs["DEBUG.POS.TRANS"], obs["DEBUG.POS.ROT"][1]]
    assert b.pose().dtype == np.float32 and np.allclose(b.pose(), want)
    lay = b.layout()
    assert lay.walls.shape == (15, 15)
    assert np.array_equal(lay.walls, parse_layout(obs["DEBUG.MAZE.LAYOUT"]).walls)
    assert lay.is_open(*lay.cell_of(*b.pose()[:2]))           # spawned on a floor cell
    b.reset(2**40 + 5)
    same = b.layout().walls.copy()
    b.reset(6)
    assert np.array_equal(same, lay.walls) and not np.array_equal(b.layout().walls, lay.walls)
    assert dmlab_seed(2**40 + 5) == 5 and dmlab_seed(-1) == 2**31 - 1


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


def test_spec_episode_through_the_adapter(dmlab):
    params = _params("--length", "60")
    SPEC.validate(params, "deepmind_lab")
    backend = SPEC.make_backend("deepmind_lab", params)
    ep = SPEC.episode(backend, 0, 0, params)
    assert ep.video.shape == (60, 64, 64, 3) and ep.actions.shape == (60,) and ep.pose.shape == (60, 4)
    assert (ep.actions[:30] == P.LOOK_LEFT).all() and ep.actions.max() < 5
    assert np.isin(ep.actions[30:], [P.LOOK_LEFT_FORWARD, P.LOOK_RIGHT_FORWARD]).any()   # it heads off
    cfg = SPEC.store_config(params, "deepmind_lab", 4, 0)
    assert cfg.backend == "deepmind_lab" and cfg.backend_version == "deepmind_lab-1.0:demos/random_maze"
    again = SPEC.episode(backend, 0, 0, params)
    assert np.array_equal(ep.pose, again.pose) and np.array_equal(ep.actions, again.actions)


def test_early_end_is_discarded_and_redrawn(dmlab, monkeypatch):
    monkeypatch.setitem(dmlab._LEVELS, "demos/random_maze", 1.0)      # a 1-second level
    params = _params("--length", "60")
    backend = SPEC.make_backend("deepmind_lab", params)
    with pytest.raises(EpisodeDiscarded):
        SPEC.episode(backend, 0, 0, params)
    assert len(backend.env.calls) == (MAX_REDRAWS + 1) * 8      # 30 engine frames end it: 8 calls each try
