"""eval-teco: protocol index arithmetic, skipped metrics, end to end on tiny trained runs; the AR baseline."""
import json
import math
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from storage import StoreConfig, StoreReader, StoreWriter
from teco import evaluate as ev
from teco.baselines import ARPrior
from teco.config import TransformerConfig

torch.set_num_threads(1)


# -- protocol arithmetic ----------------------------------------------------------------------------

def test_paper_split_uses_exactly_the_right_frames():
    p = ev.Protocol()
    assert p.tasks(fvd=True) == {"frames": (144, 300), "fvd": (36, 300), "fvd_kinetics": (20, 100)}
    assert p.tasks(fvd=False) == {"frames": (144, 300)}
    cond, pred = ev.split_frames(0, 144, 300)
    assert (cond.start, cond.stop, pred.start, pred.stop) == (0, 144, 144, 300)
    assert len(cond) == 144 and len(pred) == 156
    cond, pred = ev.split_frames(7, 144, 300)
    assert (cond[0], cond[-1], pred[0], pred[-1]) == (7, 150, 151, 306)
    with pytest.raises(ValueError, match="fvd-length"):
        ev.Protocol(fvd_cond=36, fvd_length=36)


def test_plan_examples():
    eps = list(range(10))
    plan = ev.plan_examples(eps, length=300, need=300, batch_size=4, runs=3, seed=0)
    assert len(plan) == 3 and all(len(r) == 4 for r in plan)
    assert all(s == 0 for r in plan for _, s in r)                     # 300-frame episodes: window at 0
    assert len({tuple(r) for r in plan}) > 1                            # runs draw different episodes
    assert all(len({e for e, _ in r}) == 4 for r in plan)               # no episode twice in a run
    few = ev.plan_examples([3, 5], length=12, need=10, batch_size=256, runs=2, seed=1)
    assert [[e for e, _ in r] for r in few] == [[3, 5], [3, 5]]         # fewer than 256: all of them
    assert all(0 <= s <= 2 for r in few for _, s in r)
    assert few == ev.plan_examples([3, 5], length=12, need=10, batch_size=256, runs=2, seed=1)
    with pytest.raises(ValueError, match="12 frames but the protocol needs 13"):
        ev.plan_examples([3], length=12, need=13, batch_size=1, runs=1, seed=0)


# -- a store whose frames encode their index -----------------------------------------------------

SIZE, T = 32, 12


def _index_store(path, episodes=4, length=T, pose=None):
    # no registered dataset: eval-teco takes the revisit tolerances from the store's recorded params
    cfg = StoreConfig(dataset="index_frames", episodes=episodes, length=length, height=SIZE, width=SIZE,
                      action_names=["a", "b", "c"], pose_names=["x", "y", "z", "yaw"], chunk_frames=4,
                      params={"pose_units": "test units", "revisit": {"radius": 25.0, "yaw": 20.0}})
    w = StoreWriter.create(str(path), cfg)
    for i in range(episodes):
        video = np.repeat((np.arange(length) * 10 + i)[:, None, None, None], SIZE, 1).repeat(SIZE, 2).repeat(3, 3)
        p = pose(i) if pose else np.tile(np.array([1000.0 * i, 0, 0, 0], np.float32), (length, 1))
        w.write_episode(i, video=video.astype(np.uint8), actions=np.arange(length) % 3, pose=p)
        w.mark_complete(i, seed=i)
    return StoreReader(str(path))


class _ConstantModel:
    """Predicts black frames; records what it was given (the evaluation's only contact with a model)."""

    def __init__(self):
        self.calls = []

    def store_codes(self, reader):
        return False

    def predict(self, video, actions, cond, codes, generator):
        self.calls.append((video.clone(), actions.clone(), cond))
        return torch.zeros_like(video[:, cond:])


def _evaluation(reader, protocol, plan, revisit=None, lpips=(None, "no LPIPS")):
    return ev.Evaluation(reader, protocol, plan, sample_batch=3, seed=0, lpips=lpips, i3d=(None, "no I3D"),
                         revisit=revisit or {"skipped": "test"}, device=torch.device("cpu"))


