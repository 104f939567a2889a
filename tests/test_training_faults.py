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
from teco.runs import load_checkpoint, save_checkpoint
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


# -- issue 17: run-folder locks, checksummed checkpoints, signals, full disks ---------------------------

def _flip_bytes(path, n=64):
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(b ^ 0x5A for b in data[mid:mid + n])
    open(path, "wb").write(bytes(data))


def test_damaged_checkpoint_is_refused_and_the_previous_one_kept(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"step": 1, "w": torch.ones(4096)})
    save_checkpoint(path, {"step": 2, "w": torch.full((4096,), 2.0)})
    _flip_bytes(path)
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(path)
    prev = [f for f in os.listdir(tmp_path) if f != "ckpt.pt"]
    assert len(prev) == 1 and load_checkpoint(str(tmp_path / prev[0]))["step"] == 1


def test_resume_falls_back_to_the_previous_checkpoint(setup, tmp_path, capsys):
    from teco.sample import load_teco
    from teco.train import main as train_main
    out = tmp_path / "run"
    assert train_main(args(setup, out, "--steps", "4", "--batch-size", "2", "--ckpt-every", "2")) == 0
    _flip_bytes(out / "ckpt.pt")
    with pytest.raises(ValueError, match="damaged"):
        load_teco(out)
    capsys.readouterr()
    assert train_main(args(setup, out, "--steps", "6", "--batch-size", "2", "--ckpt-every", "2", "--resume")) == 0
    assert "damaged" in capsys.readouterr().err
    assert load_checkpoint(str(out / "ckpt.pt"))["step"] == 6
    assert [r["step"] for r in read_log(str(out)) if r.get("event") == "resume"] == [2]


def test_second_train_teco_into_the_same_out_is_refused(setup, tmp_path, monkeypatch):
    import teco.train
    out = tmp_path / "run"
    seen, started = [], []
    real_step = teco.train.train_step

    def step_and_start_a_second_run(*a, **kw):
        if not started:
            started.append(1)
            seen.append(call_cli(teco.train.main, args(setup, out, "--steps", "2", "--batch-size", "2")))
            seen.append(call_cli(teco.train.main, args(setup, out, "--steps", "2", "--batch-size", "2",
                                                        "--resume")))
        return real_step(*a, **kw)

    monkeypatch.setattr(teco.train, "train_step", step_and_start_a_second_run)
    assert teco.train.main(args(setup, out, "--steps", "2", "--batch-size", "2")) == 0
    for code, err in seen:
        assert code == 2 and err.count("\n") == 1 and "another" in err and str(out) in err, err


def test_second_train_vqgan_into_the_same_out_is_refused(tmp_path, monkeypatch):
    import teco.train_vqgan
    from test_vqgan import make_store as make_frame_store
    store = make_frame_store(tmp_path / "s.zarr")
    out = tmp_path / "vq"
    argv = ["--store", store, "--out", str(out), "--config", "tiny", "--device", "cpu", "--num-workers", "0",
            "--steps", "2", "--batch-size", "2", "--eval-frames", "2"]
    seen, started = [], []
    real_step = teco.train_vqgan.train_step

    def step_and_start_a_second_run(*a, **kw):
        if not started:
            started.append(1)
            seen.append(call_cli(teco.train_vqgan.main, argv + ["--resume"]))
        return real_step(*a, **kw)

    monkeypatch.setattr(teco.train_vqgan, "train_step", step_and_start_a_second_run)
    assert teco.train_vqgan.main(argv) == 0
    (code, err), = seen
    assert code == 2 and err.count("\n") == 1 and "another" in err, err


def test_sigint_finishes_the_step_saves_and_resumes_exactly(setup, tmp_path, monkeypatch, capsys):
    import teco.train
    a, b = tmp_path / "straight", tmp_path / "stopped"
    common = ("--steps", "6", "--batch-size", "2", "--log-every", "1", "--ckpt-every", "4")
    assert teco.train.main(args(setup, a, *common)) == 0
    real_step, calls = teco.train.train_step, []

    def step_with_ctrl_c(*a, **kw):   # Ctrl-C arrives in the middle of the 3rd step
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*a, **kw)

    monkeypatch.setattr(teco.train, "train_step", step_with_ctrl_c)
    capsys.readouterr()
    assert teco.train.main(args(setup, b, *common)) == 130
    err = capsys.readouterr().err
    assert "saved" in err and "step 3" in err, err
    assert load_checkpoint(str(b / "ckpt.pt"))["step"] == 3
    stop = [r for r in read_log(str(b)) if r.get("event") in ("interrupted", "stopped")]
    assert stop and stop[-1]["saved"] is True and stop[-1]["step"] == 3
    monkeypatch.setattr(teco.train, "train_step", real_step)
    assert teco.train.main(args(setup, b, *common, "--resume")) == 0
    la, lb = (({r["step"]: r["loss"] for r in read_log(str(x)) if "loss" in r}) for x in (a, b))
    assert sorted(lb) == list(range(1, 7))
    for s in range(1, 7):   # the data stream continues where the stopped run left it
        assert la[s] == pytest.approx(lb[s], rel=1e-6, abs=1e-6), (s, la[s], lb[s])


