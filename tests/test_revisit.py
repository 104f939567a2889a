"""Revisit detection on a synthetic trajectory with planted revisits; per-class scores."""
import numpy as np
import pytest
import torch

from teco.revisit import RevisitStats, match_revisits, tolerances, yaw_difference

torch.set_num_threads(1)


def test_yaw_difference_wraps():
    assert yaw_difference(359.0, 1.0) == pytest.approx(2.0)
    assert yaw_difference(-170.0, 170.0) == pytest.approx(20.0)
    assert yaw_difference(90.0, 270.0) == pytest.approx(180.0)
    assert yaw_difference(720.0 + 5, 0.0) == pytest.approx(5.0)


def _pose(x, y, yaw, z=0.0):
    return [x, y, z, yaw, 0.0]     # an extra trailing pose channel must be ignored


def test_planted_revisits_found_exactly():
    # conditioning: a straight corridor, 100 units apart, heading east (yaw 0) then one frame heading ~north
    cond = np.array([_pose(100.0 * i, 0.0, 1.0) for i in range(10)] + [_pose(0.0, 500.0, 90.0)], np.float32)
    pred = np.array([
        _pose(2000.0, 0.0, 0.0),        # 0: far away -> novel
        _pose(310.0, 5.0, 359.0),       # 1: near cond 3 (dist ~11), yaw 359 vs 1 -> 2 deg: revisit of 3
        _pose(300.0, 0.0, 180.0),       # 2: right place, facing the other way -> novel
        _pose(0.0, 520.0, 105.0),       # 3: near cond 10, yaw diff 15 -> revisit of 10
        _pose(0.0, 526.0, 90.0),        # 4: 26 units away (radius 25) -> novel
        _pose(650.0, 0.0, 10.0),        # 5: halfway between 6 and 7 (50 away) -> novel
        _pose(690.0, 0.0, 21.0),        # 6: near cond 7 but yaw diff 20 vs tol 20 -> revisit of 7 (inclusive)
        _pose(690.0, 0.0, 22.0),        # 7: yaw diff 21 -> novel
        _pose(900.0, 0.0, -358.0),      # 8: yaw -358 == 2 -> revisit of 9
    ], np.float32)
    m = match_revisits(cond, pred, radius=25.0, yaw_tol=20.0)
    assert m.tolist() == [-1, 3, -1, 10, -1, -1, 7, -1, 9]


def test_closest_then_latest_wins_and_nan_never_matches():
    cond = np.array([_pose(0, 0, 0), _pose(10, 0, 0), _pose(4, 0, 0), _pose(4, 0, 0), _pose(np.nan, 0, 0)], np.float32)
    pred = np.array([_pose(5, 0, 0), _pose(np.nan, np.nan, np.nan)], np.float32)
    assert match_revisits(cond, pred, radius=25.0, yaw_tol=20.0).tolist() == [3, -1]
    with pytest.raises(ValueError, match="P >= 4"):
        match_revisits(cond[:, :3], pred[:, :3], 1.0, 1.0)


def test_tolerances_come_from_the_store_params():
    from generators import registry
    for name, want in [("dmlab", (25.0, 20.0)), ("minecraft", (1.0, 20.0)), ("habitat", (0.25, 15.0))]:
        assert tolerances(registry.get(name).facts()) == want
    habitat = {"revisit": {"radius": 0.25, "yaw": 15.0}}
    assert tolerances(habitat, radius=0.5) == (0.5, 15.0)
    assert tolerances({}, 2.0, 10.0) == (2.0, 10.0)           # a store that records none: both flags
    with pytest.raises(ValueError, match="records no revisit tolerances"):
        tolerances({})
    with pytest.raises(ValueError, match="records no revisit tolerances"):
        tolerances({}, radius=2.0)
    with pytest.raises(ValueError, match="radius must be"):
        tolerances(habitat, radius=0.0)