def test_frames_task_feeds_and_scores_the_right_frames(tmp_path):
    reader = _index_store(tmp_path / "s.zarr")
    protocol = ev.Protocol(cond=4, horizon=5, fvd_cond=2, fvd_length=10, kinetics_cond=1, kinetics_length=9)
    plan = {"frames": ev.plan_examples([0, 1, 2, 3], T, 9, batch_size=4, runs=1, seed=0)}
    plan["frames"][0] = [(0, 0), (1, 3), (2, 1), (3, 2)]          # fixed starts: known frame indices
    model = _ConstantModel()
    out = _evaluation(reader, protocol, plan).run(model, _NoBar())
    fed = torch.cat([c[0] for c in model.calls])
    for (e, s), v in zip(plan["frames"][0], fed):                  # the window start..start+9 of episode e
        assert v.shape == (9, SIZE, SIZE, 3)
        assert v[:, 0, 0, 0].tolist() == [10 * t + e for t in range(s, s + 9)]
    acts = torch.cat([c[1] for c in model.calls])
    assert acts[1].tolist() == [t % 3 for t in range(3, 12)]
    assert all(c[2] == 4 for c in model.calls)
    # black predictions against frames of value 10 t + e: PSNR of step k is known exactly
    want = [np.mean([20 * math.log10(255 / (10 * (s + 4 + k) + e)) for e, s in plan["frames"][0]]) for k in range(5)]
    assert np.allclose(out["per_step"]["psnr"], want, atol=1e-4)
    assert out["psnr"]["mean"] == pytest.approx(np.mean(want), abs=1e-4)
    assert out["lpips"] == {"skipped": "no LPIPS"}
    assert out["fvd"] == {"skipped": "no I3D"} and out["fvd_kinetics"] == {"skipped": "no I3D"}
    assert out["revisit"] == {"skipped": "test"}


def test_revisits_are_counted_in_the_frames_task(tmp_path):
    def pose(i):   # episode i walks east 10 units a frame, then turns round at frame 6 and walks back
        x = np.array([10.0 * t if t < 6 else 10.0 * (11 - t) for t in range(T)])
        yaw = np.where(np.arange(T) < 6, 0.0, 180.0)
        return np.stack([x, np.zeros(T), np.zeros(T), yaw], 1).astype(np.float32)
    reader = _index_store(tmp_path / "r.zarr", episodes=2, pose=pose)
    protocol = ev.Protocol(cond=8, horizon=4)
    plan = {"frames": [[(0, 0), (1, 0)]]}
    # frames 8..11 are at x 30, 20, 10, 0 heading 180; conditioning frames 6, 7 are at x 50, 40 heading
    # 180 and frames 0..5 head 0: with radius 10 frames 8 (x 30: 40 is 10 away) is a revisit of 7, the rest novel
    out = _evaluation(reader, protocol, plan, revisit={"radius": 10.0, "yaw_tolerance": 20.0}).run(_ConstantModel(), _NoBar())
    rv = out["revisit"]
    assert (rv["revisited_frames"], rv["novel_frames"], rv["examples"]) == (2, 6, 2)
    assert rv["radius"] == 10.0 and rv["revisited"]["psnr_vs_earlier"] is not None


class _NoBar:
    def update(self, n):
        pass


def test_consistency_split_memory_novel_recent(tmp_path):
    """Predicted frames split by when their place was last seen: beyond the short context but within the
    model's (memory), never (novel), within the short context (recent)."""
    def pose(i):   # A A, then new places, A again at frame 10 (last seen at 1: gap 9) and 11 (gap 1)
        x = [0.0, 0.0] + [1000.0 + 100 * t for t in range(2, 10)] + [0.0, 0.0]
        return np.stack([np.array(x), np.zeros(T), np.zeros(T), np.zeros(T)], 1).astype(np.float32)
    reader = _index_store(tmp_path / "c.zarr", episodes=2, pose=pose)
    protocol = ev.Protocol(cond=8, horizon=4)
    plan = {"frames": [[(0, 0), (1, 0)], [(0, 0), (1, 0)]]}
    e = _evaluation(reader, protocol, plan, revisit={"radius": 10.0, "yaw_tolerance": 20.0})
    e.short_context = 4
    c = e.run(_ConstantModel(), _NoBar())["consistency"]
    assert (c["short_context"], c["long_context"]) == (4, None)
    assert (c["memory"]["frames_per_run"], c["novel"]["frames_per_run"], c["recent"]["frames_per_run"]) == \
        ([2, 2], [4, 4], [2, 2])
    assert c["memory"]["frames"] == 4
    # black predictions: the memory frames are frame 10 of episodes 0 and 1 (values 100, 101)
    want = np.mean([20 * math.log10(255 / (100 + i)) for i in (0, 1)])
    assert c["memory"]["psnr"]["mean"] == pytest.approx(want, abs=1e-4) and len(c["memory"]["psnr"]["per_run"]) == 2
    e.long_context = 8        # the longest model compared sees 8 frames back: gap 9 is no memory frame
    short_model = _ConstantModel()
    short_model.context = 4   # the cohort is the evaluation's, not the model's: the short model is scored on it
    c = e.run(short_model, _NoBar())["consistency"]
    assert c["memory"]["frames"] == 0 and c["memory"]["psnr"] is None and c["long_context"] == 8
    e.long_context = 9
    assert e.run(short_model, _NoBar())["consistency"]["memory"]["frames"] == 4
    copy = ev.CopyLast().predict(torch.arange(6)[None, :, None, None, None].expand(1, 6, 2, 2, 3), None, 4, None, None)
    assert copy[0, :, 0, 0, 0].tolist() == [3, 3]


