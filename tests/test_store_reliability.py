"""Issue 17, storage side: attribute merges and one lock per resolved store, interrupt-safe growth,
completion state proportional to what exists, missing data never read as fill values, flags validated
before anything is written, environment errors as one line. Real tmpfs and read-only mounts where
this process may mount (root), skipped with the reason otherwise."""
import errno
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from conftest import call_cli, structured_frames
from storage import StoreConfig, StoreError, StoreReader, StoreWriter
from storage.cli import main as store_cli
from cli_common import run_main
from storage.lock import StoreLock
try:
    from storage.reader import EpisodeDataError, MissingEpisodeData
except ImportError:
    EpisodeDataError = MissingEpisodeData = StoreError
from storage.verify import verify

T, H, W = 12, 16, 16


def make_cfg(n, **kw):
    base = dict(dataset="test", episodes=n, length=T, height=H, width=W, action_names=["a", "b", "c"],
                pose_names=["x", "y", "z", "yaw"], chunk_frames=6)
    base.update(kw)
    return StoreConfig(**base)


def fill(url, n=3, done=None, cfg=None):
    w = StoreWriter.create(url, cfg or make_cfg(n))
    for i in (range(n) if done is None else done):
        w.write_episode(i, structured_frames(w.config.length, w.config.height, w.config.width, i),
                        np.arange(w.config.length) % 3, np.zeros((w.config.length, 4)))
        w.mark_complete(i, i)
    return w


