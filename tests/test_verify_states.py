"""`teco-store verify` tells episodes not encoded yet (added or regenerated after teco-encode) from damaged
ones, so the recovery loop verify -> --mark-incomplete -> rerun gen -> verify ends; `info` names each
failed episode's reason."""
import contextlib
import glob
import io
import json
import os

import numpy as np
import pytest

from storage import StoreWriter
from storage.cli import main as store_cli
from test_vqgan import make_store, synthetic_video   # tests/ is on sys.path under pytest's default import mode

T, G = 8, 16


def cli(argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = store_cli(argv)
    return code, out.getvalue()


def encoded_store(path, episodes=4) -> StoreWriter:
    url = make_store(path, episodes=episodes, T=T)
    w = StoreWriter.open(url)
    w.ensure_codes(grid=G, vqgan_hash="h", codebook_size=64)
    for i in range(episodes):
        w.write_field("codes", i, np.full((T, G, G), i, np.int16))
    return w


def test_regenerated_episode_is_not_encoded_not_damaged(tmp_path):
    w = encoded_store(tmp_path / "s.zarr")
    assert cli(["verify", w.url, "--no-progress"])[0] == 0
    (shard,) = [f for f in glob.glob(f"{w.url}/video/c/2/**", recursive=True) if os.path.isfile(f)]
    data = bytearray(open(shard, "rb").read())
    data[40] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    code, out = cli(["verify", w.url, "--no-progress", "--mark-incomplete"])
    assert code == 1 and "episode 2: video: unreadable" in out
    # what rerunning the gen command does: rewrite the episode (its codes go back to -1), mark it complete
    w = StoreWriter.open(w.url)
    w.write_episode(2, synthetic_video(2, T, 32), np.zeros(T, np.int32), np.zeros((T, 4), np.float32))
    w.mark_complete(2, seed=2)
    code, out = cli(["verify", w.url, "--no-progress"])
    assert code == 0, out
    assert "1 complete episodes not encoded yet" in out and "ids outside" not in out


def test_grown_store_is_not_encoded_not_damaged(tmp_path):
    import dataclasses
    w = encoded_store(tmp_path / "s.zarr", episodes=2)
    w = StoreWriter.create(w.url, dataclasses.replace(w.config, episodes=3))   # what gen-* --episodes 3 does
    w.write_episode(2, synthetic_video(2, T, 32), np.zeros(T, np.int32), np.zeros((T, 4), np.float32), fresh=True)
    w.mark_complete(2, seed=2)
    code, out = cli(["verify", w.url, "--no-progress"])
    assert code == 0 and "1 complete episodes not encoded yet" in out, out


def test_damaged_codes_are_still_faults(tmp_path):
    w = encoded_store(tmp_path / "s.zarr")
    w.write_field("codes", 1, np.full((T, G, G), 99, np.int16))     # beyond the codebook
    partial = np.full((T, G, G), 5, np.int16)
    partial[0, 0, 0] = -1                                             # not all -1: a bad write, not a reset
    w.write_field("codes", 3, partial)
    code, out = cli(["verify", w.url, "--no-progress"])
    assert code == 1 and "not encoded" not in out
    assert "episode 1: codes: ids outside 0..63" in out and "episode 3: codes: ids outside 0..63" in out


def test_info_shows_each_failed_reason(tmp_path):
    w = StoreWriter.open(make_store(tmp_path / "s.zarr", episodes=5, T=T, complete={0, 1, 2}))
    w.record_failed(4, "RuntimeError: simulator crashed")
    w.record_failed(3, "timed out after 60 s")
    code, out = cli(["info", w.url, "--json"])
    info = json.loads(out)
    assert code == 0 and info["failed"] == 2
    assert info["failed_episodes"] == {"3": "timed out after 60 s", "4": "RuntimeError: simulator crashed"}
    assert list(info["failed_episodes"]) == ["3", "4"]
    code, out = cli(["info", w.url])
    assert "failed episode 4: RuntimeError: simulator crashed" in out and "failed episode 3: timed out" in out


def test_empty_objects_are_damage_not_missing_or_not_encoded(tmp_path):
    # zarr reads a 0-byte shard as an absent one (fill values): verify and the reader must call it damage
    w = encoded_store(tmp_path / "s.zarr")
    for name, i in (("video", 0), ("codes", 1)):
        (obj,) = [f for f in glob.glob(f"{w.url}/{name}/c/{i}/**", recursive=True) if os.path.isfile(f)]
        open(obj, "wb").close()
    code, out = cli(["verify", w.url, "--no-progress"])
    assert code == 1 and "not encoded" not in out, out
    assert "episode 0: video: empty object(s)" in out and "episode 1: codes: empty object(s)" in out
    from storage import StoreReader
    from storage.reader import EpisodeDataError
    for direct in (True, False):
        with pytest.raises(EpisodeDataError, match="episode 0: array 'video' is unreadable"):
            StoreReader(w.url, direct=direct).read("video", 0)


def test_a_damaged_completion_flag_is_named_and_repairable(tmp_path, caplog):
    w = encoded_store(tmp_path / "s.zarr")
    open(f"{w.url}/complete/c/2", "wb").close()          # the one object without a checksum, emptied
    from storage import StoreReader
    assert StoreReader(w.url).complete_indices().tolist() == [0, 1, 3]   # readable, episode 2 incomplete
    assert "episodes [2] are unreadable" in caplog.text
    assert cli(["info", w.url])[0] == 0
    code, out = cli(["verify", w.url, "--no-progress", "--mark-incomplete"])
    assert code == 1 and "episode 2: complete: flag unreadable" in out and "marked 1 episodes incomplete" in out
    assert os.path.getsize(f"{w.url}/complete/c/2") == 1
    code, out = cli(["verify", w.url, "--no-progress"])
    assert code == 0 and "3 complete episodes checked, 1 incomplete" in out, out


def test_damaged_array_metadata_is_named(tmp_path):
    w = encoded_store(tmp_path / "s.zarr")
    meta = f"{w.url}/actions/zarr.json"
    open(meta, "w").write(open(meta).read()[:100])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert store_cli(["info", w.url]) == 2
    assert "actions/zarr.json is unreadable" in err.getvalue() and err.getvalue().count("\n") == 1