def test_side_by_side_and_curves_png(tmp_path):
    res = {"teco": {"psnr": {"mean": 20.0}, "ssim": {"mean": 0.5}, "lpips": {"skipped": "x"},
                    "fvd": {"skipped": "x"}, "revisit": {"revisited": {"psnr_vs_truth": 21.0}}},
           "baseline": {"psnr": {"mean": 18.0}, "ssim": {"mean": 0.4}, "lpips": {"skipped": "x"},
                        "fvd": {"skipped": "x"}, "revisit": {"skipped": "x"}}}
    table = ev.side_by_side(res)
    assert table["psnr"] == {"teco": 20.0, "baseline": 18.0}
    assert table["lpips"] == {"teco": None, "baseline": None}
    assert table["revisit_psnr_vs_truth"] == {"teco": 21.0, "baseline": None}
    path = tmp_path / "c.png"
    ev.draw_curves(str(path), {"teco": {"psnr": [20, 19, 18], "ssim": [0.5, 0.4, 0.3]},
                               "baseline": {"psnr": [19, 17, 15], "ssim": [0.4, 0.3, 0.2]}})
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[1] == 2 * 420
    assert ((img == (31, 119, 180)).all(-1)).sum() > 20 and ((img == (255, 127, 14)).all(-1)).sum() > 20


# -- the autoregressive baseline of bench/sample.py -------------------------------------------------

def test_ar_prior_cached_sampling_equals_uncached_greedy():
    torch.manual_seed(0)
    m = ARPrior(11, TransformerConfig(32, 64, 4, 2), action_dim=3, grid=2).eval()
    codes, acts = torch.randint(0, 11, (2, 3, 2, 2)), torch.randint(0, 3, (2, 5))
    steps = []
    out = m.sample(codes, acts, length=2, temperature=0.0, progress=steps.append)
    assert out.shape == (2, 5, 2, 2) and torch.equal(out[:, :3], codes)
    assert steps == list(range(1, 9))                                  # one forward per generated token
    full = torch.cat([codes, torch.zeros(2, 2, 2, 2, dtype=torch.long)], 1).flatten(1)
    with torch.no_grad():
        for p in range(12, 20):
            full[:, p] = m(full.view(2, 5, 2, 2), acts)[:, p].argmax(-1)
    assert torch.equal(out.flatten(1), full)
    # the actions condition the tokens: changing an action changes the prediction
    acts2 = acts.clone()
    acts2[:, 2] = (acts2[:, 2] + 1) % 3
    with torch.no_grad():
        assert not torch.allclose(m(out, acts), m(out, acts2))
    loss = m.loss(out, acts)
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))


# -- end to end on tiny trained runs ------------------------------------------------------------------

class _Detector(torch.nn.Module):
    """A TorchScript video embedder with the i3d_torchscript.pt call signature (teco/i3d.py loads
    that format); cheap features stand in for the 400 I3D logits in this CPU test."""

    def forward(self, x, rescale: bool = True, resize: bool = True, return_features: bool = False):
        t = x.shape[2] // 2
        return torch.cat([x[:, :, :t].mean((2, 3, 4)), x[:, :, t:].mean((2, 3, 4)), x.std((2, 3, 4))], 1)


