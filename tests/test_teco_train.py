"""train-teco end to end on a tiny store: overfitting, exact resume, the run record, clear errors."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import structured_frames
from storage import StoreConfig, StoreReader, StoreWriter
from teco.runs import checkpoint_hash, save_checkpoint
from teco.runlog import read_log
from teco.train import main as train_main
from teco.vqgan import VQGAN, named_config

torch.set_num_threads(1)

T_EP, N_EP, N_ACT, VOCAB = 12, 4, 3, 8


def make_vqgan_run(path) -> str:
    """A train-vqgan run folder (config.json + ckpt.pt) holding a randomly initialised tiny VQ-GAN."""
    os.makedirs(path, exist_ok=True)
    cfg = named_config("tiny")
    torch.manual_seed(0)
    save_checkpoint(os.path.join(path, "ckpt.pt"), {"model": VQGAN(cfg).state_dict()})
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"name": "tiny", "vqgan": cfg.to_json(), "dataset": "synthetic"}, f)
    return checkpoint_hash(os.path.join(path, "ckpt.pt"))


def synthetic_codes(actions: np.ndarray, seed: int) -> np.ndarray:
    """int16 (T, 16, 16): a striped code pattern that each action shifts left / right / not at all,
    so the next frame is predictable from the previous one and the action."""
    g = np.random.default_rng(seed)
    frame = np.repeat(g.integers(0, VOCAB, (1, 16)), 16, axis=0)
    out = []
    for a in actions:
        out.append(frame)
        frame = np.roll(frame, (-1, 1, 0)[int(a)], axis=1)
    return np.stack(out).astype(np.int16)


def make_store(path, vq_hash: str | None, episodes: int = N_EP, length: int = T_EP) -> str:
    """Tiny 32x32 store; with vq_hash, synthetic codes recorded as made by that VQ-GAN."""
    cfg = StoreConfig(dataset="synthetic", episodes=episodes, length=length, height=32, width=32,
                      action_names=["left", "right", "stay"], pose_names=["x", "y", "z", "yaw"],
                      chunk_frames=4)   # divides both lengths used here
    w = StoreWriter.create(str(path), cfg)
    if vq_hash:
        w.ensure_codes(grid=16, vqgan_hash=vq_hash, codebook_size=64)
    for i in range(episodes):
        actions = np.random.default_rng(100 + i).integers(0, N_ACT, length)
        w.write_episode(i, video=structured_frames(length, 32, 32, seed=i), actions=actions,
                        pose=np.zeros((length, 4), np.float32))
        if vq_hash:
            w.write_field("codes", i, synthetic_codes(actions, seed=i))
        w.mark_complete(i, seed=i)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("teco_train")
    vq = str(root / "vq")
    h = make_vqgan_run(vq)
    return {"root": root, "vq": vq, "hash": h, "store": make_store(root / "store.zarr", h)}


def args(setup, out, *extra):
    return ["--store", setup["store"], "--vqgan", setup["vq"], "--out", str(out), "--config", "tiny",
            "--device", "cpu", "--num-workers", "0", "--seq-len", "8", *extra]


def losses(run) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(run) if "loss" in r}


def test_tiny_teco_overfits_four_episodes(setup):
    out = setup["root"] / "overfit"
    assert train_main(args(setup, out, "--steps", "40", "--batch-size", "4", "--lr", "6e-3", "--log-every", "1",
                           "--ckpt-every", "1000")) == 0
    ls = losses(out)
    first, last = np.mean([ls[s] for s in range(1, 4)]), np.mean([ls[s] for s in range(36, 41)])
    assert last < 0.6 * first, (first, last)
    run = json.load(open(out / "run.json"))
    assert run["vqgan"]["hash"] == setup["hash"] and run["store"] == StoreReader(setup["store"]).url
    train, test = run["split"]["train"], run["split"]["test"]
    assert len(test) >= 1 and not set(train) & set(test) and sorted(train + test) == list(range(N_EP))
    assert run["config"]["seq_len"] == 8 and run["config"]["vq_codes"] == 64
    assert run["config"]["action_dim"] == 6          # the config's rows (the authors' 6), not the store's 3
    assert os.path.isfile(out / "ckpt.pt")


def test_resume_continues_identically(setup, monkeypatch):
    a, b = setup["root"] / "straight", setup["root"] / "resumed"
    common = ("--steps", "4", "--batch-size", "2", "--log-every", "1", "--ckpt-every", "2")
    assert train_main(args(setup, a, *common)) == 0
    # the same run, interrupted (Ctrl-C) right after its step-2 checkpoint
    from teco import runs
    real_save, fired = runs.save_checkpoint, []

    def save_then_interrupt(path, state):
        real_save(path, state)
        if state["step"] == 2 and not fired:
            fired.append(1)
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_checkpoint", save_then_interrupt)
    assert train_main(args(setup, b, *common)) == 130
    monkeypatch.setattr(runs, "save_checkpoint", real_save)
    assert sorted(losses(b)) == [1, 2]
    # resume with only the run folder: store, VQ-GAN and config come from run.json
    assert train_main(["--out", str(b), "--resume", "--device", "cpu", "--num-workers", "0", *common]) == 0
    la, lb = losses(a), losses(b)
    assert sorted(lb) == [1, 2, 3, 4]
    for s in (1, 2, 3, 4):
        assert la[s] == pytest.approx(lb[s], rel=1e-6, abs=1e-6), (s, la[s], lb[s])
    assert la[3] != la[4]


def test_context_flag_builds_the_short_context_baseline(setup):
    out = setup["root"] / "ctx"
    assert train_main(args(setup, out, "--steps", "1", "--batch-size", "2", "--context", "2")) == 0
    run = json.load(open(out / "run.json"))
    assert run["context"] == 2 and run["config"]["max_context"] == 2


def test_clear_errors(setup, capsys):
    root = setup["root"]
    bare = make_store(root / "bare.zarr", None, episodes=2, length=8)
    assert train_main(args(dict(setup, store=bare), root / "e1", "--steps", "1")) == 2
    assert "teco-encode" in capsys.readouterr().err
    other = make_store(root / "other.zarr", "0123456789abcdef", episodes=2, length=8)
    assert train_main(args(dict(setup, store=other), root / "e2", "--steps", "1")) == 2
    assert "0123456789abcdef" in capsys.readouterr().err
    assert train_main(args(setup, root / "e3", "--steps", "1", "--seq-len", "99")) == 2
    assert "episode length" in capsys.readouterr().err
    out = root / "e4"
    assert train_main(args(setup, out, "--steps", "1", "--batch-size", "2")) == 0
    assert train_main(args(setup, out, "--steps", "1")) == 2                       # exists, no --resume
    assert "--resume" in capsys.readouterr().err
    assert train_main(["--out", str(root / "nothing"), "--resume"]) == 2
    assert train_main(["--out", str(out), "--resume", "--seq-len", "4", "--device", "cpu"]) == 2
    assert "seq_len" in capsys.readouterr().err


def test_encode_flag_runs_teco_encode_first(setup):
    root = setup["root"]
    bare = make_store(root / "bare2.zarr", None, episodes=2, length=8)
    out = root / "enc"
    assert train_main(args(dict(setup, store=bare), out, "--steps", "1", "--batch-size", "2", "--encode")) == 0
    r = StoreReader(bare)
    assert r.has("codes") and r.attrs["codes"]["vqgan_hash"] == setup["hash"]
    assert (r.read("codes", 0) >= 0).all()


def test_action_lead_flag_is_recorded_and_kept_on_resume(setup, capsys):
    out = setup["root"] / "lead"
    assert train_main(args(setup, out, "--steps", "2", "--batch-size", "2", "--action-lead", "1")) == 0
    assert json.load(open(out / "run.json"))["config"]["action_lead"] == 1
    assert train_main(args(setup, out, "--steps", "3", "--batch-size", "2", "--resume", "--action-lead", "0")) == 2
    assert "settings differ" in (err := capsys.readouterr().err) and "action_lead" in err
    assert train_main(args(setup, out, "--steps", "3", "--batch-size", "2", "--resume")) == 0


def test_action_embedding_keeps_the_configs_rows_unless_the_store_has_more(capsys):
    from teco.config import get_config
    from teco.train import action_dim_for
    cfg = get_config("dmlab")
    assert action_dim_for(cfg, ["a"] * 5) == 6 and capsys.readouterr().err == ""
    assert action_dim_for(cfg, ["a"] * 9) == 9 and "9 actions" in capsys.readouterr().err


def test_resume_refuses_a_changed_seed_or_test_fraction(setup, capsys):
    from teco.train import build_parser
    out = setup["root"] / "seeded"
    assert train_main(args(setup, out, "--steps", "1", "--batch-size", "2", "--seed", "3")) == 0
    before, _ = (out / "run.json").read_text(), capsys.readouterr()
    for flag, value in (("--seed", "4"), ("--test-fraction", "0.5")):
        assert train_main(args(setup, out, "--steps", "2", "--batch-size", "2", "--resume", flag, value)) == 2
        err = capsys.readouterr().err
        assert "settings differ" in err and flag[2:].replace("-", "_") in err and err.count("\n") == 1
    assert (out / "run.json").read_text() == before
    assert train_main(args(setup, out, "--steps", "2", "--batch-size", "2", "--resume", "--seed", "3")) == 0
    run = json.load(open(out / "run.json"))
    assert run["seed"] == 3 and run["split"]["test_fraction"] == 0.05
    assert "default: 0;" in " ".join(build_parser().format_help().split())     # --help still shows the default


def test_steps_zero_names_the_steps_flag(setup, capsys):
    assert train_main(args(setup, setup["root"] / "zero", "--steps", "0")) == 2
    assert "--steps must be positive" in capsys.readouterr().err
