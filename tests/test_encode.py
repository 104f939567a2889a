"""teco-encode: codes of the right shape and VQ-GAN hash, resumable, refuses mismatched stores."""
import numpy as np
import pytest
import torch

from storage import StoreReader, StoreWriter
from teco.checkpoint import checkpoint_hash
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
