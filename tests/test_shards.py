"""storage.shards: local reads and writes that bypass zarr (video shards; actions, pose and per-episode
field chunks) read and write exactly what zarr does, detect every kind of damage zarr detects, and step
aside for layouts they do not know."""
import os

import numpy as np
import pytest
import zarr
from zarr.codecs import GzipCodec

from conftest import structured_frames
from storage import StoreConfig, StoreReader, StoreWriter
from storage.reader import EpisodeDataError, MissingEpisodeData, object_keys
from storage.shards import ChunkPlan, ShardPlan, plan

T, H, W, C = 30, 8, 8, 8    # 30 frames in 8-frame chunks: a 32-frame shard whose last chunk is cut short


FIELDS = {"maze_id": "int32", "scale": "float32"}
PER_EPISODE = ["video", "actions", "pose", *FIELDS]
FLAGS = ["seed", "complete"]     # written by the run's driver once the rest is on disk


def make(url, n=3, length=T, chunk=C, level=5, direct=True):
    cfg = StoreConfig(dataset="test", episodes=n, length=length, height=H, width=W, action_names=["a", "b"],
                      pose_names=["x", "y", "z", "yaw"], chunk_frames=chunk, compression_level=level,
                      episode_fields=dict(FIELDS))
    w = StoreWriter.create(url, cfg)
    w.direct = direct
    for i in range(n):
        w.write_episode(i, structured_frames(length, H, W, i), (np.arange(length) + i) % 2,
                        np.random.default_rng(i).normal(size=(length, 4)), maze_id=100 + i, scale=0.5 * i)
        w.mark_complete(i, i)
    return w


def episode_objects(url, i):
    """{array/key: bytes} of episode i's objects in every per-episode array."""
    r = StoreReader(url, direct=False)
    return {f"{n}/{k}": open(os.path.join(url, n, *k.split("/")), "rb").read()
            for n in PER_EPISODE + FLAGS for k in object_keys(r.array(n), i)}


@pytest.mark.parametrize("length,chunk,level", [(30, 8, 5), (24, 8, 5), (12, 12, 1), (30, 8, 9)])
def test_written_objects_are_the_bytes_zarr_writes(tmp_path, length, chunk, level):
    ours, ref = str(tmp_path / "ours.zarr"), str(tmp_path / "ref.zarr")
    w = make(ours, 2, length, chunk, level)
    assert isinstance(w.direct_plan("video"), ShardPlan)
    assert all(isinstance(w.direct_plan(n), ChunkPlan) for n in PER_EPISODE[1:] + FLAGS)
    assert w.direct_plan("complete").level is None          # one byte, no codec
    make(ref, 2, length, chunk, level, direct=False)
    for i in range(2):
        a, b = episode_objects(ours, i), episode_objects(ref, i)
        assert list(a) == list(b) and len(a) == len(PER_EPISODE + FLAGS) and a == b, i
    z = StoreWriter.open(ref)
    z.direct = False
    for writer in (w, z):             # unmarking (a rerun regenerating episode 1) too
        writer.set_complete(1, False)
    assert episode_objects(ours, 1) == episode_objects(ref, 1)
    assert list(StoreReader(ours).complete_indices()) == [0]
    for n in PER_EPISODE:
        assert not [f for _, _, fs in os.walk(os.path.join(ours, n)) for f in fs if f.endswith(".partial")]
    r = StoreReader(ours, direct=False)
    assert np.array_equal(r.read("video", 1), structured_frames(length, H, W, 1))
    assert np.array_equal(r.read("actions", 1), (np.arange(length) + 1) % 2)
    assert r.read("maze_id", 1) == 101 and r.read("scale", 1) == np.float32(0.5)


def shard(url, i):
    return os.path.join(url, "video", "c", str(i), "0", "0", "0", "0")


def test_every_window_equals_zarrs_read(tmp_path):
    url = str(tmp_path / "s.zarr")
    make(url)
    fast, ref = StoreReader(url), StoreReader(url, direct=False)
    assert fast.direct_plan("video") is not None and ref.direct_plan("video") is None
    for i in range(3):
        for t0 in range(T):
            for t1 in (t0 + 1, t0 + 7, t0 + 8, t0 + 17, None):
                a = fast.read("video", i, t0, t1)
                b = ref.read("video", i, t0, t1)
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), (i, t0, t1)
    for args in [(0,), (1, -5, None), (2, 25, 99), (2, 10, 3)]:   # numpy slice rules, as zarr
        assert np.array_equal(fast.read("video", *args), ref.read("video", *args))