def _lpips_file(path):
    from teco.lpips import LPIPS
    torch.manual_seed(0)
    net = LPIPS("alex")
    for lin in net.lins:
        lin.weight.data.uniform_(0.1, 1.0)
    sd = {f"net.slice1.{k.split('.', 1)[1]}": v for k, v in net.state_dict().items() if k.startswith("features")}
    sd.update({f"lin{i}.model.1.weight": lin.weight for i, lin in enumerate(net.lins)})
    torch.save(sd, path)
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 12-frame 32 px store with out-and-back trajectories, a 1-step tiny VQ-GAN, a 2-step tiny TECO
    and a 2-step short-context (--context 2) baseline, all made by the real trainers."""
    from teco.train import main as train_teco
    from teco.train_vqgan import main as train_vqgan
    d = tmp_path_factory.mktemp("eval")

    def pose(i):
        x = np.array([10.0 * t if t < 6 else 10.0 * (11 - t) for t in range(T)])
        return np.stack([x, np.zeros(T), np.zeros(T), np.where(np.arange(T) < 6, 0.0, 180.0)], 1).astype(np.float32)
    store = str(d / "s.zarr")
    _index_store(store, episodes=8, pose=pose)
    assert train_vqgan(["--store", store, "--out", str(d / "vq"), "--config", "tiny", "--steps", "1",
                        "--batch-size", "2", "--device", "cpu", "--num-workers", "0", "--eval-frames", "2"]) == 0
    common = ["--store", store, "--vqgan", str(d / "vq"), "--config", "tiny", "--steps", "2", "--batch-size", "2",
              "--seq-len", "6", "--device", "cpu", "--num-workers", "0", "--test-fraction", "0.3"]
    assert train_teco(common + ["--out", str(d / "teco"), "--encode"]) == 0
    assert train_teco(common + ["--out", str(d / "base"), "--context", "2"]) == 0
    with warnings.catch_warnings():      # torch.jit is deprecated; i3d_torchscript.pt files still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_Detector()), str(d / "i3d.pt"))
    return {"dir": d, "store": store, "teco": str(d / "teco"), "base": str(d / "base"),
            "lpips": _lpips_file(d / "alex.pth"), "i3d": str(d / "i3d.pt")}


TINY = ["--cond", "4", "--horizon", "6", "--fvd-cond", "3", "--fvd-length", "10", "--kinetics-cond", "2",
        "--kinetics-length", "9", "--device", "cpu"]


@pytest.mark.slow
def test_eval_teco_end_to_end(runs, capsys):
    out = runs["dir"] / "metrics.json"
    rc = ev.main(["--ckpt", runs["teco"], "--baseline", runs["base"], "--out", str(out), "--lpips-weights",
                  runs["lpips"], "--i3d-weights", runs["i3d"], "--batch-size", "8", "--runs", "2", *TINY])
    assert rc == 0, capsys.readouterr().err
    m = json.loads(out.read_text())
    test_eps = json.loads((runs["dir"] / "teco" / "run.json").read_text())["split"]["test"]
    assert m["test_episodes"] == len(test_eps) and m["protocol"]["examples_per_run"] == len(test_eps)
    assert m["protocol"]["cond"] == 4 and m["protocol"]["horizon"] == 6 and m["protocol"]["runs"] == 2
    assert any("instead of 8" in n for n in m["notes"])
    assert set(m["models"]) == {"teco", "baseline"} and m["models"]["baseline"]["max_context"] == 2
    for name, r in m["models"].items():
        for metric in ("psnr", "ssim", "lpips", "fvd", "fvd_kinetics"):
            assert len(r[metric]["per_run"]) == 2 and math.isfinite(r[metric]["mean"]), (name, metric)
        assert 0 < r["psnr"]["mean"] < 100 and -1 <= r["ssim"]["mean"] <= 1 and r["lpips"]["mean"] > 0
        assert all(len(r["per_step"][k]) == 6 for k in ("psnr", "ssim", "lpips"))
        rv = r["revisit"]
        # frame 8 of every test episode (x 30, heading 180) is within 25 units of frame 7 (x 40): a revisit
        assert rv["revisited_frames"] + rv["novel_frames"] == 2 * 6 * len(test_eps)
        assert rv["revisited_frames"] > 0 and rv["radius"] == 25.0 and rv["yaw_tolerance"] == 20.0
    assert m["side_by_side"]["psnr"]["teco"] == m["models"]["teco"]["psnr"]["mean"]
    for name, r in m["models"].items():
        c = r["consistency"]
        assert c["short_context"] == 2 and c["long_context"] == m["models"]["teco"]["context"]   # one cohort
        assert c["memory"]["frames_per_run"] == m["models"]["teco"]["consistency"]["memory"]["frames_per_run"]
        assert sum(c[g]["frames"] for g in ("memory", "novel", "recent")) <= 2 * 6 * len(test_eps)
        assert all(len(c[g]["frames_per_run"]) == 2 for g in ("memory", "novel", "recent"))
        lr = r["learning"]
        assert lr["frames"] > 0 and 0 <= lr["copy_acc"] <= 1 and lr["prior_nll_per_token"] > 0
        assert lr["code_entropy"] > 0 and 0 <= lr["next_frame_acc"] <= 1
    assert m["models"]["baseline"]["context"] == 2 and m["models"]["teco"]["context"] == 5
    assert "floor" in m["copy_last_frame"]["fvd"]["skipped"] and len(m["copy_last_frame"]["per_step"]["psnr"]) == 6
    # short context 2, long 5: memory frames would be last seen 3-5 frames earlier; these windows have none
    assert m["models"]["teco"]["consistency"]["memory"]["frames"] == 0
    assert any(n.startswith("no memory frames") and "3 to 5 frames earlier" in n for n in m["notes"])
    assert len(m["sampling_seeds"]) == 2 and m["fvd_detector"]["kind"] == "torchscript"
    assert m["lpips_net"] == "alex" and m["lpips_weights"][0] == runs["lpips"]
    assert not any("LPIPS" in n for n in m["notes"])                     # the paper's network: nothing to note
    assert m["side_by_side"]["memory_psnr"].keys() == {"teco", "baseline", "copy_last_frame"}
    png = Image.open(m["curve_png"])
    assert png.size[0] == 3 * 420                                         # PSNR, SSIM, LPIPS panels
    cap = capsys.readouterr()
    assert "psnr" in cap.out and "copy_last_frame FVD skipped: not computed" in cap.err


@pytest.mark.slow
def test_eval_teco_skips_metrics_without_weights(runs, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))                 # an empty cache: nothing to find
    from teco import lpips
    monkeypatch.setattr(lpips, "_package_heads", lambda net: None)
    out = runs["dir"] / "plain.json"
    assert ev.main(["--ckpt", runs["teco"], "--out", str(out), "--batch-size", "1", "--runs", "1", *TINY]) == 0
    m = json.loads(out.read_text())
    r = m["models"]["teco"]
    assert set(m["models"]) == {"teco"} and m["protocol"]["examples_per_run"] == 1
    assert "--lpips-weights" in r["lpips"]["skipped"] and "--i3d-weights" in r["fvd"]["skipped"]
    assert "--i3d-weights" in r["fvd_kinetics"]["skipped"]
    assert str(tmp_path) in r["lpips"]["skipped"] and "i3d_torchscript.pt" in r["fvd"]["skipped"]
    assert math.isfinite(r["psnr"]["mean"]) and set(r["per_step"]) == {"psnr", "ssim"}
    assert m["side_by_side"]["lpips"] == {"teco": None, "copy_last_frame": None}
    assert os.path.isfile(str(out)[:-5] + "_curve.png")
    # the terminal says why, once per metric: the file and the folder it goes in
    err = capsys.readouterr().err.splitlines()
    lpips_lines = [line for line in err if "LPIPS skipped" in line]
    fvd_lines = [line for line in err if "FVD skipped" in line]
    assert len(lpips_lines) == 1 and "alex.pth" in lpips_lines[0] and str(tmp_path) in lpips_lines[0]
    assert len(fvd_lines) == 1 and "i3d_torchscript.pt" in fvd_lines[0]


@pytest.mark.slow
def test_eval_teco_fvd_needs_two_videos_per_run_and_says_so(runs, capsys):
    out = runs["dir"] / "one.json"
    assert ev.main(["--ckpt", runs["teco"], "--out", str(out), "--i3d-weights", runs["i3d"], "--batch-size", "1",
                    "--runs", "1", "--no-learning", *TINY]) == 0
    r = json.loads(out.read_text())["models"]["teco"]
    assert "at least 2 videos" in r["fvd"]["skipped"] and "at least 2 videos" in r["fvd_kinetics"]["skipped"]
    assert [line for line in capsys.readouterr().err.splitlines() if "FVD skipped" in line] == [
        f"eval-teco: FVD skipped: {r['fvd']['skipped']}"]


@pytest.mark.slow
def test_eval_teco_errors(runs, capsys):
    out = str(runs["dir"] / "e.json")
    assert ev.main(["--ckpt", runs["teco"], "--out", out, "--cond", "4", "--horizon", "20", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "12 frames" in err and "frames needs 24" in err and err.count("\n") == 1
    assert ev.main(["--ckpt", str(runs["dir"] / "nope"), "--out", out]) == 2
    assert "run.json" in capsys.readouterr().err
    assert ev.main(["--ckpt", runs["teco"], "--out", out, "--i3d-weights", str(runs["dir"] / "none.pt"), *TINY]) == 2
    assert "none.pt" in capsys.readouterr().err
    assert ev.main(["--ckpt", runs["teco"], "--out", str(runs["dir"] / "no" / "m.json"), *TINY]) == 2
    assert not os.path.exists(out)


@pytest.mark.slow
def test_eval_teco_refuses_foreign_weight_files_in_one_line(runs, capsys, tmp_path):
    gif = tmp_path / "a.gif"
    Image.new("RGB", (4, 4)).save(gif)
    other_kind = os.path.join(runs["teco"], "ckpt.pt")          # a train-teco checkpoint
    out = str(tmp_path / "m.json")
    for flag, want in (("--i3d-weights", "i3d_torchscript.pt"), ("--lpips-weights", "weights/v0.1/alex.pth")):
        for bad in (str(gif), other_kind):
            assert ev.main(["--ckpt", runs["teco"], "--out", out, flag, bad, *TINY]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and bad in err and f"expected" in err and want in err, err
    assert not os.path.exists(out)


@pytest.mark.slow
def test_eval_teco_lpips_backbone_flag(runs, capsys, tmp_path):
    sd = torch.load(runs["lpips"])      # the lpips package's layout: heads in one file, backbone in another
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, tmp_path / "alex.pth")
    torch.save({f"features.{k.split('.', 2)[2]}": v for k, v in sd.items() if k.startswith("net.")},
               tmp_path / "alexnet-owt-7be5be79.pth")
    heads, backbone = str(tmp_path / "alex.pth"), str(tmp_path / "alexnet-owt-7be5be79.pth")
    out = tmp_path / "m.json"
    argv = ["--ckpt", runs["teco"], "--out", str(out), "--lpips-weights", heads, "--no-fvd", "--no-learning",
            "--batch-size", "1", "--runs", "1", *TINY]
    assert ev.main(argv) == 2 and "--lpips-backbone" in capsys.readouterr().err
    assert ev.main(argv + ["--lpips-backbone", backbone]) == 0
    m = json.loads(out.read_text())
    assert m["lpips_weights"] == [heads, backbone] and math.isfinite(m["models"]["teco"]["lpips"]["mean"])


@pytest.mark.slow
def test_eval_teco_vqgan_flag_finds_a_moved_vqgan(runs, capsys, tmp_path):
    from conftest import copy_run_with_vqgan_moved
    run = copy_run_with_vqgan_moved(runs["teco"], tmp_path / "teco", tmp_path / "moved")
    argv = ["--ckpt", str(run), "--out", str(tmp_path / "m.json"), "--no-fvd", "--no-learning", "--batch-size", "1",
            "--runs", "1", *TINY]
    assert ev.main(argv) == 2
    assert "--vqgan DIR" in capsys.readouterr().err
    assert ev.main(argv + ["--vqgan", str(runs["dir"] / "vq")]) == 0


@pytest.mark.slow
def test_store_codes_and_reencoding_give_the_same_samples(runs):
    m = ev.Model(runs["teco"], torch.device("cpu"), ev.Sampler())
    reader = StoreReader(runs["store"])
    assert m.store_codes(reader)                                   # train-teco --encode wrote this VQ-GAN's codes
    assert m.sampler == {"draft_steps": 4, "revise_rounds": 1, "revise_steps": 4, "temperature": 1.0,
                         "sampler": "draft-revise"}  # tiny config, TECO's sampler
    e = m.test[0]
    video = torch.from_numpy(reader.read("video", e, 0, 7))[None]
    actions = torch.from_numpy(reader.read("actions", e, 0, 7))[None]
    codes = torch.from_numpy(reader.read("codes", e, 0, 4).astype(np.int64))[None]
    a = m.predict(video, actions, 4, codes, torch.Generator().manual_seed(3))
    b = m.predict(video, actions, 4, None, torch.Generator().manual_seed(3))
    c = m.predict(video, actions, 4, torch.full_like(codes, -1), torch.Generator().manual_seed(3))
    assert a.shape == (1, 3, SIZE, SIZE, 3) and a.dtype == torch.uint8
    assert torch.equal(a, b) and torch.equal(a, c)
