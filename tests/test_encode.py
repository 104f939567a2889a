"""teco-encode: codes of the right shape and VQ-GAN hash, resumable, refuses mismatched stores."""
import numpy as np
import pytest
import torch

from storage import StoreReader, StoreWriter
from teco.runs import checkpoint_hash
from teco.encode import main as encode_main
from teco.train_vqgan import main as train_main
from teco.vqgan import load_vqgan
from test_vqgan import make_store   # tests/ is on sys.path under pytest's default import mode

torch.set_num_threads(1)


def _run(store, run, steps=2):
    assert train_main(["--store", store, "--out", str(run), "--config", "tiny", "--device", "cpu",
                       "--num-workers", "0", "--steps", str(steps), "--batch-size", "2", "--eval-frames", "2"]) == 0
    return run


def _encode(store, run, *extra):
    return encode_main(["--store", store, "--vqgan", str(run), "--device", "cpu", "--num-workers", "0",
                        "--batch-size", "3", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    store = make_store(d / "train.zarr")
    return _run(store, d / "run")


def test_encode_writes_codes_with_hash_and_resumes(tmp_path, trained, capsys):
    store = make_store(tmp_path / "s.zarr", episodes=5, complete={0, 1, 2, 4})
    assert _encode(store, trained) == 0
    r = StoreReader(store)
    codes = r.array("codes")[:]
    assert codes.shape == (5, 8, 16, 16) and codes.dtype == np.int16
    model, h = load_vqgan(trained)
    assert h == checkpoint_hash(trained / "ckpt.pt")
    info = r.attrs["codes"]
    assert info["vqgan_hash"] == h and info["grid"] == 16 and info["codebook_size"] == 64
    for i in (0, 1, 2, 4):
        want = model.encode(torch.from_numpy(r.read("video", i))).numpy()
        assert np.array_equal(codes[i], want)
    assert (codes[3] == -1).all()   # incomplete episodes are left alone
    assert "4 episodes encoded" in capsys.readouterr().out

    # a rerun skips everything; a lost episode (codes back to -1) is the only one redone
    assert _encode(store, trained) == 0
    assert "0 episodes encoded, 4 already" in capsys.readouterr().out
    StoreWriter.open(store).write_field("codes", 1, np.full((8, 16, 16), -1, np.int16))
    assert _encode(store, trained) == 0
    assert "1 episodes encoded, 3 already" in capsys.readouterr().out
    assert np.array_equal(StoreReader(store).array("codes")[1], codes[1])


def test_encode_refuses_other_vqgan_unless_overwrite(tmp_path, trained, capsys):
    store = make_store(tmp_path / "s.zarr", episodes=2)
    assert _encode(store, trained) == 0
    other = _run(store, tmp_path / "other", steps=3)
    assert _encode(store, other) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _encode(store, other, "--overwrite") == 0
    assert "2 episodes encoded" in capsys.readouterr().out
    assert StoreReader(store).attrs["codes"]["vqgan_hash"] == checkpoint_hash(other / "ckpt.pt")


def test_encode_refuses_mismatched_store(tmp_path, trained, capsys):
    big = make_store(tmp_path / "big.zarr", episodes=1, size=64)
    assert _encode(big, trained) == 2
    assert "64x64" in capsys.readouterr().err
    other = make_store(tmp_path / "other.zarr", episodes=1, dataset="dmlab")
    assert _encode(other, trained) == 2
    assert "dataset 'dmlab'" in capsys.readouterr().err
    assert not StoreReader(other).has("codes")
    assert _encode(str(tmp_path / "none.zarr"), trained) == 2
    assert _encode(other, tmp_path / "no_run") == 2
    assert "not a train-vqgan run" in capsys.readouterr().err


# -- faults (issue 17.4, 17.10) ---------------------------------------------------------------------

def _shard(store, name, i):
    import glob
    import os
    (path,) = [p for p in glob.glob(f"{store}/{name}/c/{i}/**", recursive=True) if os.path.isfile(p)]
    return path


def test_encode_never_encodes_a_missing_or_truncated_shard(tmp_path, trained, capsys):
    import os
    store = make_store(tmp_path / "s.zarr", episodes=4)
    os.remove(_shard(store, "video", 1))                           # lost object: zarr would read zeros
    with open(_shard(store, "video", 2), "r+b") as f:              # cut short by a crash
        f.truncate(40)
    assert _encode(store, trained) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "episode 1" in err and "episode 2" in err
    assert "2 episodes encoded" in out
    r = StoreReader(store)
    codes = r.array("codes")[:]
    assert (codes[1] == -1).all() and (codes[2] == -1).all()        # not encoded, not zeros
    assert (codes[0] >= 0).all() and (codes[3] >= 0).all()
    assert sorted(r.attrs["codes"]["unreadable"]) == ["1", "2"]    # recorded in the store
    assert "video/c/1" in r.attrs["codes"]["unreadable"]["1"]


def _mount(*argv):
    import subprocess
    return subprocess.run(["mount", *argv], capture_output=True).returncode == 0


@pytest.fixture
def read_only_view(tmp_path):
    """A read-only bind mount of tmp_path/src at tmp_path/ro (needs mount permission)."""
    import os
    import subprocess
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    if not (_mount("--bind", str(src), str(ro)) and _mount("-o", "remount,ro,bind", str(ro))):
        subprocess.run(["umount", str(ro)], capture_output=True)
        pytest.skip("no permission to make a read-only bind mount")
    yield src, ro
    subprocess.run(["umount", str(ro)], check=True)


def test_encode_on_a_fully_encoded_store_needs_no_write_access(read_only_view, trained, capsys):
    src, ro = read_only_view
    make_store(src / "s.zarr", episodes=2)
    assert _encode(str(src / "s.zarr"), trained) == 0
    capsys.readouterr()
    assert _encode(str(ro / "s.zarr"), trained) == 0, capsys.readouterr().err
    assert "0 episodes encoded, 2 already" in capsys.readouterr().out


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk (needs mount permission); fill() takes the rest of its space."""
    import subprocess
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)):
        pytest.skip("no permission to mount a tmpfs")

    def fill():
        try:
            with open(disk / "filler", "wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:   # ENOSPC: the disk is full
            pass
    yield disk, fill
    subprocess.run(["umount", str(disk)], check=True)


def test_encode_on_a_full_disk_is_one_line(full_disk, trained, capsys):
    disk, fill = full_disk
    store = make_store(disk / "s.zarr", episodes=2)
    fill()
    assert _encode(store, trained) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert store in err and "space" in err.lower()


def test_encode_takes_the_store_lock_gen_takes(tmp_path, trained, capsys):
    """teco-encode is a store writer: while another process holds `<store>.lock` it refuses and writes nothing."""
    import json
    import subprocess

    from storage.lock import lock_url
    store = make_store(tmp_path / "s.zarr", episodes=3)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        with open(lock_url(store), "w") as f:   # a live generation run on this host
            json.dump({"host": __import__("socket").gethostname(), "pid": holder.pid, "heartbeat": 0,
                       "purpose": "gen-dmlab"}, f)
        assert _encode(store, trained) == 2
        assert "is writing this store" in capsys.readouterr().err
        assert "codes" not in StoreReader(store).attrs
    finally:
        holder.kill()
        holder.wait()
    assert _encode(store, trained) == 0   # the holder is gone: its lock is stale and taken over
    assert StoreReader(store).attrs["codes"]["encoded_episodes"] == 3


def test_encode_warns_about_an_unfinished_vqgan_run(tmp_path, trained, capsys):
    import json
    import shutil
    store = make_store(tmp_path / "s.zarr", episodes=2)
    assert _encode(store, trained) == 0
    assert "stopped at step" not in capsys.readouterr().err           # a finished run: nothing to say
    stopped = tmp_path / "stopped"
    shutil.copytree(trained, stopped)
    meta = json.loads((stopped / "run.json").read_text())
    meta["vqgan"]["steps"] = 5   # as a run stopped by Ctrl-C at step 2 of 5
    (stopped / "run.json").write_text(json.dumps(meta))
    assert _encode(store, stopped, "--overwrite") == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "stopped at step" in line]
    assert len(err) == 1 and "stopped at step 2 of 5" in err[0]