def foreign_holder(lock_path: str) -> subprocess.Popen:
    """A live process of this host named as the lock's owner (another run, as far as the lock can tell)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(lock_path, "w") as f:
        json.dump({"host": os.uname().nodename, "pid": p.pid, "heartbeat": time.time(), "purpose": "gen-test"}, f)
    return p


# ---- mounts -------------------------------------------------------------------------------------------
def _mount(args) -> str | None:
    if os.geteuid() != 0:
        return "mounting needs root"
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    return None if r.returncode == 0 else f"mount {' '.join(args)} failed: {r.stderr.strip()}"


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MiB tmpfs (so a real ENOSPC is cheap to reach)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    why = _mount(["-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)])
    if why:
        pytest.skip(why)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def remount_ro(mnt):
    why = _mount(["-o", "remount,ro", str(mnt)])
    if why:
        pytest.skip(why)


def fill_disk(mnt):
    with open(mnt / "ballast", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    # a few bytes may be left at the tail of a page: use them up too
    k = 0
    while True:
        try:
            with open(mnt / f"pad{k}", "wb") as f:
                f.write(b"\0" * 4096)
        except OSError:
            break
        k += 1


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


# ---- 1: attribute updates merge; one lock per resolved store; every writer takes it --------------------
def test_attribute_updates_merge_with_disk(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url)
    gen, enc = StoreWriter.open(url), StoreWriter.open(url)   # two writers opened before either wrote
    enc.ensure_codes(grid=16, vqgan_hash="abc", codebook_size=64)
    gen.record_failed(2, "boom")                              # must not erase `codes`
    meta = StoreReader(url).attrs
    assert meta["codes"]["vqgan_hash"] == "abc" and "2" in meta["failed"]


def test_encode_finishing_during_growth_keeps_the_grown_count(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    enc = StoreWriter.open(url)
    enc.ensure_codes(grid=16, vqgan_hash="abc", codebook_size=64)
    StoreWriter.create(url, make_cfg(5))                      # a gen run grows the store meanwhile
    enc.update_meta(lambda m: m["codes"].update(encoded_episodes=3))
    r = StoreReader(url)                                      # used to fail: "expected uint8(3, ...)"
    assert r.config.episodes == 5 and r.attrs["codes"]["encoded_episodes"] == 3
    assert verify(url, progress=False).ok


def test_lock_is_keyed_by_the_resolved_store(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url)
    link = str(tmp_path / "link.zarr")
    os.symlink(url, link)
    holder = foreign_holder(url + ".lock")
    try:
        with pytest.raises(FileExistsError, match="another generation run"):
            StoreLock(link).acquire()
        with pytest.raises(FileExistsError, match=f"pid {holder.pid}"):
            StoreLock(url + "/").acquire()
    finally:
        holder.kill()
        holder.wait()


def test_every_writer_takes_the_lock(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url)
    w = StoreWriter.open(url)
    holder = foreign_holder(url + ".lock")
    try:
        with pytest.raises(FileExistsError, match="another generation run"):
            w.ensure_codes(grid=16, vqgan_hash="abc", codebook_size=64)        # teco-encode's first write
        with pytest.raises(FileExistsError):
            w.record_failed(1, "x")
        with pytest.raises(FileExistsError):
            StoreWriter.create(url, make_cfg(6))                               # growth
        os.remove(os.path.join(url, "pose", "c", "1", "0", "0"))
        code, err = call_cli(store_cli, ["verify", url, "--no-progress", "--mark-incomplete"])
        assert code == 2 and one_line(err) and "another generation run" in err
    finally:
        holder.kill()
        holder.wait()
    assert "codes" not in zarr.open_group(url, mode="r") and StoreReader(url).config.episodes == 3
    assert StoreReader(url).complete_indices().tolist() == [0, 1, 2]


def test_store_with_arrays_larger_than_its_count_is_repaired(tmp_path):
    """What the old read-modify-write left behind: arrays at 5 episodes, the config saying 3."""
    url = str(tmp_path / "s.zarr")
    fill(url, 5)
    g = zarr.open_group(url, mode="r+")
    meta = g.attrs["teco_worlds"]
    meta["config"]["episodes"] = 3
    g.attrs["teco_worlds"] = meta
    r = StoreReader(url)                     # readable as it was recorded...
    assert r.config.episodes == 3 and r.complete_indices().tolist() == [0, 1, 2]
    code, _ = call_cli(store_cli, ["verify", url, "--no-progress"])
    assert code == 0
    StoreWriter.open(url)                    # ...and the next writer finishes the growth
    r = StoreReader(url)
    assert r.config.episodes == 5 and r.complete_indices().tolist() == [0, 1, 2, 3, 4]


# ---- 2: growth is safe to interrupt ---------------------------------------------------------------------
def test_interrupted_growth_is_completed_by_the_next_run(tmp_path, monkeypatch):
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    real_resize, calls = zarr.Array.resize, []

    def resize(self, shape):
        calls.append(shape)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_resize(self, shape)

    monkeypatch.setattr(zarr.Array, "resize", resize)
    with pytest.raises(KeyboardInterrupt):
        StoreWriter.create(url, make_cfg(6))
    monkeypatch.setattr(zarr.Array, "resize", real_resize)
    r = StoreReader(url)                     # every tool still opens it
    assert r.complete_indices().tolist() == [0, 1, 2]
    assert verify(url, progress=False).ok
    w = StoreWriter.create(url, make_cfg(6))
    assert w.config.episodes == 6 and StoreReader(url).config.episodes == 6
    assert all(StoreReader(url).array(n).shape[0] == 6 for n in ("video", "actions", "pose", "seed", "complete"))
    assert verify(url, progress=False).ok


# ---- 3: completion state proportional to what exists; large growth needs a flag -------------------------
def test_completion_state_reads_only_existing_objects(tmp_path, monkeypatch):
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    StoreWriter.create(url, make_cfg(200_000))
    from zarr.storage import LocalStore
    real_get, gets = LocalStore.get, []

    async def get(self, key, *a, **kw):
        gets.append(key)
        return await real_get(self, key, *a, **kw)

    monkeypatch.setattr(LocalStore, "get", get)
    r = StoreReader(url)
    gets.clear()
    assert r.complete_indices().tolist() == [0, 1, 2]
    assert r.complete_count() == 3
    assert len(gets) < 50, len(gets)          # was one read per episode of the config: 200,000
    code, _ = call_cli(store_cli, ["info", url, "--json"])
    assert code == 0 and len(gets) < 200


def test_growth_by_orders_of_magnitude_needs_a_flag(tmp_path, monkeypatch):
    import generators.cli
    from generators.dmlab.cli import main as gen_dmlab

    def generate(*a, **kw):
        raise AssertionError("the runner was started")   # it would record 1e9 episodes
    monkeypatch.setattr(generators.cli, "generate", generate)
    out = str(tmp_path / "d.zarr")
    code, err = call_cli(gen_dmlab, ["--episodes", "1000000000", "--out", out, "--length", "4"])
    assert code == 2 and one_line(err) and "--allow-large-growth" in err and not os.path.exists(out)
    cfg = _dmlab_cfg(["--length", "4"], 2)
    fill(out, 2, done=[], cfg=cfg)
    code, err = call_cli(gen_dmlab, ["--episodes", "1000000000", "--out", out, "--length", "4"])
    assert code == 2 and one_line(err) and "--allow-large-growth" in err
    assert StoreReader(out).config.episodes == 2


# ---- 4: a missing object is an error naming the episode, never fill values ------------------------------
def test_reader_raises_for_missing_and_damaged_objects(tmp_path):
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    os.remove(os.path.join(url, "video", "c", "1", "0", "0", "0", "0"))
    r = StoreReader(url)
    with pytest.raises(MissingEpisodeData, match="episode 1.*video") as e:
        r.read("video", 1)
    assert e.value.episode == 1 and e.value.array == "video"
    with pytest.raises(MissingEpisodeData):
        r.episode(1)
    with pytest.raises(MissingEpisodeData):
        r.read("video", 1, 0, 2)
    assert r.read("video", 0).any() and r.read("actions", 1).shape == (T,)
    shard = os.path.join(url, "video", "c", "2", "0", "0", "0", "0")
    data = open(shard, "rb").read()
    open(shard, "wb").write(data[:-40])
    with pytest.raises(EpisodeDataError, match="episode 2.*video.*unreadable") as e:
        StoreReader(url).read("video", 2)
    assert e.value.episode == 2 and not isinstance(e.value, MissingEpisodeData)
    assert not StoreReader(url).read("video", 1, allow_missing=True).any()   # fill values only on request


# ---- 9: every gen flag validated before anything is written ---------------------------------------------
@pytest.mark.parametrize("argv,msg", [
    (["--seed", "-1"], "--seed"),
    (["--waypoint-radius", "nan"], "waypoint-radius"),
    (["--heading-tol", "inf"], "heading-tol"),
    (["--episode-timeout", "nan"], "--episode-timeout"),
    (["--episode-timeout", "-3"], "--episode-timeout"),
    (["--compression-level", "0"], "--compression-level must be within 1..22"),
    (["--compression-level", "23"], "--compression-level must be within 1..22"),
])
def test_bad_gen_flags_write_nothing(tmp_path, argv, msg):
    from generators.dmlab.cli import main as gen_dmlab
    out = tmp_path / "d.zarr"
    code, err = call_cli(gen_dmlab, ["--episodes", "2", "--out", str(out), "--length", "4", *argv])
    assert code == 2 and one_line(err) and msg in err, err
    assert not os.listdir(tmp_path)


def test_writer_refuses_non_finite_or_negative_config(tmp_path):
    url = str(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="not a finite number"):
        StoreWriter.create(url, make_cfg(2, params={"r": float("nan")}))
    with pytest.raises(StoreError, match="seed"):
        StoreWriter.create(url, make_cfg(2, seed=-1))
    assert not os.path.exists(url)


# ---- 10: environment errors are one line; read-only work needs no write access --------------------------
def _dmlab_cfg(argv, n):
    from generators.cli import build_parser
    from generators.dmlab.spec import SPEC
    params = SPEC.params(build_parser(SPEC).parse_args(["--out", "x", *argv]))
    return SPEC.store_config(params, "embedded", n, 0)


def test_full_disk_while_taking_the_lock(tmpfs):
    from generators.dmlab.cli import main as gen_dmlab
    out = str(tmpfs / "d.zarr")
    fill(out, 2, done=[], cfg=_dmlab_cfg(["--length", "4"], 2))
    fill_disk(tmpfs)
    with pytest.raises(StoreError, match="No space left.*free space"):
        StoreLock(out).acquire()
    code, err = call_cli(gen_dmlab, ["--episodes", "2", "--out", out, "--length", "4"])
    assert code == 2 and one_line(err) and "d.zarr.lock" in err and "space" in err, err
    assert not os.path.exists(out + ".lock")


def test_read_only_mount_complete_store(tmpfs):
    from generators.dmlab.cli import main as gen_dmlab
    out = str(tmpfs / "d.zarr")
    fill(out, 2, cfg=_dmlab_cfg(["--length", "4"], 2))
    StoreWriter.open(out).ensure_codes(grid=16, vqgan_hash="h", codebook_size=8)
    remount_ro(tmpfs)
    code, err = call_cli(gen_dmlab, ["--episodes", "2", "--out", out, "--length", "4"])
    assert code == 0, err
    code, err = call_cli(gen_dmlab, ["--episodes", "1", "--out", out, "--length", "4"])
    assert code == 0, err
    assert call_cli(store_cli, ["info", out])[0] == 0
    assert call_cli(store_cli, ["verify", out, "--no-progress"])[0] == 0
    w = StoreWriter.open(out)                       # an encode rerun that finds nothing to do
    w.ensure_codes(grid=16, vqgan_hash="h", codebook_size=8)
    w.update_meta(lambda m: m.__setitem__("failed", {}))
    code, err = call_cli(gen_dmlab, ["--episodes", "3", "--out", out, "--length", "4"])
    assert code == 2 and one_line(err) and "read-only" in err.lower(), err


def test_preview_into_read_only_folder(tmp_path, tmpfs):
    url = str(tmp_path / "s.zarr")
    fill(url)
    remount_ro(tmpfs)
    code, err = call_cli(store_cli, ["preview", url, "--out", str(tmpfs / "p.gif")])
    assert code == 2 and one_line(err) and "p.gif" in err and "read-only" in err.lower(), err


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_preview_to_a_folder_or_an_unwritable_place_is_one_line(tmp_path, suffix):
    url = str(tmp_path / "s.zarr")
    fill(url)
    (tmp_path / f"dir{suffix}").mkdir()
    for out, why in ((tmp_path / f"dir{suffix}", "it is a folder"), (f"/proc/p{suffix}", "No such file")):
        code, err = call_cli(store_cli, ["preview", url, "--out", str(out), "--frames", "2"])
        assert code == 2 and one_line(err) and f"cannot write {out}: {why}" in err, err
    assert sorted(os.listdir(tmp_path)) == sorted(["s.zarr", f"dir{suffix}"])   # no half-written animation
    ok = tmp_path / f"ok{suffix}"
    assert call_cli(store_cli, ["preview", url, "--out", str(ok), "--frames", "2"])[0] == 0 and ok.stat().st_size


def test_os_errors_are_one_line():
    def full():
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/s.zarr/video/c/0")
        except OSError as e:
            raise RuntimeError("zarr wrapped it") from e
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert run_main(full, "teco-encode") == 2
    assert one_line(err.getvalue()) and "/data/s.zarr/video/c/0" in err.getvalue()
    assert "free space" in err.getvalue()


@pytest.mark.parametrize("path,value,msg", [
    (("config", "chunk_frames"), "50", "chunk_frames"),
    (("config",), [1], "config"),
    (("failed",), [1, 2], "failed"),
    (("config", "pose_names"), None, "pose_names"),
    (("config", "episodes"), True, "episodes"),
    (("codes",), "x", "codes"),
])
def test_attributes_of_the_wrong_type_are_one_line_errors(tmp_path, path, value, msg):
    url = str(tmp_path / "s.zarr")
    fill(url)
    g = zarr.open_group(url, mode="r+")
    meta = g.attrs["teco_worlds"]
    d = meta
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    g.attrs["teco_worlds"] = meta
    with pytest.raises(StoreError, match=msg):
        StoreReader(url)
    for argv in (["info", url], ["verify", url, "--no-progress"]):
        code, err = call_cli(store_cli, argv)
        assert code == 2 and one_line(err) and msg in err, err
    with pytest.raises(StoreError, match=msg):
        StoreWriter.open(url)


# ---- fsync before complete[i] ---------------------------------------------------------------------------
def test_episode_objects_are_fsynced_before_complete_is_set(tmp_path, monkeypatch):
    url = str(tmp_path / "s.zarr")
    w = fill(url, 2, done=[])
    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    real_set = StoreWriter.set_complete
    monkeypatch.setattr(StoreWriter, "set_complete",
                        lambda self, i, v: (events.append(("complete", i, v)), real_set(self, i, v)))
    w.write_episode(1, structured_frames(T, H, W, 1), np.arange(T) % 3, np.zeros((T, 4)), fresh=True)
    w.mark_complete(1, 1)
    synced = [e[1] for e in events if e[0] == "fsync"]
    for name in ("video/c/1/0/0/0/0", "actions/c/1/0", "pose/c/1/0/0", "video/c/1", "video/c"):
        assert os.path.join(url, name) in synced, (name, synced)
    assert events[-1] == ("complete", 1, True)
    assert all(e[0] == "fsync" for e in events[:-1])


def test_no_action_marker_only_at_frame_zero(tmp_path):
    """Store convention: actions[i, 0] is -1 when frame 0 is the view at reset; -1 is refused later on."""
    url = str(tmp_path / "s.zarr")
    w = fill(url, 2, done=[])
    a = np.arange(T) % 3
    a[0] = -1
    w.write_episode(0, structured_frames(T, H, W, 0), a, np.zeros((T, 4)))
    w.mark_complete(0, 0)
    a[3] = -1
    with pytest.raises(StoreError, match="action ids"):
        w.write_episode(1, structured_frames(T, H, W, 1), a, np.zeros((T, 4)))
    assert verify(url, progress=False).ok and StoreReader(url).read("actions", 0)[0] == -1


def test_episode_errors_survive_a_dataloader_worker(tmp_path):
    """teco-encode and the trainers read through DataLoader workers: the error keeps its type and episode."""
    import pickle

    import torch
    e = pickle.loads(pickle.dumps(MissingEpisodeData("s: episode 7: array 'video' has missing object(s)", 7, "video")))
    assert isinstance(e, MissingEpisodeData) and (e.episode, e.array) == (7, "video")
    url = str(tmp_path / "s.zarr")
    fill(url, 3)
    os.remove(os.path.join(url, "video", "c", "1", "0", "0", "0", "0"))

    class Videos(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, k):
            return StoreReader(url).read("video", k)

    with pytest.raises(MissingEpisodeData) as e:
        list(torch.utils.data.DataLoader(Videos(), batch_size=None, num_workers=1))
    assert e.value.episode == 1 and e.value.array == "video"


def test_lock_being_written_is_not_taken_for_stale(tmp_path, monkeypatch):
    """Another run's lock that exists but is not yet written (or unreadable) is not broken at once."""
    import storage.lock as lockmod
    url = str(tmp_path / "s.zarr")
    open(url + ".lock", "w").close()                 # just created by another run, content not written yet
    monkeypatch.setattr(lockmod, "SHORT_WAIT_S", 0.3)
    with pytest.raises(FileExistsError):
        StoreLock(url).acquire()
    old = time.time() - 60
    os.utime(url + ".lock", (old, old))              # an empty lock a minute old: its writer died
    lock = StoreLock(url)
    lock.acquire()
    lock.heartbeat()
    assert json.load(open(url + ".lock"))["pid"] == os.getpid()
    lock.release()
    assert not os.path.exists(url + ".lock")


def _record_many(url, start, barrier):
    w = StoreWriter.open(url)
    barrier.wait(60)   # both writers open before either updates
    for i in range(start, start + 15):
        w.update_meta(lambda m, i=i: m.setdefault("notes", {}).__setitem__(str(i), i))


def test_concurrent_attribute_updates_from_two_processes_are_all_kept(tmp_path):
    import multiprocessing as mp
    url = str(tmp_path / "s.zarr")
    fill(url)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_record_many, args=(url, k * 100, barrier)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    notes = StoreReader(url).attrs["notes"]
    assert sorted(map(int, notes)) == list(range(15)) + list(range(100, 115))
