"""Fault injection beyond the runner's own tests: damaged stores, and bad input on every console script."""
import os

import numpy as np
import pytest
import zarr

from conftest import call_cli, structured_frames
from storage import StoreConfig, StoreError, StoreReader, StoreWriter
from storage.cli import main as store_cli
from storage.loader import WindowDataset
from storage.verify import verify

T, H, W = 20, 16, 16


def make_store(url, n=3, dataset="dmlab"):
    cfg = StoreConfig(dataset=dataset, episodes=n, length=T, height=H, width=W, action_names=["a", "b", "c"],
                      pose_names=["x", "y", "z", "yaw"], chunk_frames=10)
    w = StoreWriter.create(url, cfg)
    for i in range(n):
        w.write_episode(i, structured_frames(T, H, W, i), np.arange(T) % 3, np.zeros((T, 4)))
        w.mark_complete(i, i)
    return w


def test_wrong_dtype_array_named(tmp_path):
    url = str(tmp_path / "s.zarr")
    make_store(url)
    g = zarr.open_group(url, mode="r+")
    del g["actions"]
    g.create_array("actions", shape=(3, T), chunks=(1, T), dtype="float64")
    with pytest.raises(StoreError, match="'actions' is float64"):
        StoreReader(url)
    assert store_cli(["verify", url, "--no-progress"]) == 2


def test_wrong_shape_array_named(tmp_path):
    url = str(tmp_path / "s.zarr")
    make_store(url)
    g = zarr.open_group(url, mode="r+")
    g["pose"].resize((2, T, 4))
    with pytest.raises(StoreError, match="'pose'.*expected"):
        StoreReader(url)
    with pytest.raises(StoreError, match="'pose'"):
        WindowDataset(url, window=4)


def test_other_format_version_and_foreign_group_refused(tmp_path):
    url = str(tmp_path / "s.zarr")
    make_store(url)
    g = zarr.open_group(url, mode="r+")
    meta = g.attrs["teco_worlds"]
    g.attrs["teco_worlds"] = {**meta, "format_version": 99}
    with pytest.raises(StoreError, match="format version 99"):
        StoreReader(url)
    plain = str(tmp_path / "plain.zarr")
    zarr.open_group(plain, mode="w").create_array("x", shape=(2,), dtype="int8")
    with pytest.raises(StoreError, match="not an episode store"):
        StoreReader(plain)


def test_store_of_another_dataset_refused_for_writing(tmp_path):
    url = str(tmp_path / "s.zarr")
    w = make_store(url, dataset="minecraft")
    cfg = StoreConfig(**{**w.config.to_json(), "dataset": "dmlab"})
    with pytest.raises(StoreError, match="dataset"):
        StoreWriter.create(url, cfg)


def test_missing_and_truncated_objects_named_by_episode(tmp_path):
    url = str(tmp_path / "s.zarr")
    make_store(url, n=4)
    os.remove(os.path.join(url, "pose", "c", "2", "0", "0"))
    shard = os.path.join(url, "video", "c", "1", "0", "0", "0", "0")
    data = open(shard, "rb").read()
    open(shard, "wb").write(data[:-40])
    rep = verify(url, progress=False)
    assert sorted(rep.bad) == [1, 2]
    assert "pose: missing" in rep.bad[2][0] and "video: unreadable" in rep.bad[1][0]
    # the loader skips exactly those, and says which
    seen = sorted(x["episode"] for x in WindowDataset(url, window=T, fields=("video", "pose"), infinite=False))
    assert seen == [0, 3]


def bad_inputs(tmp_path, store):
    from generators.dmlab.cli import main as gen_dmlab
    from generators.habitat.cli import main as gen_habitat
    from generators.habitat.scenes import main as make_scenes
    from generators.minecraft.cli import main as gen_minecraft
    missing = str(tmp_path / "missing.zarr")
    out = str(tmp_path / "out.zarr")
    empty = tmp_path / "empty_scenes"
    empty.mkdir()
    return [
        (gen_dmlab, ["--episodes", "0", "--out", out], "--episodes must be positive"),
        (gen_dmlab, ["--episodes", "-2", "--out", out], "--episodes must be positive"),
        (gen_dmlab, ["--episodes", "2", "--out", out, "--backend", "quake"], "unknown backend"),
        (gen_dmlab, ["--episodes", "2", "--out", out, "--resolution", "96"], "resolution"),
        (gen_dmlab, ["--episodes", "2", "--out", out, "--backend", "deepmind_lab"], "bazel"),
        (gen_minecraft, ["--episodes", "2", "--out", out, "--backend", "minerl"], "pip install"),
        (gen_minecraft, ["--episodes", "2", "--out", out, "--resolution", "3"], "resolution"),
        (gen_habitat, ["--episodes", "2", "--out", out, "--scenes", str(empty)], "scene"),
        (gen_habitat, ["--episodes", "2", "--out", out, "--scenes", str(tmp_path / "nope")], "nope"),
        (gen_habitat, ["--episodes", "2", "--out", out, "--scenes", str(empty), "--backend", "habitat_sim"], "conda install"),
        (make_scenes, ["--out", str(tmp_path / "scenes"), "--count", "0"], "--count must be positive"),
        (store_cli, ["info", missing], "does not exist"),
        (store_cli, ["verify", missing], "does not exist"),
        (store_cli, ["preview", store, "--out", str(tmp_path / "x.png")], ".gif or .mp4"),
        (store_cli, ["preview", store, "--out", str(tmp_path / "x.gif"), "--episodes", "0"], "--episodes must be"),
        (store_cli, ["preview", store, "--out", str(tmp_path / "x.gif"), "--frames", "-3"], "--frames must be"),
        (store_cli, ["preview", store, "--out", str(tmp_path / "x.gif"), "--scale", "1000"], "GiB of memory"),
        (store_cli, ["import", str(tmp_path / "nothing_here"), "--out", out], "does not exist"),
    ]


def test_every_generator_and_store_cli_fails_in_one_line_and_writes_nothing(tmp_path):
    store = str(tmp_path / "s.zarr")
    make_store(store)
    for fn, argv, msg in bad_inputs(tmp_path, store):
        code, err = call_cli(fn, argv)
        assert code == 2, (argv, err)
        assert msg.lower() in err.lower(), (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert not os.path.exists(tmp_path / "out.zarr"), argv
        assert not os.path.exists(tmp_path / "scenes"), argv
