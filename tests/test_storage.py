"""Store format, writer, reader, verify and the streaming dataset (issue: foundation)."""
import glob
import multiprocessing as mp
import os

import numpy as np
import pytest
import torch

from conftest import structured_frames
from storage import StoreConfig, StoreError, StoreReader, StoreWriter
from storage.cli import main as store_cli
from storage.loader import WindowDataset, shard_episodes
from storage.split import split_episodes
from storage.verify import verify

T, H, W = 30, 16, 16


def make_cfg(n=4, **kw):
    base = dict(dataset="test", episodes=n, length=T, height=H, width=W, action_names=["l", "r", "f"],
                pose_names=["x", "y", "z", "yaw"], chunk_frames=10, params={"p": 1})
    base.update(kw)
    return StoreConfig(**base)


def episode(i):
    g = np.random.default_rng(i)
    return (structured_frames(T, H, W, seed=i), g.integers(0, 3, T),
            g.normal(size=(T, 4)).astype(np.float32))


def fill(url, n=4, cfg=None):
    w = StoreWriter.create(url, cfg or make_cfg(n))
    for i in range(n):
        v, a, p = episode(i)
        w.write_episode(i, v, a, p)
        w.mark_complete(i, 100 + i)
    return w


def test_round_trip(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url)
    r = StoreReader(url)
    assert r.config.dataset == "test" and r.config.params == {"p": 1}
    assert r.complete_indices().tolist() == [0, 1, 2, 3]
    for i in range(4):
        v, a, p = episode(i)
        assert np.array_equal(r.read("video", i), v)
        assert np.array_equal(r.read("video", i, 5, 17), v[5:17])
        assert np.array_equal(r.read("actions", i), a)
        assert np.allclose(r.read("pose", i), p)
        assert r.read("seed", i) == 100 + i
    assert r.array("video").dtype == np.uint8 and r.array("video").shape == (4, T, H, W, 3)


def test_plain_zarr_reads_store(tmp_path):
    """FORMAT.md promises a store is readable with plain zarr."""
    import zarr
    url = str(tmp_path / "s.zarr")
    fill(url, 2)
    g = zarr.open_group(url, mode="r")
    assert g["video"].shape == (2, T, H, W, 3)
    assert g.attrs["teco_worlds"]["config"]["dataset"] == "test"
    assert g["complete"][:].tolist() == [True, True]


def test_fsspec_url_same_code_path():
    url = "memory://teco-test/s.zarr"
    fill(url, 2)
    r = StoreReader(url)
    assert np.array_equal(r.read("video", 1), episode(1)[0])
    assert verify(url, progress=False).ok


def test_reopen_with_different_config_refused(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url, 2)
    with pytest.raises(StoreError, match="different config.*height"):
        StoreWriter.create(url, make_cfg(2, height=32))
    with pytest.raises(StoreError, match="dataset"):
        StoreWriter.create(url, make_cfg(2, dataset="other"))
    with pytest.raises(StoreError, match=r"differs in: params\.p: 1 -> 2\)"):       # the nested key, both values
        StoreWriter.create(url, make_cfg(2, params={"p": 2}))
    # same config reopens; more episodes grow it without touching the existing ones
    w = StoreWriter.create(url, make_cfg(5))
    assert w.config.episodes == 5
    r = StoreReader(url)
    assert r.config.episodes == 5 and r.complete_indices().tolist() == [0, 1]
    assert np.array_equal(r.read("video", 1), episode(1)[0])


