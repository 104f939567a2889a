"""storage.shards: local window reads that bypass zarr return exactly what zarr returns, detect
every kind of damage zarr detects, and step aside for layouts they do not know."""
import os

import numpy as np
import pytest
import zarr
from zarr.codecs import GzipCodec

from conftest import structured_frames
from storage import StoreConfig, StoreReader, StoreWriter
from storage.reader import EpisodeDataError, MissingEpisodeData
from storage.shards import plan

T, H, W, C = 30, 8, 8, 8    # 30 frames in 8-frame chunks: a 32-frame shard whose last chunk is cut short


def make(url, n=3, length=T, chunk=C, level=5, direct=True):
    cfg = StoreConfig(dataset="test", episodes=n, length=length, height=H, width=W, action_names=["a", "b"],
                      pose_names=["x", "y", "z", "yaw"], chunk_frames=chunk, compression_level=level)
    w = StoreWriter.create(url, cfg)
    w.direct = direct
    for i in range(n):
        w.write_episode(i, structured_frames(length, H, W, i), np.arange(length) % 2,
                        np.random.default_rng(i).normal(size=(length, 4)))
        w.mark_complete(i, i)
    return w


@pytest.mark.parametrize("length,chunk,level", [(30, 8, 5), (24, 8, 5), (12, 12, 1), (30, 8, 9)])
def test_written_shards_are_the_bytes_zarr_writes(tmp_path, length, chunk, level):
    ours, ref = str(tmp_path / "ours.zarr"), str(tmp_path / "ref.zarr")
    assert make(ours, 2, length, chunk, level).shard_plan("video") is not None
    make(ref, 2, length, chunk, level, direct=False)
    for i in range(2):
        assert open(shard(ours, i), "rb").read() == open(shard(ref, i), "rb").read(), i
    assert not [f for f in os.listdir(os.path.dirname(shard(ours, 0))) if f.endswith(".partial")]
    assert np.array_equal(StoreReader(ours, direct=False).read("video", 1), structured_frames(length, H, W, 1))


def shard(url, i):
    return os.path.join(url, "video", "c", str(i), "0", "0", "0", "0")


def test_every_window_equals_zarrs_read(tmp_path):
    url = str(tmp_path / "s.zarr")
    make(url)
    fast, ref = StoreReader(url), StoreReader(url, direct=False)
    assert fast.shard_plan("video") is not None and ref.shard_plan("video") is None
    assert fast.shard_plan("actions") is None      # not sharded: zarr reads it
    for i in range(3):
        for t0 in range(T):
            for t1 in (t0 + 1, t0 + 7, t0 + 8, t0 + 17, None):
                a = fast.read("video", i, t0, t1)
                b = ref.read("video", i, t0, t1)
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), (i, t0, t1)
    for args in [(0,), (1, -5, None), (2, 25, 99), (2, 10, 3)]:   # numpy slice rules, as zarr
        assert np.array_equal(fast.read("video", *args), ref.read("video", *args))


def test_codes_int16_windows_equal_zarrs(tmp_path):
    url = str(tmp_path / "s.zarr")
    w = make(url, 2)
    codes = np.random.default_rng(0).integers(0, 1024, (T, 4, 4)).astype(np.int16)
    arr = w.group.create_array("codes", shape=(2, T, 4, 4), chunks=(1, C, 4, 4), shards=(1, 32, 4, 4),
                               dtype="int16", fill_value=-1, compressors=w.array("video").compressors)
    arr[0] = codes
    arr[1, :C] = codes[:C]        # only the first inner chunk written: the rest read as fill values
    fast, ref = StoreReader(url), StoreReader(url, direct=False)
    assert fast.shard_plan("codes") is not None
    for i, t0, t1 in [(0, 0, T), (0, 5, 21), (1, 0, T), (1, 6, 12), (1, 20, 30)]:
        assert np.array_equal(fast.read("codes", i, t0, t1), ref.read("codes", i, t0, t1)), (i, t0, t1)
    assert (fast.read("codes", 1, C, T) == -1).all()


@pytest.mark.parametrize("damage", ["chunk byte", "index byte", "cut short", "empty file"])
def test_damage_is_an_episode_error_as_with_zarr(tmp_path, damage):
    url = str(tmp_path / "s.zarr")
    make(url)
    path = shard(url, 1)
    data = bytearray(open(path, "rb").read())
    if damage == "chunk byte":
        data[10] ^= 0x40
    elif damage == "index byte":
        data[-10] ^= 0x01
    elif damage == "cut short":
        data = data[:-40]
    else:
        data = b""
    open(path, "wb").write(bytes(data))
    for direct in (True, False):
        with pytest.raises(EpisodeDataError, match="episode 1.*video.*unreadable"):
            StoreReader(url, direct=direct).read("video", 1, 0, 4)
    assert StoreReader(url).read("video", 0, 0, 4).any()       # other episodes unaffected


def test_a_shard_removed_after_the_presence_check_is_missing_data(tmp_path):
    url = str(tmp_path / "s.zarr")
    make(url)
    r = StoreReader(url)
    r.read("video", 2, 0, 4)      # checked present once
    os.remove(shard(url, 2))
    with pytest.raises(MissingEpisodeData, match="episode 2"):
        r.read("video", 2, 0, 4)


def test_other_layouts_are_left_to_zarr(tmp_path):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    gz = g.create_array("gz", shape=(2, 16, 4), chunks=(1, 8, 4), shards=(1, 16, 4), dtype="uint8",
                        compressors=[GzipCodec()])
    plain = g.create_array("plain", shape=(2, 16, 4), chunks=(1, 8, 4), dtype="uint8")
    split = g.create_array("split", shape=(2, 16, 4), chunks=(1, 8, 2), shards=(1, 16, 4), dtype="uint8")
    for a in (gz, plain, split):
        assert plan(str(tmp_path / "g.zarr" / a.basename), a) is None, a.basename


def test_a_failed_shard_write_keeps_the_old_shard_and_leaves_no_partial_file(tmp_path, monkeypatch):
    url = str(tmp_path / "s.zarr")
    w = make(url)
    before = open(shard(url, 1), "rb").read()

    def boom(self, buf):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("numcodecs.zstd.Zstd.encode", boom)
    with pytest.raises(OSError, match="No space"):
        w.write_episode(1, structured_frames(T, H, W, 7), np.arange(T) % 2, np.zeros((T, 4)))
    assert open(shard(url, 1), "rb").read() == before
    assert os.listdir(os.path.dirname(shard(url, 1))) == ["0"]