def test_revisit_stats_scores_each_class():
    rng = np.random.default_rng(0)
    cond_video = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    truth = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    pred = truth.copy()
    pred[1] = cond_video[2]          # frame 1 revisits cond 2 and the model redraws it exactly
    matches = np.array([-1, 2, -1, 0])
    stats = RevisitStats()
    stats.add(pred, truth, cond_video, matches)
    s = stats.summary()
    assert (s["revisited_frames"], s["novel_frames"], s["examples"]) == (2, 2, 1)
    assert s["novel"]["ssim_vs_truth"] == pytest.approx(1.0, abs=1e-6)       # novel frames equal the truth
    assert s["novel"]["psnr_vs_truth"] == pytest.approx(100.0)               # +inf capped
    # revisited: frame 1 equals its earlier frame (inf -> 100 dB), frame 3 is unrelated noise (~8 dB)
    assert 50.0 < s["revisited"]["psnr_vs_earlier"] < 60.0
    assert s["revisited"]["ssim_vs_truth"] < 0.9
    assert s["revisited"]["truth_psnr_vs_earlier"] < 20.0
    empty = RevisitStats().summary()
    assert empty["revisited_frames"] == 0 and empty["revisited"]["psnr_vs_truth"] is None


def _walk(places):
    """Poses (T, 4) from a list of (x, yaw) places, y = z = 0."""
    return np.array([[x, 0.0, 0.0, yaw] for x, yaw in places], np.float64)


def test_last_seen_gaps_any_and_after_leaving():
    from teco.revisit import last_seen_gaps
    # A A B C D A A: frame 5 returns to A last seen at frame 1 (gap 4), frame 6 stays there (gap 1)
    pose = _walk([(0, 0), (5, 10), (500, 0), (900, 0), (1300, 0), (0, 350), (0, 0)])
    assert last_seen_gaps(pose, 25.0, 20.0).tolist() == [-1, 1, -1, -1, -1, 4, 1]
    # after leaving: frame 1 never left A; frame 6's stay began at 5, the visit before it ended at 1
    assert last_seen_gaps(pose, 25.0, 20.0, after_leaving=True).tolist() == [-1, -1, -1, -1, -1, 4, 5]
    # heading matters: the same spot facing the other way is another view
    turned = _walk([(0, 0), (0, 180), (0, 0)])
    assert last_seen_gaps(turned, 25.0, 20.0).tolist() == [-1, -1, 2]
    with pytest.raises(ValueError):
        last_seen_gaps(np.zeros((3, 3)), 25.0, 20.0)


def test_gap_cohorts_and_revisit_signal():
    from teco.revisit import gap_cohorts, revisit_signal
    gaps = np.array([-1, 1, 16, 17, 30, 47, 48, 200])
    c = gap_cohorts(gaps, 16, 47)
    assert c["memory"].tolist() == [False, False, False, True, True, True, False, False]
    assert c["recent"].tolist() == [False, True, True, False, False, False, False, False]
    assert c["novel"].tolist() == [True] + [False] * 7
    assert gap_cohorts(gaps, 16, None)["memory"].tolist() == [False, False, False, True, True, True, True, True]
    assert not gap_cohorts(gaps, 16, 16)["memory"].any()   # the long model sees no further than the short
    with pytest.raises(ValueError):
        gap_cohorts(gaps, -1, 16)
    pose = _walk([(0, 0), (5, 10), (500, 0), (900, 0), (1300, 0), (0, 350), (0, 0)])
    s = revisit_signal([pose, pose], 25.0, 20.0, bins=((1, 1), (2, 4), (5, None)))
    assert s["episodes"] == 2 and s["frames"] == 14
    assert s["any"] == {"1-1": pytest.approx(2 / 7), "2-4": pytest.approx(1 / 7), "5-inf": 0.0,
                        "never_seen": pytest.approx(4 / 7)}
    assert s["after_leaving"]["5-inf"] == pytest.approx(1 / 7)
