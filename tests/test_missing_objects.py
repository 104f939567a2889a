"""Issue 17.4, teco side: a store object that is missing (zarr would read fill values) or cut short is
never read as frames by train-vqgan's test metrics, sample-teco or eval-teco: skipped or refused by name."""
import glob
import json
import os

import numpy as np
import pytest
import torch

from conftest import call_cli
from storage import StoreError
from storage.split import split_episodes
from teco.runlog import read_log

torch.set_num_threads(1)


def drop_shard(store, name, i):
    (path,) = [p for p in glob.glob(f"{store}/{name}/c/{i}/**", recursive=True) if os.path.isfile(p)]
    os.remove(path)


def test_train_vqgan_does_not_measure_psnr_on_a_missing_shard(tmp_path, capsys):
    from teco.train_vqgan import main
    from test_vqgan import make_store
    store = make_store(tmp_path / "s.zarr", episodes=4)
    _, test = split_episodes(range(4), 0.05)
    for i in test:
        drop_shard(store, "video", i)
    out = tmp_path / "vq"
    assert main(["--store", store, "--out", str(out), "--config", "tiny", "--device", "cpu", "--num-workers", "0",
                 "--steps", "1", "--batch-size", "2", "--eval-frames", "2"]) == 0
    text = "".join(capsys.readouterr())
    assert f"episode {test[0]}" in text and "missing" in text
    assert not [r for r in read_log(str(out)) if "test_psnr" in r]   # no PSNR of black frames


def test_sample_teco_refuses_a_test_episode_whose_video_is_missing(tmp_path):
    from teco.sample import main as sample_main
    from teco.train import main as train_main
    from test_teco_train import make_store, make_vqgan_run
    h = make_vqgan_run(tmp_path / "vq")
    store = make_store(tmp_path / "s.zarr", h)
    run = tmp_path / "run"
    assert train_main(["--store", store, "--vqgan", str(tmp_path / "vq"), "--out", str(run), "--config", "tiny",
                       "--device", "cpu", "--num-workers", "0", "--seq-len", "8", "--steps", "1",
                       "--batch-size", "2"]) == 0
    test = json.loads((run / "run.json").read_text())["split"]["test"]
    for i in test:
        drop_shard(store, "video", i)
    out = tmp_path / "s.npz"
    code, err = call_cli(sample_main, ["--ckpt", str(run), "--cond", "2", "--length", "5", "--out", str(out),
                                       "--device", "cpu"])
    assert code == 2 and f"episode {test[0]}" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_eval_teco_reads_no_fill_values(tmp_path):
    from teco import evaluate as ev
    from test_evaluate import _index_store
    reader = _index_store(tmp_path / "s.zarr")
    drop_shard(reader.url, "video", 1)
    protocol = ev.Protocol(cond=4, horizon=6)
    plan = {"frames": ev.plan_examples([0, 1, 2, 3], 12, 10, 4, 1, 0)}
    e = ev.Evaluation(reader, protocol, plan, 4, 0, (None, None), (None, None), {}, torch.device("cpu"))
    with pytest.raises(StoreError, match="episode 1"):
        list(e._batches("frames", 0, False))
