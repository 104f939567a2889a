"""A really full disk (a size-limited tmpfs mounted by the test, not an injected ENOSPC): gen-dmlab stops with
a one-line message, every complete episode is intact, and after space is freed the same command finishes
the store, byte-identical to a run on an unlimited disk. Needs root (mount); skipped with the reason otherwise."""
import os
import subprocess

import numpy as np
import pytest

from conftest import call_cli
from generators.dmlab.cli import main as gen_main
from storage import StoreReader
from storage.verify import verify

N = 8
GEN = ["--episodes", str(N), "--length", "20", "--workers", "2", "--no-progress"]   # ~105 kB per episode


@pytest.fixture
def small_disk(tmp_path):
    """A 400 kB tmpfs: room for the store's metadata and about three episodes."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_disk_full_keeps_complete_episodes_and_resumes(small_disk, tmp_path, ray_cluster):
    ref = str(tmp_path / "ref.zarr")
    assert gen_main([*GEN, "--out", ref]) == 0
    url = str(small_disk / "d.zarr")
    code, err = call_cli(gen_main, [*GEN, "--out", url])
    assert code == 2 and "no space left" in err and "rerun the same command" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    r = StoreReader(url)
    done = r.complete_indices().tolist()
    assert 0 < len(done) < N
    assert verify(url, progress=False).ok                      # what is marked complete is whole
    a = StoreReader(ref)
    for i in done:
        assert np.array_equal(r.read("video", i), a.read("video", i))

    # free space (the filesystem grows), rerun the same command
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    code, err = call_cli(gen_main, [*GEN, "--out", url])
    assert code == 0, err
    assert verify(url, progress=False).ok
    r = StoreReader(url)
    assert r.complete_indices().tolist() == list(range(N))
    for i in range(N):
        for f in ("video", "actions", "pose", "seed"):
            assert np.array_equal(r.read(f, i), a.read(f, i)), (f, i)
