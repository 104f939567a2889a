"""The MineRL adapter against the API-faithful stand-in package in tests/standins/minerl."""
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

STANDINS = str(Path(__file__).parent / "standins")


@pytest.fixture(scope="module")
def mc():
    """generators.minecraft.real and spec imported with the stand-in minerl on the path."""
    sys.path.insert(0, STANDINS)
    saved = {k: v for k, v in sys.modules.items() if k == "minerl" or k.startswith("minerl.")}
    for k in saved:
        del sys.modules[k]
    import generators.minecraft.real as real
    real = importlib.reload(real)
    yield real
    sys.path.remove(STANDINS)
    for k in [k for k in sys.modules if k == "minerl" or k.startswith("minerl.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def _params(**over):
    p = dict(length=20, resolution=16, prob_forward=0.9, action_repeat=5, max_consec_forward=50,
             turn_degrees=20.0, biome_id=6, sea_level=1, turn_jump=True, max_attempts=10,
             pose_units="minecraft blocks")
    p.update(over)
    return p


# The collector's generator options that differ from Minecraft 1.11's defaults (env.py at 62919a4).
COLLECTOR_CHANGES = {"seaLevel": 1, "useDungeons": False, "useStrongholds": False, "useVillages": False,
                     "useMineShafts": False, "useTemples": False, "useMonuments": False, "useMansions": False,
                     "useRavines": False, "useWaterLakes": False, "useLavaLakes": False, "fixedBiome": 6,
                     "biomeSize": 8, "riverSize": 1}


def test_env_spec_is_the_collectors_simple_explore_mission(mc):
    from minerl.herobraine.env_specs.simple_embodiment import SimpleEmbodimentEnvSpec, SIMPLE_KEYBOARD_ACTION
    from minerl.herobraine.hero import handlers
    from minerl.herobraine.env_spec import GYM_REGISTRY
    spec = mc.make_env_spec(128, 6)
    assert isinstance(spec, SimpleEmbodimentEnvSpec) and spec.name == "SimpleExplore-v0"
    assert "SimpleExplore-v0" in GYM_REGISTRY
    mc.make_env_spec(128, 6)                              # a second backend in the process must not re-register
    (gen,) = spec.server_world_generators
    assert isinstance(gen, handlers.DefaultWorldGenerator) and gen.force_reset is True
    options = json.loads(gen.generator_options)
    assert {k: options[k] for k in COLLECTOR_CHANGES} == COLLECTOR_CHANGES
    assert options["useCaves"] is True and options["useLavaOceans"] is False and len(options) == 79
    assert options == mc.generator_options(6, 1)
    assert json.loads(mc.make_env_spec(128, 3, sea_level=63).server_world_generators[0].generator_options)[
        "seaLevel"] == 63
    conds = {type(c): c for c in spec.server_initial_conditions}
    assert conds[handlers.TimeInitialCondition].allow_passage_of_time is False
    assert conds[handlers.SpawningInitialCondition].allow_spawning is True
    assert spec.server_quit_producers == [] and spec.rewardables == [] and spec.agent_handlers == []
    assert set(spec.action_space.spaces) == set(SIMPLE_KEYBOARD_ACTION) | {"camera"}     # as the collector
    assert set(spec.observation_space.spaces) == {"pov", "location_stats"}
    assert spec.observation_space.spaces["pov"].shape == (128, 128, 3)


def test_step_loop_sends_minerl_action_dicts_and_reads_the_pose(mc):
    b = mc.MineRLBackend(resolution=16)
    obs = b.reset(42)
    assert obs.shape == (16, 16, 3) and obs.dtype == np.uint8 and b.env.seeds == [42]
    p0 = b.pose()
    assert p0.dtype == np.float32 and p0.shape == (5,) and -180 <= p0[3] < 180
    b.step(2)
    a = b.env.actions[-1]
    assert a["forward"] == 0 and a["jump"] == 1 and list(a["camera"]) == [0.0, -20.0]      # left = jump + yaw -20
    assert b.pose()[3] == np.float32((p0[3] + 180 - 20) % 360 - 180)
    assert b.pose()[1] == pytest.approx(p0[1] + 0.42)                                         # the turn jumps
    b.step(3)
    a = b.env.actions[-1]
    assert a["jump"] == 1 and list(a["camera"]) == [0.0, 20.0] and b.pose()[3] == p0[3]
    assert all(a[k] == 0 for k in ("back", "left", "right", "sneak", "sprint", "attack"))
    b.step(1)
    assert b.env.actions[-1]["forward"] == 1 and b.env.actions[-1]["jump"] == 1
    heading = np.radians(p0[3])
    d = b.pose()[[0, 2]] - p0[[0, 2]]
    assert d[0] * -np.sin(heading) + d[1] * np.cos(heading) == pytest.approx(0.2158, abs=1e-4)
    b.step(0)
    a = b.env.actions[-1]
    assert a["forward"] == 0 and a["jump"] == 0 and list(a["camera"]) == [0.0, 0.0]
    with pytest.raises(ValueError):
        b.step(9)
    b.close()
    assert b.env.closed


def test_episodes_ended_by_minecraft_are_redrawn(mc):
    from minerl.env._singleagent import dies_at
    from generators.minecraft.spec import SPEC
    from generators.seeds import episode_seed
    params = _params()
    b = SPEC.make_backend("minerl", params)
    assert b.version.startswith("minerl-") and SPEC.store_config(params, "minerl", 10, 0).backend_version == b.version
    for index in range(6):
        ep = SPEC.episode(b, index, 5, params)
        first_ok = next(k for k in range(10) if dies_at(episode_seed(5, index, k)) > params["length"])
        assert ep.seed == episode_seed(5, index, first_ok)
        assert ep.video.shape == (20, 16, 16, 3) and ep.actions[0] == -1 and ep.pose.shape == (20, 5)
    assert any(dies_at(s) < 20 for s in b.env.seeds)           # some episodes really were discarded


def test_frame_zero_is_the_reset_pov_and_turning_frames_bob(mc):
    from generators.minecraft.spec import SPEC
    params = _params(length=120)
    b = SPEC.make_backend("minerl", params)
    ep = SPEC.episode(b, 0, 11, params)
    assert b.env.t == 119                                     # no action is executed to produce frame 0
    b.env.seed(ep.seed)
    assert (ep.video[0] == b.env.reset()["pov"]).all() and not (ep.video[1] == ep.video[0]).all()
    turning = np.isin(ep.actions, [2, 3])
    assert turning.any() and (ep.pose[turning, 1] > 63.0).any()     # eye height changes while turning


def test_turns_can_stay_on_the_ground(mc):
    b = mc.MineRLBackend(resolution=16, turn_jump=False)
    b.reset(3)
    y0 = b.pose()[1]
    b.step(2)
    assert b.env.actions[-1]["jump"] == 0 and b.pose()[1] == y0


def test_auto_backend_picks_minerl_when_importable(mc):
    from generators.backend import pick_backend
    from generators.minecraft.spec import SPEC
    assert pick_backend("auto", SPEC.real_backend, SPEC.real_module, SPEC.install_hint) == "minerl"
