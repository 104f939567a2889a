"""teco-store import of the paper's released data: the three layouts, the released train/test split, the action
shift to the store's convention, real action names, errors and resume. (Frame-level checks of the shift, with
episodes whose frames encode their actions, are in test_action_convention.py.)"""
import numpy as np
import pytest

from conftest import structured_frames
from storage import StoreError, StoreReader
from generators.registry import release
from generators.registry import store_main as store_cli      # teco-store, the registry's datasets known
from storage.importer import find_episodes, import_episodes as _import, to_store_actions
from storage.split import store_split

T, H, W = 12, 16, 16


def import_episodes(src, out, dataset, **kw):
    """As teco-store import: what the registry knows about the dataset's release (None for other names)."""
    return _import(src, out, dataset, known=release(dataset), **kw)


def action_names(dataset):
    return release(dataset)["action_names"]


def released(tmp_path, dataset, n_train=2, n_test=1, t=T):
    """A tiny released tree: <root>/{train,test}/0/NAME.* in the authors' layout for `dataset`."""
    import imageio.v3 as iio
    root = tmp_path / dataset
    eps = {}
    for split, n in (("train", n_train), ("test", n_test)):
        d = root / split / "0"
        d.mkdir(parents=True)
        for k in range(n):
            seed = len(eps)
            video = structured_frames(t, H, W, seed)
            acts = np.random.default_rng(seed).integers(1, 4, t).astype(np.int32)
            if dataset == "dmlab":
                np.savez(d / f"{k:06d}.npz", video=video, actions=acts)
            else:
                if dataset == "minecraft":
                    acts[0] = 0                                      # the collector's reset-frame placeholder
                iio.imwrite(d / f"{k:06d}.mp4", video, fps=20)
                np.savez_compressed(d / f"{k:06d}.npz", actions=acts)
            eps[(split, k)] = (video, acts)
    return root, eps


def test_action_shift_rules():
    a = np.array([3, 1, 2, 4])
    assert to_store_actions(a, "after").tolist() == [-1, 3, 1, 2]          # DMLab: taken after frame t
    assert to_store_actions(a, "produced").tolist() == [3, 1, 2, 4]        # Habitat: produced frame t
    assert to_store_actions(a, "produced-reset").tolist() == [-1, 1, 2, 4]  # Minecraft: placeholder at reset
    with pytest.raises(ValueError, match="convention"):
        to_store_actions(a, "before")


def test_action_names_come_from_the_protocols():
    from generators.dmlab.protocol import ACTION_NAMES as dm
    from generators.habitat.protocol import ACTION_NAMES as hab
    from generators.minecraft.protocol import ACTION_NAMES as mc
    assert action_names("dmlab") == dm and action_names("minecraft") == mc and action_names("habitat") == hab


@pytest.mark.parametrize("dataset", ["dmlab", "minecraft", "habitat"])
def test_import_layout_split_and_shift(tmp_path, dataset):
    root, eps = released(tmp_path, dataset)
    (root / "README.txt").write_text("not an episode")
    out = str(tmp_path / "imp.zarr")
    assert store_cli(["import", str(root), "--out", out, "--dataset", dataset, "--no-progress"]) == 0
    r = StoreReader(out)
    cfg = r.config
    assert cfg.dataset == dataset and cfg.action_names == action_names(dataset) and cfg.backend == "import"
    facts = release(dataset)["params"]                                # default configs travel with the data
    assert {k: cfg.params[k] for k in facts} == facts and cfg.params["vqgan_config"] == dataset
    assert r.complete_indices().tolist() == [0, 1, 2] and cfg.length == T
    assert cfg.params["split"] == {"train": [0, 2], "test": [2, 3]}
    ext = "npz" if dataset == "dmlab" else "mp4"                      # an .mp4's .npz holds its actions only
    assert cfg.params["files"] == [f"train/0/000000.{ext}", f"train/0/000001.{ext}", f"test/0/000000.{ext}"]
    assert store_split(cfg.params, range(3)) == ([0, 1], [2])         # the released test set stays the test set
    for i, key in enumerate([("train", 0), ("train", 1), ("test", 0)]):
        video, acts = eps[key]
        got = r.read("actions", i)
        if dataset == "dmlab":
            assert np.array_equal(r.read("video", i), video)
            assert got[0] == -1 and np.array_equal(got[1:], acts[:-1])
        else:
            assert np.abs(r.read("video", i).astype(int) - video).mean() < 12      # lossy mp4
            want = acts.copy()
            if dataset == "minecraft":
                want[0] = -1
            assert np.array_equal(got, want)
    assert store_cli(["verify", out, "--no-progress"]) == 0


def test_without_split_folders_no_split_is_recorded(tmp_path):
    root, _ = released(tmp_path, "dmlab")
    files, split = find_episodes(str(root / "train"))
    assert split is None and len(files) == 2
    out = str(tmp_path / "imp.zarr")
    import_episodes(str(root / "train"), out, "dmlab", progress=False)
    params = StoreReader(out).config.params
    assert "split" not in params
    train, test = store_split(params, range(40), 0.1)                 # falls back to the hash split
    assert len(test) >= 1 and set(train).isdisjoint(test)


