"""One action convention everywhere (storage/FORMAT.md): actions[t] is the action that produced frame t, -1 for
the reset view. The episodes here pan with the action, so the frames themselves say which action produced them:
an off-by-one in the rollout, the runner's store path or the importer (any of the authors' three layouts) fails.
(The model side is tested with the model.)"""
import numpy as np
import pytest

from generators.registry import release
from generators.rollout import NO_ACTION, rollout
from generators.synthetic import MOVES, SPEC, PanBackend
from storage import StoreReader
from storage.importer import import_episodes

SIZE, STEP, T = 32, 4, 24


def decode(prev: np.ndarray, cur: np.ndarray, step: int = STEP) -> int:
    """The pan (synthetic action id) that turns view `prev` into view `cur`: the best-matching shift. Tolerant of
    lossy video (mean error, not equality); asserts the best shift is clearly better than the others."""
    m = 2 * step
    errs = []
    for d0, d1 in MOVES * step:
        a = cur[m:-m, m:-m].astype(np.int32)
        b = prev[m + d0:SIZE - m + d0, m + d1:SIZE - m + d1].astype(np.int32)
        errs.append(np.abs(a - b).mean())
    order = np.argsort(errs)
    assert errs[order[1]] > 1.5 * errs[order[0]] + 2, f"ambiguous pan: errors {np.round(errs, 1)}"
    return int(order[0])


class NoStayPolicy:
    """Left, right or up, never 'stay' (id 0): every step changes the view, and the ids (1..3) are valid in all
    three paper datasets' action spaces, so the same episode can be imported as any of them."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def __call__(self, t, obs, pose, backend):
        return int(self.rng.integers(1, 4))


def pan_episode(seed: int, skip: int):
    be = PanBackend(SIZE, world=64, step=STEP)
    ep = rollout(be, NoStayPolicy(seed), seed, T, skip=skip)
    start = be.reset(seed)          # the view at reset, for the frame-0 checks
    return ep, start


def assert_convention(video, actions, start=None, step=STEP):
    """actions[t] produced frame t for t >= 1; given the reset view `start`, actions[0] produced frame 0 from it
    (or is -1 and frame 0 is that view)."""
    for t in range(1, len(video)):
        assert decode(video[t - 1], video[t], step) == actions[t], f"frame {t}"
    if start is None:
        return
    if actions[0] == NO_ACTION:
        assert decode(start, video[0], step) == 0                                   # the reset view itself ("stay")
    else:
        assert decode(start, video[0], step) == actions[0]


@pytest.mark.parametrize("skip", [0, 1, 3])
def test_rollout_records_the_action_that_produced_each_frame(skip):
    ep, start = pan_episode(5, skip)
    assert ep.video.shape == (T, SIZE, SIZE, 3) and (ep.actions[0] == NO_ACTION) == (skip == 0)
    if skip <= 1:
        assert_convention(ep.video, ep.actions, start)
    else:
        assert_convention(ep.video[1:], ep.actions[1:])
    for t in range(1, T):                                           # pose[t] is the pose at frame t
        d = (ep.pose[t] - ep.pose[t - 1])[[2, 0]]
        assert np.array_equal((d + 32) % 64 - 32, MOVES[ep.actions[t]] * STEP)


def test_decode_catches_an_off_by_one():
    """The check above must fail for the superseded convention (actions[t] taken after frame t)."""
    ep, start = pan_episode(6, 0)
    after = np.r_[ep.actions[1:], 1]
    with pytest.raises(AssertionError):
        assert_convention(ep.video, after, start)


def test_generated_store_follows_the_convention(ray_cluster, tmp_path):
    from generators.runner import RunOptions, generate
    params = {"length": T, "resolution": SIZE, "skip": 2, "pose_units": "pixels"}
    url = str(tmp_path / "s.zarr")
    rep = generate(SPEC, params, RunOptions(out=url, episodes=2, workers=1, progress=False))
    assert rep.generated == 2 and not rep.failed
    r = StoreReader(url)
    for i in range(2):
        video, actions = r.read("video", i), r.read("actions", i)
        assert actions[0] != NO_ACTION                              # skipped steps precede frame 0
        assert_convention(video, actions, step=2)                  # the synthetic dataset pans 2 px
        be = PanBackend(SIZE, world=max(64, 2 * SIZE))                # replay from frame 0's pose: the stored
        be.reset(int(r.read("seed", i)))                              # actions remake every later frame
        pose0 = r.read("pose", i)[0]
        be.pos = np.array([pose0[2], pose0[0]], int)
        replay = [be.obs()] + [be.step(int(a)) for a in actions[1:]]
        assert np.array_equal(np.stack(replay), video)


def _write_authors_files(root, split: str, name: str, dataset: str, ep, start):
    """One episode as the authors' collector for `dataset` would have saved it."""
    import imageio.v3 as iio
    d = root / split / "0"
    d.mkdir(parents=True, exist_ok=True)
    if dataset == "dmlab":                   # skip=10 in the collector: frame 0 after unrecorded steps
        after = np.r_[ep.actions[1:], 2]     # the action taken after frame t; the last one leads nowhere
        np.savez(d / f"{name}.npz", video=ep.video, actions=after)
    elif dataset == "minecraft":             # the reset view first, placeholder id 0 there
        iio.imwrite(d / f"{name}.mp4", ep.video, fps=20)
        np.savez_compressed(d / f"{name}.npz", actions=np.r_[0, ep.actions[1:]].astype(np.int32))
    else:                                    # habitat: views after each action, no start view
        iio.imwrite(d / f"{name}.mp4", ep.video, fps=20)
        np.savez_compressed(d / f"{name}.npz", actions=ep.actions.astype(np.int32))


