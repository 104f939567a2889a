"""Minecraft-200k protocol: the paper's exploration policy, discard-and-redraw, the dataset spec."""
import argparse

import numpy as np
import pytest

from generators.minecraft import protocol as P
from generators.minecraft.cli import main as cli_main
from generators.minecraft.spec import SPEC
from generators.seeds import episode_seed

PARAMS = dict(length=12, prob_forward=0.9, action_repeat=5, max_consec_forward=25, max_attempts=5)


def _actions(seed, n=2000, **kw):
    pol = P.ExplorePolicy(seed, **kw)
    return np.array([pol(t) for t in range(n)])


def _longest_run(a, value):
    best = run = 0
    for x in a:
        run = run + 1 if x == value else 0
        best = max(best, run)
    return best


def test_policy_noop_first_then_repeats_every_five_steps():
    a = _actions(3, n=2001)
    assert a[0] == P.NOOP and set(a[1:]) <= {P.FORWARD, P.LEFT, P.RIGHT}
    blocks = a[1:].reshape(-1, 5)          # samples at t = 1, 6, 11, ... hold for 5 steps
    assert (blocks == blocks[:, :1]).all()


def test_policy_frequencies_and_forward_cap():
    a = _actions(5, n=20001, max_consec_forward=0)[1:]
    assert abs((a == P.FORWARD).mean() - 0.9) < 0.02
    assert abs((a == P.LEFT).mean() - (a == P.RIGHT).mean()) < 0.02
    assert _longest_run(a, P.FORWARD) > 25                  # uncapped runs get long at p = 0.9
    capped = _actions(5, n=20001, max_consec_forward=25)[1:]
    assert _longest_run(capped, P.FORWARD) == 25            # the paper's agent must turn after 25 steps
    assert set(_actions(1, prob_forward=0.0)[1:]) == {P.LEFT, P.RIGHT}
    assert set(_actions(1, prob_forward=1.0, max_consec_forward=0)[1:]) == {P.FORWARD}


def test_policy_is_a_function_of_the_seed():
    assert (_actions(11) == _actions(11)).all()
    assert (_actions(11) != _actions(12)).any()


class DyingBackend:
    """Test double: a blank simulator whose episodes end after 3 steps for the seeds in `bad`."""
    name, version = "embedded", "test"

    def __init__(self, bad):
        self.bad, self.resets, self.done = set(bad), [], False

    def reset(self, seed, **_):
        self.resets.append(seed)
        self.seed, self.t, self.done = seed, 0, False
        return np.zeros((4, 4, 3), np.uint8)

    def step(self, action):
        self.t += 1
        self.done = self.seed in self.bad and self.t >= 3
        return np.full((4, 4, 3), self.t, np.uint8)

    def pose(self):
        return np.array([0, 0, 0, 0, 0], np.float32)

    def layout(self):
        return None

    def close(self):
        pass


def test_discarded_episodes_are_redrawn_with_the_next_seed():
    bad = [episode_seed(7, 4, 0), episode_seed(7, 4, 1)]
    b = DyingBackend(bad)
    ep = SPEC.episode(b, 4, 7, PARAMS)
    assert b.resets == [episode_seed(7, 4, k) for k in range(3)]
    assert ep.seed == episode_seed(7, 4, 2)
    assert ep.video.shape == (12, 4, 4, 3) and ep.actions.dtype == np.int32 and ep.pose.shape == (12, 5)
    assert ep.actions[0] == P.NOOP
    # the redrawn episode is exactly what attempt 2 gives on its own
    again = SPEC.episode(DyingBackend([]), 4, 7, PARAMS)
    assert again.seed == episode_seed(7, 4, 0)


def test_all_attempts_ending_early_is_an_error():
    b = DyingBackend([episode_seed(1, 0, k) for k in range(5)])
    with pytest.raises(RuntimeError, match="all 5 attempts"):
        SPEC.episode(b, 0, 1, PARAMS)


def _params(**over):
    p = argparse.ArgumentParser()
    SPEC.add_args(p)
    return SPEC.params(p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in over.items()]))


def test_spec_defaults_and_store_config():
    params = _params()
    assert (params["length"], params["resolution"], params["prob_forward"], params["action_repeat"]) == (300, 128, 0.9, 5)
    assert params["pose_units"] == "minecraft blocks" and params["turn_degrees"] == 20.0
    SPEC.validate(params, "embedded")
    cfg = SPEC.store_config(params, "embedded", 200000, 0)
    assert (cfg.dataset, cfg.length, cfg.height, cfg.width) == ("minecraft", 300, 128, 128)
    assert cfg.action_names == ["noop", "forward_jump", "turn_left", "turn_right"]
    assert cfg.pose_names[:4] == ["x", "y", "z", "yaw"] and cfg.pose_dim == 5
    assert SPEC.default_episodes == 200000 and SPEC.real_backend == "minerl"


@pytest.mark.parametrize("over, backend", [({"prob_forward": 1.5}, "embedded"), ({"action_repeat": 0}, "embedded"),
                                            ({"length": 0}, "embedded"), ({"resolution": 4}, "embedded"),
                                            ({"biome_id": 1}, "embedded")])
def test_spec_rejects_bad_settings(over, backend):
    with pytest.raises(ValueError):
        SPEC.validate(_params(**over), backend)


def test_other_biomes_are_allowed_for_minerl_only():
    SPEC.validate(_params(biome_id=1), "minerl")


def test_cli_bad_flag_is_a_one_line_error(tmp_path, capsys):
    code = cli_main(["--out", str(tmp_path / "mc.zarr"), "--episodes", "1", "--backend", "embedded",
                     "--prob-forward", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "prob-forward" in err and "Traceback" not in err