def test_import_resumes_and_cli_info_preview(tmp_path, capsys):
    root, eps = released(tmp_path, "dmlab")
    out = str(tmp_path / "imp.zarr")
    w = import_episodes(str(root), out, "dmlab", progress=False)
    w.set_complete(1, False)
    import_episodes(str(root), out, "dmlab", progress=False)          # only episode 1 again
    r = StoreReader(out)
    assert r.complete_indices().tolist() == [0, 1, 2]
    assert np.array_equal(r.read("video", 1), eps[("train", 1)][0])
    assert store_cli(["info", out]) == 0
    assert "compression_ratio" in capsys.readouterr().out
    gif = str(tmp_path / "p.gif")
    assert store_cli(["preview", out, "--out", gif, "--episodes", "2"]) == 0
    import imageio.v3 as iio
    assert iio.imread(gif).shape[0] == T


def test_other_dataset_names_and_conventions(tmp_path):
    root, eps = released(tmp_path, "dmlab")
    out = str(tmp_path / "imp.zarr")
    import_episodes(str(root), out, "mydata", convention="after", progress=False)
    r = StoreReader(out)
    assert r.config.action_names == ["action_0", "action_1", "action_2", "action_3"]
    assert r.read("actions", 0)[0] == -1
    with pytest.raises(ValueError, match="contradicts"):
        import_episodes(str(root), str(tmp_path / "x.zarr"), "dmlab", num_actions=3, progress=False)


def test_bad_files_are_one_line_errors(tmp_path, capsys):
    import imageio.v3 as iio
    d = tmp_path / "bad"
    d.mkdir()
    iio.imwrite(d / "a.mp4", structured_frames(T, H, W), fps=20)
    assert store_cli(["import", str(d), "--out", str(tmp_path / "o.zarr"), "--dataset", "habitat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no actions file" in err
    np.savez_compressed(d / "a.npz", actions=np.ones(T - 1, np.int32))
    with pytest.raises(StoreError, match="11 actions for 12 frames"):
        import_episodes(str(d), str(tmp_path / "o2.zarr"), "habitat", progress=False)
    np.savez_compressed(d / "a.npz", actions=np.full(T, 9, np.int32))
    with pytest.raises(StoreError, match=r"action id 9 at frame 1 \(after conversion\) is outside 0..3"):
        import_episodes(str(d), str(tmp_path / "o3.zarr"), "minecraft", progress=False)
    e = tmp_path / "empty"
    e.mkdir()
    assert store_cli(["import", str(e), "--out", str(tmp_path / "o4.zarr")]) == 2
    assert "no .npz or .mp4 episodes" in capsys.readouterr().err


def test_unreadable_files_and_implausible_ids_are_named_and_leave_no_store(tmp_path, capsys):
    import os
    video = structured_frames(6, H, W)
    cases = {   # folder -> (what its one episode file holds, what the one-line error must say)
        "junk": (b"not an archive", "not a readable .npz file (neither a zip archive nor an .npy array)"),
        "cut": (None, "not a readable .npz file (BadZipFile"),
        "noframes": (dict(video=video[:0], actions=np.zeros(0, np.int64)), "the video has no frames"),
        "huge": (dict(video=video, actions=np.array([0, 1, 0, 2**32 + 1, 2, 1])), "not a discrete action space"),
    }
    for name, (content, message) in cases.items():
        d = tmp_path / name
        d.mkdir()
        f = d / "0.npz"
        if isinstance(content, dict):
            np.savez(f, **content)
        elif content is None:
            np.savez(f, video=video, actions=np.zeros(6, np.int64))
            f.write_bytes(f.read_bytes()[:100])
        else:
            f.write_bytes(content)
        out = tmp_path / f"{name}.zarr"
        assert store_cli(["import", str(d), "--out", str(out), "--no-progress"]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and (name == "huge" or str(f) in err), (name, err)
        assert not os.path.exists(out), name
    # an id beyond int32 is refused, not wrapped into range (2**32 + 1 would be stored as 1)
    assert store_cli(["import", str(tmp_path / "huge"), "--out", str(tmp_path / "h6.zarr"), "--num-actions", "6",
                      "--no-progress"]) == 2
    assert "action id 4294967297 at frame 3" in capsys.readouterr().err


def test_a_first_file_that_does_not_fit_leaves_nothing_to_block_a_corrected_rerun(tmp_path, capsys):
    d = tmp_path / "src"
    d.mkdir()
    np.savez(d / "0.npz", video=structured_frames(6, H, W), actions=np.array([0, 1, 2, 5, 1, 0]))
    out = str(tmp_path / "o.zarr")
    assert store_cli(["import", str(d), "--out", out, "--dataset", "dmlab", "--no-progress"]) == 2
    assert "action id 5 at frame 4" in capsys.readouterr().err      # DMLab's ids are 0..4
    assert store_cli(["import", str(d), "--out", out, "--no-progress"]) == 0   # as `imported`, ids 0..5
    assert StoreReader(out).config.action_names == [f"action_{k}" for k in range(6)]
