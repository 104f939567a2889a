"""Training under faults: a kill mid-run and mid-checkpoint-write, a damaged store, bad input."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import call_cli, subprocess_env
from test_teco_train import args, make_store, make_vqgan_run
from teco.checkpoint import load_checkpoint, save_checkpoint
from teco.runlog import read_log

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    vq = str(root / "vq")
    h = make_vqgan_run(vq)
    return {"root": root, "vq": vq, "hash": h, "store": make_store(root / "store.zarr", h, episodes=6)}


def test_checkpoint_write_killed_midway_keeps_previous(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})

    def dying_save(obj, f, *a, **kw):
        f.write(b"half a checkpoint")   # bytes hit the disk, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [f for f in os.listdir(tmp_path) if f != "ckpt.pt"] == []   # no temp file left behind


@pytest.mark.slow
def test_train_teco_sigkill_then_resume(setup, ray_home):
    out = setup["root"] / "killed"
    cmd = [sys.executable, "-m", "teco.train", *args(setup, out, "--steps", "400", "--ckpt-every", "5")]
    p = subprocess.Popen(cmd, env=subprocess_env(ray_home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "ckpt.pt"
    deadline = time.time() + 240
    while time.time() < deadline and not (ckpt.exists() and load_checkpoint(str(ckpt))["step"] >= 10):
        time.sleep(0.5)
    p.send_signal(signal.SIGKILL)   # wherever it is: mid-step or mid-checkpoint-write
    p.wait(30)
    step = load_checkpoint(str(ckpt))["step"]
    assert step >= 10
    from teco.train import main as train_main
    assert train_main(args(setup, out, "--steps", str(step + 6), "--ckpt-every", "5", "--resume")) == 0
    assert load_checkpoint(str(ckpt))["step"] == step + 6
    logged = [r["step"] for r in read_log(str(out)) if "loss" in r]
    assert max(logged) == step + 6


def test_training_continues_past_a_damaged_episode(setup, tmp_path, caplog):
    import shutil
    store = str(tmp_path / "damaged.zarr")
    shutil.copytree(setup["store"], store)
    shard = os.path.join(store, "codes", "c", "2", "0", "0", "0")
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    from teco.train import main as train_main
    argv = args(setup, tmp_path / "run", "--steps", "12")
    argv[argv.index(setup["store"])] = store
    with caplog.at_level("WARNING"):
        assert train_main(argv) == 0
    assert "skipping episode 2" in caplog.text


def test_teco_clis_bad_input_one_line_nothing_written(setup, tmp_path):
    from teco.encode import main as encode
    from teco.evaluate import main as evaluate
    from teco.sample import main as sample
    from teco.train import main as train
    from teco.train_vqgan import main as train_vqgan
    other_vq = str(tmp_path / "other_vq")      # a different VQ-GAN than the one that made the store's codes
    make_vqgan_run(other_vq)
    ck = load_checkpoint(os.path.join(other_vq, "ckpt.pt"))
    next(iter(ck["model"].values())).add_(1.0)
    save_checkpoint(os.path.join(other_vq, "ckpt.pt"), ck)
    out = str(tmp_path / "out")
    missing = str(tmp_path / "missing.zarr")
    cases = [
        (train_vqgan, ["--store", missing, "--out", out, "--config", "tiny"], "does not exist"),
        (encode, ["--store", missing, "--vqgan", setup["vq"]], "does not exist"),
        (encode, ["--store", setup["store"], "--vqgan", str(tmp_path / "novq")], "novq"),
        (train, ["--store", missing, "--vqgan", setup["vq"], "--out", out, "--config", "tiny"], "does not exist"),
        (train, ["--store", setup["store"], "--vqgan", other_vq, "--out", out, "--config", "tiny"], "vq"),
        (sample, ["--ckpt", str(tmp_path / "norun"), "--out", str(tmp_path / "s.npz")], "norun"),
        (evaluate, ["--ckpt", str(tmp_path / "norun"), "--out", str(tmp_path / "m.json")], "norun"),
    ]
    for fn, argv, msg in cases:
        code, err = call_cli(fn, argv)
        assert code == 2, (argv, err)
        assert msg.lower() in err.lower() and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert not os.path.exists(out) and not os.path.exists(tmp_path / "s.npz"), argv