def test_action_and_pose_windows_equal_zarrs_read(tmp_path):
    url = str(tmp_path / "s.zarr")
    make(url)
    fast, ref = StoreReader(url), StoreReader(url, direct=False)
    for name in ("actions", "pose"):
        assert isinstance(fast.direct_plan(name), ChunkPlan) and ref.direct_plan(name) is None
        for i in range(3):
            for args in [(), (0, T), (5, 21), (29, 30), (-5, None), (25, 99), (10, 3)]:
                a, b = fast.read(name, i, *args), ref.read(name, i, *args)
                assert a.dtype == b.dtype and a.shape == b.shape and a.flags.writeable, (name, i, args)
                assert np.array_equal(a, b, equal_nan=True), (name, i, args)


def test_codes_int16_windows_equal_zarrs(tmp_path):
    url = str(tmp_path / "s.zarr")
    w = make(url, 2)
    codes = np.random.default_rng(0).integers(0, 1024, (T, 4, 4)).astype(np.int16)
    arr = w.group.create_array("codes", shape=(2, T, 4, 4), chunks=(1, C, 4, 4), shards=(1, 32, 4, 4),
                               dtype="int16", fill_value=-1, compressors=w.array("video").compressors)
    arr[0] = codes
    arr[1, :C] = codes[:C]        # only the first inner chunk written: the rest read as fill values
    fast, ref = StoreReader(url), StoreReader(url, direct=False)
    assert fast.direct_plan("codes") is not None
    for i, t0, t1 in [(0, 0, T), (0, 5, 21), (1, 0, T), (1, 6, 12), (1, 20, 30)]:
        assert np.array_equal(fast.read("codes", i, t0, t1), ref.read("codes", i, t0, t1)), (i, t0, t1)
    assert (fast.read("codes", 1, C, T) == -1).all()


@pytest.mark.parametrize("name,damage", [("video", "chunk byte"), ("video", "index byte"), ("video", "cut short"),
                                         ("video", "empty file"), ("actions", "chunk byte"),
                                         ("actions", "cut short"), ("pose", "chunk byte"), ("pose", "empty file")])
def test_damage_is_an_episode_error_as_with_zarr(tmp_path, name, damage):
    url = str(tmp_path / "s.zarr")
    make(url)
    path = os.path.join(url, name, *object_keys(StoreReader(url).array(name), 1)[0].split("/"))
    data = bytearray(open(path, "rb").read())
    if damage == "chunk byte":
        data[10] ^= 0x40
    elif damage == "index byte":
        data[-10] ^= 0x01
    elif damage == "cut short":
        data = data[:-40] if name == "video" else data[:len(data) // 2]
    else:
        data = b""
    open(path, "wb").write(bytes(data))
    for direct in (True, False):
        with pytest.raises(EpisodeDataError, match=f"episode 1.*{name}.*unreadable"):
            StoreReader(url, direct=direct).read(name, 1, 0, 4)
    assert StoreReader(url).read(name, 0, 0, 4).any()       # other episodes unaffected


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
    ours = [zarr.codecs.ZstdCodec(level=5), zarr.codecs.Crc32cCodec()]
    half = g.create_array("half", shape=(2, 16, 4), chunks=(1, 8, 4), dtype="int32", compressors=ours)
    dots = g.create_array("dots", shape=(2, 16), chunks=(1, 16), dtype="int32", compressors=ours,
                          chunk_key_encoding={"name": "default", "separator": "."})
    zsum = g.create_array("zsum", shape=(2, 16), chunks=(1, 16), dtype="int32",
                          compressors=[zarr.codecs.ZstdCodec(level=5, checksum=True), zarr.codecs.Crc32cCodec()])
    whole = g.create_array("whole", shape=(2, 16), chunks=(1, 16), dtype="int32", compressors=ours)
    assert isinstance(plan(str(tmp_path / "g.zarr" / "whole"), whole), ChunkPlan)   # the control: ours
    for a in (gz, plain, split, half, dots, zsum):
        assert plan(str(tmp_path / "g.zarr" / a.basename), a) is None, a.basename


def test_a_failed_shard_write_keeps_the_old_shard_and_leaves_no_partial_file(tmp_path, monkeypatch):
    url = str(tmp_path / "s.zarr")
    w = make(url)
    before = open(shard(url, 1), "rb").read()

    def boom(self, buf):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("numcodecs.zstd.Zstd.encode", boom)
    with pytest.raises(OSError, match="No space"):
        w.write_episode(1, structured_frames(T, H, W, 7), np.arange(T) % 2, np.zeros((T, 4)), maze_id=1, scale=1)
    assert open(shard(url, 1), "rb").read() == before
    assert os.listdir(os.path.dirname(shard(url, 1))) == ["0"]
