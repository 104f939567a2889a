"""Minecraft-200k protocol: the collector's exploration policy, frame 0 = reset view, discard-and-redraw, the spec."""
import argparse

import numpy as np
import pytest

from generators.minecraft import protocol as P
from generators.minecraft.cli import main as cli_main
from generators.minecraft.spec import SPEC
from generators.rollout import EpisodeDiscarded, NO_ACTION
from generators.seeds import episode_seed

PARAMS = dict(length=12, prob_forward=0.9, action_repeat=5, max_consec_forward=50, max_attempts=5)


def _actions(seed, n=2000, **kw):
    pol = P.ExplorePolicy(seed, **kw)
    return np.array([pol(t) for t in range(n)])


def _longest_run(a, value):
    best = run = 0
    for x in a:
        run = run + 1 if x == value else 0
        best = max(best, run)
    return best


def test_policy_samples_at_t0_and_every_five_steps():
    a = _actions(3, n=2000)
    assert set(a) <= {P.FORWARD, P.LEFT, P.RIGHT}            # no no-op: nothing is executed for frame 0
    blocks = a.reshape(-1, 5)                                   # samples at t = 0, 5, 10, ... hold for 5 steps
    assert (blocks == blocks[:, :1]).all()
    assert (blocks[1:, 0] != blocks[:-1, 0]).any()             # and do change


def test_policy_frequencies_and_forward_cap_of_fifty():
    a = _actions(5, n=20000, max_consec_forward=0)
    assert abs((a == P.FORWARD).mean() - 0.9) < 0.02
    assert abs((a == P.LEFT).mean() - (a == P.RIGHT).mean()) < 0.02
    assert _longest_run(a, P.FORWARD) > 50                  # uncapped runs get long at p = 0.9
    capped = _actions(5, n=20000)                            # the defaults: p = 0.9, repeat 5, cap 50
    assert (P.PROB_FORWARD, P.ACTION_REPEAT, P.MAX_CONSEC_FORWARD) == (0.9, 5, 50)
    assert _longest_run(capped, P.FORWARD) == 50            # the collector's agent must turn after 50 steps
    runs, run = [], 0
    for x in capped:                                        # every maximal forward run of 50 is followed by a turn
        if x == P.FORWARD:
            run += 1
        else:
            runs.append(run)
            run = 0
    # 5-step blocks: E[forward blocks per run] = sum_{k=1..10} 0.9^k = 5.86, E[turn blocks] = 1/0.9 => 84% forward
    assert runs.count(50) > 20 and abs((capped == P.FORWARD).mean() - 0.841) < 0.02
    assert _longest_run(_actions(5, n=2000, max_consec_forward=25), P.FORWARD) == 25
    assert set(_actions(1, prob_forward=0.0)) == {P.LEFT, P.RIGHT}
    assert set(_actions(1, prob_forward=1.0, max_consec_forward=0)) == {P.FORWARD}


def test_policy_is_a_function_of_the_seed():
    assert (_actions(11) == _actions(11)).all()
    assert (_actions(11) != _actions(12)).any()


class DyingBackend:
    """Test double: a blank simulator whose episodes end after 3 steps for the seeds in `bad`."""
    name, version = "embedded", "test"

    def __init__(self, bad, at=3):
        self.bad, self.at, self.resets, self.done = set(bad), at, [], False

    def reset(self, seed, **_):
        self.resets.append(seed)
        self.seed, self.t, self.done = seed, 0, False
        return np.zeros((4, 4, 3), np.uint8)

    def step(self, action):
        self.t += 1
        self.done = self.seed in self.bad and self.t >= self.at
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
    assert ep.actions[0] == NO_ACTION
    # the redrawn episode is exactly what attempt 2 gives on its own
    again = SPEC.episode(DyingBackend([]), 4, 7, PARAMS)
    assert again.seed == episode_seed(7, 4, 0)


def test_an_end_on_the_last_step_keeps_the_episode():
    """The collector discards an episode only when `done` comes before its last step (`t < traj_length - 1`)."""
    steps = PARAMS["length"] - 1                           # the reset view, then the recorded steps
    every = [episode_seed(7, 4, k) for k in range(3)]
    b = DyingBackend(every, at=steps)
    ep = SPEC.episode(b, 4, 7, PARAMS)
    assert b.resets == every[:1] and ep.seed == every[0] and b.done and int(ep.video[-1, 0, 0, 0]) == steps
    with pytest.raises(EpisodeDiscarded):
        SPEC.episode(DyingBackend(every, at=steps - 1), 4, 7, {**PARAMS, "max_attempts": 3})


