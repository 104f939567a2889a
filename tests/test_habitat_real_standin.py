"""generators/habitat/real.py against the API-faithful habitat_sim stand-in (tests/standins/habitat_sim)."""
import math
import os
import sys

import numpy as np
import pytest

STANDINS = os.path.join(os.path.dirname(__file__), "standins")


@pytest.fixture(scope="module")
def hs():
    sys.path.insert(0, STANDINS)
    sys.modules.pop("habitat_sim", None)
    import habitat_sim
    assert habitat_sim.__version__.endswith("standin")
    yield habitat_sim
    sys.path.remove(STANDINS)
    for name in [m for m in sys.modules if m == "habitat_sim" or m.startswith("habitat_sim.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from generators.habitat.scenes import main as make_scenes
    d = tmp_path_factory.mktemp("real")
    assert make_scenes(["--out", str(d), "--count", "2", "--seed", "1", "--texture-px", "8"]) == 0
    nonav = d / "nonav_room.glb"
    nonav.write_bytes((d / "scene_00000.glb").read_bytes())
    return [str(d / "scene_00000.glb"), str(d / "scene_00001.glb"), str(nonav)]


def _params(scenes):
    from generators.habitat.protocol import ProtocolConfig
    return {"scenes": scenes, "scene_dataset_config": "", "protocol": ProtocolConfig(length=30, resolution=24).to_json(),
            "cell_size": 0.1, "shading": "lambert", "up_axis": "auto"}


def test_auto_picks_habitat_sim_when_importable(hs):
    from generators.backend import pick_backend
    from generators.habitat.spec import SPEC
    assert pick_backend("auto", SPEC.real_backend, SPEC.real_module, SPEC.install_hint) == "habitat_sim"
    assert SPEC.backend_version("habitat_sim", {}) == hs.__version__


def test_configuration_matches_protocol(hs, scenes):
    from generators.habitat.real import HabitatSimBackend
    be = HabitatSimBackend(_params(scenes))
    cfg, settings = be.configuration(scenes[0])
    cam = cfg.agents[0].sensor_specifications[0]
    assert cam.resolution == [24, 24] and cam.hfov == 90.0 and cam.position == [0.0, 1.25, 0.0]
    assert cam.sensor_type == hs.SensorType.COLOR and cam.sensor_subtype == hs.SensorSubType.PINHOLE
    space = cfg.agents[0].action_space
    assert space["move_forward"].actuation.amount == 0.25 and space["turn_left"].actuation.amount == 10.0
    assert (cfg.agents[0].height, cfg.agents[0].radius) == (1.5, 0.01)
    assert cfg.sim_cfg.scene_id == scenes[0] and cfg.sim_cfg.allow_sliding
    # The navmesh the collector ran on: habitat-sim 0.2.1 rebuilds the baked one for the 0.01 m agent with
    # Recast's defaults (1.5 m tall, 0.2 m climb, 45 degree slope) and the agent's radius.
    expect = hs.nav.NavMeshSettings()
    expect.set_defaults()
    expect.agent_height, expect.agent_radius, expect.agent_max_climb, expect.agent_max_slope = 1.5, 0.01, 0.2, 45.0
    assert settings == expect
    with pytest.raises(AttributeError):                              # a misspelt field fails as on the real class
        settings.max_climb = 0.5


def test_navmesh_rebuilt_with_protocol_settings(hs, scenes):
    """habitat builds a navmesh for the agent's body when given none; the adapter must replace it."""
    from generators.habitat.real import HabitatSimBackend
    be = HabitatSimBackend(_params(scenes))
    try:
        be.load_scene(0)
        s = be.sim.pathfinder.nav_mesh_settings
        assert (s.agent_height, s.agent_radius, s.agent_max_climb, s.agent_max_slope) == (1.5, 0.01, 0.2, 45.0)
    finally:
        be.close()


def test_reset_step_pose_and_follower(hs, scenes):
    from generators.habitat.protocol import MOVE_FORWARD, STOP, TURN_LEFT, TURN_RIGHT, ProtocolConfig, pick_goal
    from generators.habitat.real import HabitatSimBackend
    from generators.seeds import rng
    be = HabitatSimBackend(_params(scenes))
    try:
        obs = be.reset(3, scene=1)
        assert obs.shape == (24, 24, 3) and obs.dtype == np.uint8
        p0 = be.pose()
        be.step(TURN_LEFT)
        assert (be.pose()[3] - p0[3] + 180) % 360 - 180 == pytest.approx(10, abs=1e-3)
        be.step(TURN_RIGHT)
        be.step(MOVE_FORWARD)
        moved = be.pose() - p0
        assert np.hypot(moved[0], moved[2]) <= 0.25 + 1e-5
        with pytest.raises(ValueError):
            be.step(4)
        start = be.agent_position()
        goal = pick_goal(be, start, rng(0, "t"), ProtocolConfig(max_goal_dist=6.0))
        for target in (goal, start):
            for _ in range(300):
                a = be.next_action(target)
                if a == STOP:
                    break
                be.step(a)
            assert a == STOP
            assert be.geodesic_distances(target, be.agent_position()[None])[0] < 0.2
        assert be.next_action(np.array([1e3, 0.0, 1e3])) == STOP     # no path: habitat-lab stops
    finally:
        be.close()


def test_episodes_deterministic_and_bad_scene_skipped(hs, scenes):
    from generators.habitat.scenes import SceneWarning
    from generators.habitat.spec import SPEC
    params = _params(scenes)
    be = SPEC.make_backend("habitat_sim", params)
    try:
        a = SPEC.episode(be, 2, 9, params)
        b = SPEC.episode(be, 2, 9, params)
        assert a.video.shape == (30, 24, 24, 3) and a.pose.shape == (30, 4) and a.actions.shape == (30,)
        assert a.video.tobytes() == b.video.tobytes() and np.array_equal(a.pose, b.pose)
        assert set(a.actions.tolist()) <= {1, 2, 3}          # frame 0 follows the first action: no -1
        i = [SPEC.group(k, 9, params) for k in range(30)].index(2)       # first draw: the navmesh-less scene
        with pytest.warns(SceneWarning, match="nonav_room"):
            ep = SPEC.episode(be, i, 9, params)
        assert ep.extras["scene"] in (0, 1)
    finally:
        be.close()


def test_yaw_from_coeffs_roundtrip():
    from generators.habitat.real import yaw_from_coeffs
    for deg in (-170.0, -45.0, 0.0, 10.0, 135.0):
        h = math.radians(deg) / 2
        assert yaw_from_coeffs([0.0, math.sin(h), 0.0, math.cos(h)]) == pytest.approx(deg, abs=1e-9)