@pytest.mark.parametrize("dataset,skip", [("dmlab", 3), ("minecraft", 0), ("habitat", 1)])
def test_import_converts_each_layout_to_the_convention(tmp_path, dataset, skip):
    src = tmp_path / "released"
    eps = {}
    for k, split in enumerate(["test", "train", "train"]):
        ep, start = pan_episode(10 + k, skip)
        _write_authors_files(src, split, f"{k:06d}", dataset, ep, start)
        eps[(split, f"{k:06d}")] = (ep, start)
    out = str(tmp_path / "imp.zarr")
    import_episodes(str(src), out, dataset, progress=False, known=release(dataset))
    r = StoreReader(out)
    # train first (files 000001, 000002), then test (000000)
    order = [("train", "000001"), ("train", "000002"), ("test", "000000")]
    assert r.config.params["split"] == {"train": [0, 2], "test": [2, 3]}
    for i, key in enumerate(order):
        ep, start = eps[key]
        video, actions = r.read("video", i), r.read("actions", i)
        if dataset == "dmlab":
            assert np.array_equal(video, ep.video) and actions[0] == NO_ACTION
            assert_convention(video, actions)
        elif dataset == "minecraft":
            assert actions[0] == NO_ACTION
            assert_convention(video, actions, start)
        else:
            assert actions[0] != NO_ACTION
            assert_convention(video, actions, start)
        assert np.array_equal(actions[1:], ep.actions[1:])


@pytest.mark.parametrize("name", ["dmlab", "minecraft"])
def test_paper_generators_pair_each_frame_with_the_action_that_produced_it(name):
    """On the real generators (embedded backends) the pose says which way the view turned between frames t-1 and
    t: that must be actions[t]'s turn (left actions one sign, right actions the other, the rest none). Habitat's
    equivalent is in test_habitat_embedded.py."""
    import argparse
    import importlib
    spec = importlib.import_module(f"generators.{name}.spec").SPEC
    p = argparse.ArgumentParser()
    spec.add_args(p)
    params = spec.params(p.parse_args(["--length", "300", "--resolution", "32"]))   # long enough to turn both ways
    cfg = spec.store_config(params, "embedded", 1, 0)
    backend = spec.make_backend("embedded", params)
    try:
        ep = spec.episode(backend, 1, 0, params)
    finally:
        backend.close()
    names = cfg.action_names
    dyaw = (np.diff(ep.pose[:, 3].astype(np.float64)) + 180) % 360 - 180      # frame t-1 -> t, t >= 1
    signs = {"left": set(), "right": set()}
    for t in range(1, len(ep.actions)):
        a = names[ep.actions[t]]
        side = "left" if "left" in a else "right" if "right" in a else None
        if side is None:
            assert abs(dyaw[t - 1]) < 1e-3, f"frame {t}: '{a}' turned the view by {dyaw[t - 1]:.2f} deg"
        else:
            assert abs(dyaw[t - 1]) > 1e-3, f"frame {t}: '{a}' did not turn the view"
            signs[side].add(bool(dyaw[t - 1] > 0))
    assert len(signs["left"]) == 1 and signs["right"] <= {not s for s in signs["left"]}