def test_refuses_foreign_directory_and_missing_paths(tmp_path):
    d = tmp_path / "notastore"
    d.mkdir()
    (d / "file.txt").write_text("x")
    with pytest.raises(StoreError, match="not an episode store"):
        StoreWriter.create(str(d), make_cfg())
    with pytest.raises(StoreError, match="does not exist"):
        StoreReader(str(tmp_path / "missing.zarr"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        StoreWriter.create(str(tmp_path / "afile" / "sub" / "s.zarr"), make_cfg())
    StoreWriter.create(str(tmp_path / "new" / "parent" / "s.zarr"), make_cfg())   # parents are made


def test_a_creation_cut_short_is_made_again_and_foreign_groups_are_not(tmp_path):
    import zarr
    from storage.schema import array_specs
    url = str(tmp_path / "s.zarr")
    g = zarr.open_group(url, mode="w-", zarr_format=3)   # killed after two arrays, before the attributes
    for spec in array_specs(make_cfg())[:2]:
        g.create_array(spec.name, shape=(4, 3), dtype="uint8")
    fill(url)                                             # creates it again, writes, resumes as any store
    assert StoreReader(url).complete_indices().tolist() == [0, 1, 2, 3]
    for foreign in ("other", "video"):                    # a member not ours, or ours holding data
        url = str(tmp_path / f"{foreign}.zarr")
        arr = zarr.open_group(url, mode="w-", zarr_format=3).create_array(foreign, shape=(4,), dtype="uint8")
        if foreign == "video":
            arr[:] = 1
        with pytest.raises(StoreError, match="not an episode store"):
            StoreWriter.create(url, make_cfg())
        assert zarr.open_group(url, mode="r")[foreign].shape == (4,)


def test_the_loader_is_exported_without_importing_torch_for_writers():
    import subprocess
    import sys
    code = ("import sys, storage; assert 'torch' not in sys.modules; from storage import WindowDataset; "
            "from storage.loader import WindowDataset as W; assert WindowDataset is W")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr


def test_wrong_shapes_rejected(tmp_path):
    w = StoreWriter.create(str(tmp_path / "s.zarr"), make_cfg(2))
    v, a, p = episode(0)
    with pytest.raises(StoreError, match="video"):
        w.write_episode(0, v[:, :8], a, p)
    with pytest.raises(StoreError, match="action ids"):
        w.write_episode(0, v, a + 5, p)
    with pytest.raises(StoreError, match="pose"):
        w.write_episode(0, v, a, p[:, :2])
    assert not w.complete_mask().any()


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("direct", [True, False])   # storage/shards.py's own writes, or zarr's
def test_interrupted_write_leaves_episode_incomplete(tmp_path, monkeypatch, direct):
    url = str(tmp_path / "s.zarr")
    w = fill(url, 3)
    w.direct = direct
    before = {i: StoreReader(url).read("video", i) for i in range(3)}
    real_put = StoreWriter._put

    def put(self, name, i, value, pool=None):
        if name == "pose":
            raise Boom("disk vanished mid-episode")
        return real_put(self, name, i, value, pool)

    monkeypatch.setattr(StoreWriter, "_put", put)
    v, a, p = episode(7)
    with pytest.raises(Boom):
        w.write_episode(1, v, a, p)   # rewriting a complete episode: video lands, pose explodes
    monkeypatch.setattr(StoreWriter, "_put", real_put)
    r = StoreReader(url)
    assert r.complete_indices().tolist() == [0, 2]          # episode 1 no longer claims to be complete
    for i in (0, 2):
        assert np.array_equal(r.read("video", i), before[i])
    assert verify(url, progress=False).ok
    # the rerun rewrites it
    w2 = StoreWriter.create(url, make_cfg(3))
    w2.write_episode(1, v, a, p)
    w2.mark_complete(1, 1)
    assert np.array_equal(StoreReader(url).read("video", 1), v)


def _writer_process(url, parity):
    w = StoreWriter.create(url, make_cfg(8))
    for i in range(parity, 8, 2):
        v, a, p = episode(i)
        w.write_episode(i, v, a, p)
        w.mark_complete(i, i)


def test_two_processes_write_concurrently(tmp_path):
    url = str(tmp_path / "s.zarr")
    StoreWriter.create(url, make_cfg(8))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(url, k)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    r = StoreReader(url)
    assert r.complete_indices().tolist() == list(range(8))
    for i in range(8):
        assert np.array_equal(r.read("video", i), episode(i)[0])
    assert verify(url, progress=False).ok


def _chunk_files(url, name, episode):
    return [f for f in glob.glob(os.path.join(url, name, "c", str(episode), "**"), recursive=True) if os.path.isfile(f)]


@pytest.mark.parametrize("fault", ["flip", "truncate", "delete"])
def test_verify_catches_damage(tmp_path, fault, capsys):
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    (f,) = _chunk_files(url, "video", 1)
    data = bytearray(open(f, "rb").read())
    if fault == "flip":
        data[len(data) // 3] ^= 0xFF
        open(f, "wb").write(bytes(data))
    elif fault == "truncate":
        open(f, "wb").write(bytes(data[: len(data) // 2]))
    else:
        os.remove(f)
    rep = verify(url, progress=False)
    assert not rep.ok and list(rep.bad) == [1]
    assert store_cli(["verify", url, "--no-progress"]) == 1
    assert "episode 1: video" in capsys.readouterr().out


def test_verify_catches_bad_actions_chunk(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url, 2)
    (f,) = _chunk_files(url, "actions", 0)
    data = bytearray(open(f, "rb").read())
    data[4] ^= 0x55
    open(f, "wb").write(bytes(data))
    assert list(verify(url, progress=False).bad) == [0]


def test_window_dataset_yields_correct_windows(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url, 4)
    ds = WindowDataset(url, window=12, fields=("video", "actions", "pose"), seed=3)
    it = iter(ds)
    for _ in range(10):
        x = next(it)
        v, a, p = episode(x["episode"])
        t = x["start"]
        assert x["video"].dtype == torch.uint8 and x["video"].shape == (12, H, W, 3)
        assert x["actions"].dtype == torch.int64
        assert np.array_equal(x["video"].numpy(), v[t:t + 12])
        assert np.array_equal(x["actions"].numpy(), a[t:t + 12])
        assert np.allclose(x["pose"].numpy(), p[t:t + 12])


def test_window_dataset_only_complete_episodes(tmp_path):
    url = str(tmp_path / "s.zarr")
    w = fill(url, 4)
    w.set_complete(2, False)
    ds = WindowDataset(url, window=5, infinite=False)
    assert sorted(x["episode"] for x in ds) == [0, 1, 3]


def test_window_dataset_shards_disjointly_across_workers(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url, 8, make_cfg(8))
    ds = WindowDataset(url, window=5, fields=("actions",), infinite=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                         worker_init_fn=None, multiprocessing_context="spawn")
    seen = [int(x["episode"]) for x in loader]
    assert sorted(seen) == list(range(8))                    # every episode exactly once
    assert shard_episodes(range(8), 0, 2) == [0, 2, 4, 6]
    assert set(shard_episodes(range(8), 0, 3)).isdisjoint(shard_episodes(range(8), 1, 3))
    # DDP ranks x workers: 2 ranks x 2 workers = 4 disjoint shards covering everything
    shards = [shard_episodes(range(10), s, 4) for s in range(4)]
    assert sorted(sum(shards, [])) == list(range(10))


def test_loader_skips_damaged_episode(tmp_path, caplog):
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    for f in _chunk_files(url, "actions", 1):
        os.remove(f)
        open(f, "wb").write(b"garbage")
    ds = WindowDataset(url, window=30, fields=("video", "actions"), infinite=False)
    assert sorted(x["episode"] for x in ds) == [0, 2]
    assert "skipping episode 1" in caplog.text
    with pytest.raises(StoreError, match="episode 1"):
        list(WindowDataset(url, window=30, fields=("actions",), infinite=False, on_error="raise"))


def test_split_is_stable_and_disjoint():
    train, test = split_episodes(range(200), 0.1)
    assert set(train).isdisjoint(test) and len(train) + len(test) == 200
    assert 5 <= len(test) <= 40
    train2, test2 = split_episodes(range(400), 0.1)
    assert set(test) <= set(test2)                 # growing the store keeps earlier test episodes in test
    assert len(split_episodes(range(3), 0.01)[1]) == 1


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert store_cli(["info", str(tmp_path / "nope.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert store_cli(["preview", str(tmp_path / "nope.zarr"), "--out", "x.gif"]) == 2


def test_short_episodes_and_stale_codes(tmp_path):
    """T shorter than a chunk works; rewriting an episode's frames drops its now-stale codes."""
    url = str(tmp_path / "s.zarr")
    w = StoreWriter.create(url, make_cfg(2, length=8))
    for i in range(2):
        w.write_episode(i, structured_frames(8, H, W, i), np.zeros(8, int), np.zeros((8, 4)))
        w.mark_complete(i, i)
    w.ensure_codes(grid=4, vqgan_hash="abc", codebook_size=8)
    w.write_field("codes", 0, np.ones((8, 4, 4), np.int16))
    assert (StoreReader(url).read("codes", 0) == 1).all()
    w.write_episode(0, structured_frames(8, H, W, 5), np.zeros(8, int), np.zeros((8, 4)))
    assert (StoreReader(url).read("codes", 0) == -1).all()
    with pytest.raises(StoreError, match="already holds codes"):
        w.ensure_codes(grid=4, vqgan_hash="other", codebook_size=8)


def test_codes_of_another_grid_after_overwrite_are_written_with_their_own_layout(tmp_path):
    """ensure_codes(overwrite=True) replaces `codes`; the same writer then writes the new grid's codes
    (a cached direct plan of the old array would write the old layout)."""
    url = str(tmp_path / "s.zarr")
    w = StoreWriter.create(url, make_cfg(1, length=8))
    w.write_episode(0, structured_frames(8, H, W, 0), np.zeros(8, int), np.zeros((8, 4)))
    w.mark_complete(0, 0)
    w.ensure_codes(grid=4, vqgan_hash="abc", codebook_size=8)
    w.write_field("codes", 0, np.ones((8, 4, 4), np.int16))
    w.ensure_codes(grid=2, vqgan_hash="new", codebook_size=8, overwrite=True)
    w.write_field("codes", 0, np.full((8, 2, 2), 3, np.int16))
    for direct in (True, False):
        got = StoreReader(url, direct=direct).read("codes", 0)
        assert got.shape == (8, 2, 2) and (got == 3).all()