def test_sigterm_saves_and_says_so(setup, tmp_path, ray_home):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "teco.train", *args(setup, out, "--steps", "100000", "--batch-size", "2",
                                                     "--ckpt-every", "100000", "--log-every", "1")]
    p = subprocess.Popen(cmd, env=subprocess_env(ray_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count('"loss"') >= 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    step = load_checkpoint(str(out / "ckpt.pt"))["step"]
    assert step >= 2 and f"step {step}" in err and "saved" in err and "Traceback" not in err
    assert [r for r in read_log(str(out)) if r.get("event") == "stopped"][-1]["saved"] is True


def test_checkpoint_every_n_minutes(setup, tmp_path, monkeypatch):
    import teco.train
    from teco import runs
    saved = []
    real = runs.save_checkpoint
    monkeypatch.setattr(runs, "save_checkpoint", lambda path, obj, **kw: (saved.append(obj["step"]),
                                                                          real(path, obj, **kw)))
    assert teco.train.main(args(setup, tmp_path / "run", "--steps", "3", "--batch-size", "2",
                                "--ckpt-every", "1000", "--save-minutes", "1e-9")) == 0
    assert saved == [1, 2, 3]
    p = teco.train.build_parser().parse_args(["--out", "x"])
    assert 0 < p.save_minutes <= 60   # the default bounds lost work in wall time too


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs: room for run.json and the log, not for a checkpoint (needs mount permission)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("no permission to mount a tmpfs")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_while_checkpointing_is_one_line(setup, small_disk):
    from teco.train import main as train_main
    out = small_disk / "run"
    code, err = call_cli(train_main, args(setup, out, "--steps", "2", "--batch-size", "2"))
    last = err.strip().splitlines()[-1]   # above it: the progress bar
    assert code == 2 and "Traceback" not in err and last.startswith("train-teco: error:"), err
    assert str(out) in last and "space" in last.lower()
    assert not [f for f in os.listdir(out) if "tmp" in f]   # no half-written checkpoint left behind


def test_train_encode_leaves_out_unreadable_episodes_by_name(setup, tmp_path, capsys):
    import glob
    import json
    from teco.train import main as train_main
    from test_teco_train import make_store
    store = make_store(tmp_path / "bare.zarr", None, episodes=4, length=8)
    (shard,) = [p for p in glob.glob(f"{store}/video/c/1/**", recursive=True) if os.path.isfile(p)]
    os.remove(shard)
    out = tmp_path / "run"
    argv = args(dict(setup, store=store), out, "--steps", "1", "--batch-size", "2", "--encode")
    assert train_main(argv) == 0
    err = capsys.readouterr().err
    assert "episode 1" in err and "leaving out" in err
    run = json.load(open(out / "run.json"))
    assert 1 not in run["split"]["train"] and "missing object video/c/1" in run["left_out"]["1"]


def test_damaged_vqgan_checkpoint_is_refused_in_one_line(setup, tmp_path):
    import shutil
    from teco.encode import main as encode
    vq = tmp_path / "vq"
    shutil.copytree(setup["vq"], vq)
    _flip_bytes(vq / "ckpt.pt")
    code, err = call_cli(encode, ["--store", setup["store"], "--vqgan", str(vq), "--device", "cpu"])
    assert code == 2 and err.count("\n") == 1 and "damaged" in err and str(vq) in err, err


def test_train_vqgan_sigterm_finishes_the_step_and_saves(tmp_path, monkeypatch, capsys):
    import teco.train_vqgan
    from test_vqgan import make_store as make_frame_store
    store = make_frame_store(tmp_path / "s.zarr")
    out = tmp_path / "vq"
    argv = ["--store", store, "--out", str(out), "--config", "tiny", "--device", "cpu", "--num-workers", "0",
            "--steps", "50", "--batch-size", "2", "--eval-frames", "2", "--ckpt-every", "1000"]
    real_step, calls = teco.train_vqgan.train_step, []

    def step_with_sigterm(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*a, **kw)

    monkeypatch.setattr(teco.train_vqgan, "train_step", step_with_sigterm)
    assert teco.train_vqgan.main(argv) == 143
    assert "saved" in capsys.readouterr().err
    assert load_checkpoint(str(out / "ckpt.pt"))["step"] == 2
    monkeypatch.setattr(teco.train_vqgan, "train_step", real_step)
    assert teco.train_vqgan.main([("3" if a == "50" else a) for a in argv] + ["--resume"]) == 0
    assert load_checkpoint(str(out / "ckpt.pt"))["step"] == 3


@pytest.mark.slow
def test_ddp_ranks_agree_to_stop_and_save_on_sigterm(setup, tmp_path, ray_home):
    """torchrun forwards SIGTERM to every rank; they agree on the step, gather RNG states and save once."""
    import shutil
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    out = tmp_path / "run"
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "teco.train",
           *args(setup, out, "--steps", "100000", "--batch-size", "4", "--log-every", "1")]
    p = subprocess.Popen(cmd, env=subprocess_env(ray_home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "log.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and not (log.exists() and log.read_text().count('"loss"') >= 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    p.wait(90)
    ck = load_checkpoint(str(out / "ckpt.pt"))
    stopped = [r for r in read_log(str(out)) if r.get("event") == "stopped"]
    assert stopped and stopped[-1]["saved"] is True and stopped[-1]["step"] == ck["step"] >= 2
    assert len(ck["rng"]["generators"]) == 2   # both ranks' model RNG states