class LoggingBackend(DyingBackend):
    """Logs every executed action; frame k shows k steps taken."""

    def __init__(self):
        super().__init__([])
        self.steps = []

    def step(self, action):
        self.steps.append(int(action))
        return super().step(action)


def test_frame_zero_is_the_reset_view_and_no_action_is_executed_for_it():
    b = LoggingBackend()
    ep = SPEC.episode(b, 2, 9, PARAMS)
    assert len(b.steps) == PARAMS["length"] - 1                     # 1 reset view + 11 steps
    assert (ep.video[:, 0, 0, 0] == np.arange(PARAMS["length"])).all()   # frame k comes after k steps
    assert ep.actions[0] == NO_ACTION and list(ep.actions[1:]) == b.steps
    assert P.NOOP not in b.steps
    pol = P.ExplorePolicy(ep.seed)                                  # actions[t] is the policy's choice at raw step t-1
    assert list(ep.actions[1:]) == [pol(t) for t in range(PARAMS["length"] - 1)]


def test_all_attempts_ending_early_is_an_error():
    b = DyingBackend([episode_seed(1, 0, k) for k in range(5)])
    with pytest.raises(RuntimeError, match="all 5 attempts"):
        SPEC.episode(b, 0, 1, PARAMS)


def _params(**over):
    p = argparse.ArgumentParser()
    SPEC.add_args(p)
    flags = [f"--{k.replace('_', '-')}" + ("" if v == "" else f"={v}") for k, v in over.items()]
    return SPEC.params(p.parse_args(flags))


def test_spec_defaults_and_store_config():
    params = _params()
    assert (params["length"], params["resolution"], params["prob_forward"], params["action_repeat"],
            params["max_consec_forward"]) == (301, 128, 0.9, 5, 50)
    assert (params["sea_level"], params["biome_id"], params["turn_jump"]) == (1, 6, True)
    assert params["turn_degrees"] == 20.0
    SPEC.validate(params, "embedded")
    cfg = SPEC.store_config(params, "embedded", 200000, 0)
    assert cfg.params["pose_units"] == "minecraft blocks"                  # recorded with the dataset's facts
    assert (cfg.dataset, cfg.length, cfg.height, cfg.width) == ("minecraft", 301, 128, 128)
    assert cfg.action_names == ["noop", "forward_jump", "left_jump", "right_jump"]
    assert _params(no_turn_jump="")["turn_jump"] is False
    assert cfg.pose_names[:4] == ["x", "y", "z", "yaw"] and cfg.pose_dim == 5
    assert SPEC.default_episodes == 200000 and SPEC.real_backend == "minerl"


@pytest.mark.parametrize("over, backend", [({"prob_forward": 1.5}, "embedded"), ({"action_repeat": 0}, "embedded"),
                                            ({"length": 0}, "embedded"), ({"resolution": 4}, "embedded"),
                                            ({"biome_id": 1}, "embedded"), ({"sea_level": 0}, "embedded"),
                                            ({"sea_level": 80}, "embedded"), ({"sea_level": 256}, "minerl")])
def test_spec_rejects_bad_settings(over, backend):
    with pytest.raises(ValueError):
        SPEC.validate(_params(**over), backend)


def test_other_biomes_and_high_seas_are_allowed_for_minerl_only():
    SPEC.validate(_params(biome_id=1), "minerl")
    SPEC.validate(_params(sea_level=120), "minerl")
    SPEC.validate(_params(sea_level=63), "embedded")


def test_embedded_sea_level_bound_is_the_worlds_top():
    from generators.minecraft import spec, world
    assert spec.MAX_SEA_LEVEL["embedded"] == world.Y0 + world.HEIGHT - 1


def test_cli_bad_flag_is_a_one_line_error(tmp_path, capsys):
    code = cli_main(["--out", str(tmp_path / "mc.zarr"), "--episodes", "1", "--backend", "embedded",
                     "--prob-forward", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "prob-forward" in err and "Traceback" not in err
