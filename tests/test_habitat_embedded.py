"""Habitat protocol on the embedded backend: goal sampling, greedy follower, episodes, determinism, spec."""
import argparse
import hashlib

import numpy as np
import pytest

from generators.habitat.embedded import EmbeddedBackend
from generators.habitat.protocol import (MOVE_FORWARD, STOP, TURN_LEFT, TURN_RIGHT, GoalTourPolicy, ProtocolConfig,
                                         pick_goal, yaw_forward)
from generators.habitat.scenes import SceneWarning, main as make_scenes
from generators.habitat.spec import SPEC
from generators.rollout import EpisodeDiscarded
from generators.seeds import rng


def _params(scenes, **proto):
    cfg = ProtocolConfig(**{"length": 40, "resolution": 32, **proto})
    return {"scenes": scenes, "scene_dataset_config": "", "protocol": cfg.to_json(), "cell_size": 0.1,
            "shading": "flat", "up_axis": "auto"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("hab")
    assert make_scenes(["--out", str(d), "--count", "2", "--seed", "3", "--texture-px", "16"]) == 0
    return [str(d / "scene_00000.glb"), str(d / "scene_00001.glb")]


@pytest.fixture(scope="module")
def backend(scenes):
    be = EmbeddedBackend(_params(scenes))
    yield be
    be.close()


def test_goal_sampling_constraints(backend):
    backend.reset(5, scene=0)
    cfg = ProtocolConfig(min_goal_dist=1.0, max_goal_dist=6.0, min_geo_ratio=1.1, goal_candidates=60)
    src = backend.agent_position()
    r = rng(1, "t")
    for _ in range(5):
        try:
            g = pick_goal(backend, src, r, cfg)
        except EpisodeDiscarded:
            continue
        geo = backend.geodesic_distances(src, g[None])[0]
        assert 1.0 <= geo <= 6.0
        assert geo >= 1.1 * np.linalg.norm(g - src) - 1e-9
        assert backend.grid.locate(g) >= 0
    with pytest.raises(EpisodeDiscarded):
        pick_goal(backend, src, r, ProtocolConfig(min_goal_dist=500.0, max_goal_dist=600.0, goal_candidates=20))


def test_follower_reaches_goal_and_returns(backend):
    backend.reset(11, scene=1)
    start = backend.agent_position()
    goal = pick_goal(backend, start, rng(2, "t"), ProtocolConfig(min_goal_dist=3.0, max_goal_dist=8.0))
    for target in (goal, start):
        for steps in range(400):
            a = backend.next_action(target)
            if a == STOP:
                break
            assert a in (MOVE_FORWARD, TURN_LEFT, TURN_RIGHT)
            backend.step(a)
        assert a == STOP, "follower did not arrive"
        assert backend.geodesic_distances(target, backend.agent_position()[None])[0] < 0.2 + 1e-6


def test_episode_shapes_actions_and_poses(backend, scenes):
    params = _params(scenes)
    ep = SPEC.episode(backend, 3, 0, params)
    assert ep.video.shape == (40, 32, 32, 3) and ep.video.dtype == np.uint8
    assert ep.actions.shape == (40,) and set(ep.actions.tolist()) <= {MOVE_FORWARD, TURN_LEFT, TURN_RIGHT}
    assert ep.pose.shape == (40, 4) and ep.pose.dtype == np.float32
    assert ep.extras["scene"] == SPEC.group(3, 0, params)
    assert ep.video.std() > 5                                       # textured walls and floors, not a blank frame
    for t in range(39):                                             # actions[t + 1] moves pose[t] to pose[t + 1]
        d = ep.pose[t + 1] - ep.pose[t]
        turn = (d[3] + 180) % 360 - 180
        if ep.actions[t + 1] == TURN_LEFT:
            assert turn == pytest.approx(10, abs=1e-3) and np.allclose(d[:3], 0)
        elif ep.actions[t + 1] == TURN_RIGHT:
            assert turn == pytest.approx(-10, abs=1e-3) and np.allclose(d[:3], 0)
        else:
            step = np.hypot(d[0], d[2])
            assert step <= 0.25 + 1e-5 and turn == pytest.approx(0, abs=1e-3)
            if step > 0.2:                                          # a free step goes where the agent faces
                assert np.allclose(d[[0, 2]] / step, yaw_forward(ep.pose[t, 3]), atol=1e-3)


def test_frame0_is_the_view_after_the_first_action(backend, scenes):
    """The collector stores the views after each action, never the start view: frame 0 follows actions[0]."""
    from generators.seeds import episode_seed
    params = _params(scenes)
    ep = SPEC.episode(backend, 3, 0, params)
    start = backend.reset(episode_seed(0, 3), scene=ep.extras["scene"])
    p0 = backend.pose()
    assert ep.actions[0] in (MOVE_FORWARD, TURN_LEFT, TURN_RIGHT)
    assert np.array_equal(backend.step(int(ep.actions[0])), ep.video[0])
    assert np.allclose(backend.pose(), ep.pose[0])
    assert not np.allclose(p0, ep.pose[0])                         # the start pose is not recorded
    start_view = SPEC.episode(backend, 3, 0, _params(scenes, skip=0))
    assert start_view.actions[0] == -1 and np.array_equal(start_view.video[0], start)


def test_same_seed_same_bytes_any_backend_instance(backend, scenes):
    params = _params(scenes)
    a = SPEC.episode(backend, 7, 42, params)
    SPEC.episode(backend, 8, 42, params)                            # other work in between
    other = EmbeddedBackend(params)
    try:
        b = SPEC.episode(other, 7, 42, params)
    finally:
        other.close()
    assert a.video.tobytes() == b.video.tobytes()
    assert np.array_equal(a.actions, b.actions) and np.array_equal(a.pose, b.pose) and a.seed == b.seed
    c = SPEC.episode(backend, 7, 43, params)
    assert c.actions.tobytes() != a.actions.tobytes() or c.pose.tobytes() != a.pose.tobytes()


def test_revisits_after_known_points(backend):
    cfg = ProtocolConfig(revisit_points=2, min_goal_dist=2.0, max_goal_dist=6.0)
    pol = GoalTourPolicy(cfg, rng(4, "policy"))
    obs = backend.reset(4, scene=0)
    for t in range(150):
        a = pol(t, obs, backend.pose(), backend)
        obs = backend.step(a)
    assert len(pol.points) == 2 and pol.legs >= 3                  # start <-> goal, back and forth
    assert any(np.allclose(pol.goal, p) for p in pol.points)


def test_unusable_scene_moves_episode_to_another(scenes, tmp_path):
    bad = tmp_path / "broken.obj"
    bad.write_text("v 0 0 0\n")                                     # no faces: no navigable area
    params = _params([str(bad), *scenes])
    be = EmbeddedBackend(params)
    try:
        picked = [SPEC.group(i, 1, params) for i in range(12)]
        i = picked.index(0)                                          # an episode whose first draw is the bad scene
        with pytest.warns(SceneWarning, match="broken.obj"):
            ep = SPEC.episode(be, i, 1, params)
        assert ep.extras["scene"] in (1, 2)
        assert [n for n in ep.notes if "broken.obj" in n and "use other scenes" in n]   # for the driver's log
    finally:
        be.close()


def test_gen_names_a_scene_only_its_workers_find_unusable(scenes, tmp_path, ray_cluster, caplog):
    """The driver checks scenes only until one works; one that fails later, in a worker (whose log never
    reaches the user), is named by the driver, once."""
    import logging
    import shutil
    from generators.habitat.cli import main as gen_habitat
    d = tmp_path / "scenes"
    d.mkdir()
    shutil.copy(scenes[0], d / "a.glb")
    (d / "b.glb").write_bytes(open(scenes[1], "rb").read()[:1000])   # a glb's magic, cut short
    params = _params([str(d / "a.glb"), str(d / "b.glb")])
    picked = [SPEC.group(i, 0, params) for i in range(8)]
    n = picked.index(1) + 1                                           # up to an episode that draws b.glb first
    with caplog.at_level(logging.WARNING):
        assert gen_habitat(["--scenes", str(d), "--out", str(tmp_path / "h.zarr"), "--episodes", str(n),
                            "--length", "8", "--resolution", "16", "--workers", "1", "--no-progress"]) == 0
    said = [r.getMessage() for r in caplog.records if "b.glb" in r.getMessage()]
    assert len(said) == 1 and "use other scenes" in said[0], said


def test_spec_flags_params_and_validation(scenes, tmp_path):
    p = argparse.ArgumentParser()
    SPEC.add_args(p)
    args = p.parse_args(["--scenes", str(tmp_path / "none" / "*.glb"), "--resolution", "64"])
    params = SPEC.params(args)
    assert params["scenes"] == [] and params["protocol"]["resolution"] == 64
    with pytest.raises(ValueError, match="no usable scene"):
        SPEC.validate(params, "embedded")
    args = p.parse_args(["--scenes", scenes[0], "--length", "12"])
    params = SPEC.params(args)
    SPEC.validate(params, "embedded")
    cfg = SPEC.store_config(params, "embedded", 10, 0)
    assert cfg.action_names[:4] == ["stop", "move_forward", "turn_left", "turn_right"]
    assert cfg.pose_names == ["x", "y", "z", "yaw"] and cfg.episode_fields == {"scene": "int32"}
    assert (cfg.length, cfg.height, cfg.width) == (12, 128, 128) and cfg.params["pose_units"] == "metres"
    proto = params["protocol"]                                      # the authors' navmesh and frame 0
    navmesh = (proto["agent_height"], proto["agent_radius"], proto["max_climb"], proto["max_slope"])
    assert navmesh == (1.5, 0.01, 0.2, 45)
    assert proto["skip"] == 1 and params["shading"] == "flat"
    assert params["scene_sha256"] == [hashlib.sha256(open(scenes[0], "rb").read()).hexdigest()]
    with pytest.raises(ValueError):
        SPEC.params(p.parse_args(["--scenes", scenes[0], "--max-goal-dist", "0.5"]))


_GL_THREADS = """
import glob
from generators.habitat.render import Renderer
r = Renderer(32, 32, 90.0)
print(r.ctx.info["GL_RENDERER"])
print(sum(open(f).read().startswith("llvmpipe") for f in glob.glob("/proc/self/task/*/comm")))
"""


@pytest.mark.parametrize("preset, threads", [(None, 0), ("2", 2)])
def test_renderer_keeps_gl_on_the_calling_thread_unless_told(preset, threads):
    """llvmpipe's rasteriser threads cost CPU a worker's store writer needs and render no faster at these
    sizes: the renderer turns them off in its process; a user's LP_NUM_THREADS is kept (fresh processes:
    Mesa reads it once per process)."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "LP_NUM_THREADS"}
    if preset is not None:
        env["LP_NUM_THREADS"] = preset
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc: cannot count threads")
    out = subprocess.run([sys.executable, "-c", _GL_THREADS], env=env, capture_output=True, text=True, check=True)
    renderer, count = out.stdout.strip().splitlines()[-2:]
    if "llvmpipe" not in renderer:
        pytest.skip(f"GL is {renderer}, not Mesa llvmpipe")
    assert int(count) == threads
