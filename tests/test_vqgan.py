"""VQ-GAN tokenizer: shapes, codebook, losses, LPIPS loading, checkpoints, train-vqgan (CPU, seconds)."""
import json
import os

import numpy as np
import pytest
import torch

from storage import StoreConfig, StoreWriter
from teco.runs import checkpoint_hash, load_checkpoint, save_checkpoint
from teco.lpips import LPIPS
from teco.modules import VectorQuantizer
from teco.runlog import read_log
from teco.train_vqgan import main as train_main
from teco.vqgan import (VQGAN, VQGAN_CONFIGS, PatchDiscriminator, adaptive_weight, hinge_d_loss, load_vqgan,
                        named_config, to_float)

torch.set_num_threads(1)


def synthetic_video(ep: int, T: int, size: int) -> np.ndarray:
    """uint8 (T, size, size, 3): per-episode background with a square moving across it."""
    rng = np.random.default_rng(ep)
    bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    v = np.empty((T, size, size, 3), np.uint8)
    v[:] = bg.astype(np.uint8)
    s = size // 4
    for t in range(T):
        x = (t * 3 + ep * 5) % (size - s)
        y = (t * 2 + ep * 7) % (size - s)
        v[t, y:y + s, x:x + s] = fg.astype(np.uint8)
        v[t, :, size // 2] = 255 - bg.astype(np.uint8)   # a fixed line: structure shared by all frames
    return v


def make_store(path, episodes=4, T=8, size=32, dataset="synthetic", complete=None) -> str:
    cfg = StoreConfig(dataset=dataset, episodes=episodes, length=T, height=size, width=size,
                      action_names=["left", "right"], pose_names=["x", "y", "z", "yaw"],
                      chunk_frames=4)   # chunk_frames > T trips a shard/chunk mismatch in storage.schema
    w = StoreWriter.create(str(path), cfg)
    for i in range(episodes):
        w.write_episode(i, video=synthetic_video(i, T, size), actions=np.zeros(T, np.int32),
                        pose=np.zeros((T, 4), np.float32))
        if complete is None or i in complete:
            w.mark_complete(i, seed=i)
    return str(path)


# -- model ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(VQGAN_CONFIGS))
def test_named_config_maps_frames_to_16x16(name):
    cfg = named_config(name)
    assert cfg.grid == 16
    with torch.device("meta"):   # shape-only forward: no memory, no compute
        model = VQGAN(cfg)
        recon, vq_loss, codes = model(torch.empty(1, 3, cfg.resolution, cfg.resolution))
    assert codes.shape == (1, 16, 16) and recon.shape == (1, 3, cfg.resolution, cfg.resolution)
    assert vq_loss.shape == ()


def test_paper_codebook_sizes_and_resolutions():
    assert [VQGAN_CONFIGS[n].codebook_size for n in ("dmlab", "minecraft", "habitat")] == [1024, 1024, 8192]
    # the authors' VQ-GAN looks codes up by plain Euclidean distance; l2-normalised lookup is our CPU-scale choice
    assert not any(VQGAN_CONFIGS[n].l2_normalize for n in ("dmlab", "minecraft", "habitat"))
    assert all(VQGAN_CONFIGS[n].l2_normalize for n in ("tiny", "tiny64", "tiny64k"))
    assert [VQGAN_CONFIGS[n].resolution for n in ("dmlab", "minecraft", "habitat")] == [64, 128, 128]
    with pytest.raises(ValueError, match="unknown VQ-GAN config"):
        named_config("kinetics")


def test_tiny_encode_decode_shapes():
    torch.manual_seed(0)
    cfg = named_config("tiny")
    model = VQGAN(cfg).eval()
    frames = torch.from_numpy(synthetic_video(0, 3, 32))
    codes = model.encode(frames)
    assert codes.shape == (3, 16, 16) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < cfg.codebook_size
    out = model.decode(codes)
    assert out.shape == (3, 32, 32, 3) and out.dtype == torch.uint8
    assert model.codebook_embeddings().shape == (cfg.codebook_size, cfg.embed_dim)
    assert torch.equal(model.encode(frames), codes)   # deterministic
    recon, _, codes2 = model(to_float(frames))
    assert torch.equal(codes2, codes) and recon.shape == (3, 3, 32, 32)
    logits = PatchDiscriminator(cfg.disc_channels, cfg.disc_layers)(recon)
    assert logits.shape[:2] == (3, 1)


@pytest.mark.parametrize("l2,proj", [(False, None), (True, 4)])
def test_vq_nearest_neighbour_loss_and_straight_through(l2, proj):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 8, beta=0.25, l2_normalize=l2, proj_dim=proj)
    z = torch.randn(2, 8, 3, 3, requires_grad=True)
    zq, codes, loss = vq(z)
    # nearest code by brute force in lookup space
    zf = vq._lookup_space(z).detach().reshape(-1, vq.code_dim)
    e = vq.codebook().detach()
    assert torch.equal(codes.reshape(-1), torch.cdist(zf, e).argmin(1))
    # value: ||sg(z)-e||^2 + beta ||z-sg(e)||^2 = (1 + beta) mse
    assert torch.allclose(loss, 1.25 * ((zf - e[codes.reshape(-1)]) ** 2).mean(), atol=1e-6)
    assert torch.allclose(vq.embed(codes), zq, atol=1e-6)
    # straight-through: a loss on z_q alone reaches the input
    zq.square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_straight_through_reaches_encoder():
    torch.manual_seed(0)
    model = VQGAN(named_config("tiny"))
    recon, _, _ = model(to_float(torch.from_numpy(synthetic_video(1, 2, 32))))
    recon.abs().mean().backward()   # reconstruction only, no VQ loss
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.quantizer.embedding.weight.grad is None or model.quantizer.embedding.weight.grad.abs().sum() == 0


def test_adaptive_weight_formula_and_clamp():
    w = torch.randn(4, 3, requires_grad=True)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    lam = adaptive_weight((w * a).sum(), (w * b).sum(), w)
    assert torch.allclose(lam, a.norm() / (b.norm() + 1e-6))
    assert not lam.requires_grad
    assert adaptive_weight((w * a).sum(), (w * 0).sum(), w).item() == pytest.approx(1e4)
    assert hinge_d_loss(torch.full((2,), 2.0), torch.full((2,), -2.0)).item() == 0.0
    assert hinge_d_loss(torch.zeros(2), torch.zeros(2)).item() == pytest.approx(1.0)


# -- LPIPS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_loads_package_and_torchvision_layouts(tmp_path, net):
    torch.manual_seed(0)
    ref = LPIPS(net)
    for p in ref.parameters():
        p.data.normal_(0, 0.1)
    for lin in ref.lins:   # trained heads are non-negative
        lin.weight.data.abs_()
    sd = ref.state_dict()
    # lpips package layout: net.slice{k}.{i}.* + lin{k}.model.1.weight (features split at the slice ends)
    pkg, start = {}, 0
    for s, end in enumerate(ref.slices, 1):
        for i in range(start, end):
            for kind in ("weight", "bias"):
                if f"features.{i}.{kind}" in sd:
                    pkg[f"net.slice{s}.{i}.{kind}"] = sd[f"features.{i}.{kind}"]
        start = end
    for k in range(5):
        pkg[f"lin{k}.model.1.weight"] = sd[f"lins.{k}.weight"]
    torch.save(pkg, tmp_path / "full.pth")
    # lin heads only + torchvision backbone file
    torch.save({f"lin{k}.model.1.weight": sd[f"lins.{k}.weight"] for k in range(5)}, tmp_path / "heads.pth")
    torch.save({k: v for k, v in sd.items() if k.startswith("features.")}, tmp_path / "backbone.pth")

    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    want = ref(x, y)
    assert want.shape == (2,) and (want > 0).all()
    a = LPIPS.from_file(tmp_path / "full.pth")
    b = LPIPS.from_file(tmp_path / "heads.pth", backbone=tmp_path / "backbone.pth")
    assert a.net_name == b.net_name == net
    assert torch.allclose(a(x, y), want) and torch.allclose(b(x, y), want)
    assert torch.allclose(a(x, x), torch.zeros(2))
    with pytest.raises(ValueError, match="--lpips-backbone"):   # names the flag that gives it
        LPIPS.from_file(tmp_path / "heads.pth")
    with pytest.raises(FileNotFoundError):
        LPIPS.from_file(tmp_path / "nope.pth")


def test_lpips_gradient_reaches_input():
    torch.manual_seed(0)
    m = LPIPS("alex")
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    m(x, torch.rand(1, 3, 64, 64)).sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in m.parameters())


# -- checkpoints ------------------------------------------------------------------------------------

def test_checkpoint_atomic_save_load_hash(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(p, {"w": torch.ones(3), "step": 4})
    assert os.listdir(tmp_path) == ["c.pt"]
    assert load_checkpoint(p)["step"] == 4
    h = checkpoint_hash(p)
    assert len(h) == 16 and h == checkpoint_hash(p)
    save_checkpoint(p, {"w": torch.zeros(3), "step": 4})
    assert checkpoint_hash(p) != h
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        checkpoint_hash(tmp_path / "none.pt")


# -- train-vqgan ------------------------------------------------------------------------------------

def _train(store, run, *extra):
    return train_main(["--store", store, "--out", str(run), "--config", "tiny", "--device", "cpu",
                       "--num-workers", "0", "--log-every", "5", *extra])


def test_tiny_vqgan_overfits_small_store(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    run = tmp_path / "run"
    # reconstruction + VQ only (the GAN path is covered by the resume test)
    assert _train(store, run, "--steps", "40", "--batch-size", "4", "--lr", "3e-3", "--disc-start", "1000",
                  "--log-every", "1") == 0
    recs = [r["rec"] for r in read_log(run) if "rec" in r]
    assert len(recs) == 40
    assert np.mean(recs[-5:]) < 0.6 * np.mean(recs[:5]), recs
    meta = json.loads((run / "run.json").read_text())
    assert meta["name"] == "tiny" and meta["dataset"] == "synthetic" and meta["vqgan"]["resolution"] == 32
    assert (run / "recon.png").stat().st_size > 0
    assert "test_psnr" in read_log(run)[-1]
    model, h = load_vqgan(run)
    assert h == checkpoint_hash(run / "ckpt.pt") and not model.training


def test_resume_and_user_errors(tmp_path, capsys):
    store = make_store(tmp_path / "s.zarr")
    run = tmp_path / "run"
    assert _train(store, run, "--steps", "6", "--batch-size", "4", "--ckpt-every", "3", "--disc-start", "3") == 0
    assert load_checkpoint(run / "ckpt.pt")["step"] == 6
    first = load_checkpoint(run / "ckpt.pt")["model"]
    # an existing run is not silently overwritten
    assert _train(store, run, "--steps", "6") == 2
    assert "--resume" in capsys.readouterr().err
    assert _train(store, run, "--steps", "10", "--batch-size", "4", "--disc-start", "3", "--resume") == 0
    ckpt = load_checkpoint(run / "ckpt.pt")
    assert ckpt["step"] == 10
    assert any(not torch.equal(first[k], ckpt["model"][k]) for k in first)
    events = [(r["event"], r.get("step")) for r in read_log(run) if "event" in r]
    # held-out PSNR at the intermediate checkpoint (step 3 of 6); the last one gets the final evaluation
    assert events == [("start", 0), ("heldout", 3), ("resume", 6)]
    assert 0 < next(r for r in read_log(run) if r.get("event") == "heldout")["test_psnr"] < 100
    stats = [r for r in read_log(run) if "rec" in r]
    assert [r["step"] for r in stats] == [5, 6, 10]
    assert all("d" in r and "d_weight" in r for r in stats)   # GAN active after --disc-start
    # resolution must match the store
    assert train_main(["--store", store, "--out", str(tmp_path / "r2"), "--config", "tiny64",
                       "--device", "cpu", "--num-workers", "0"]) == 2
    assert "expects 64x64" in capsys.readouterr().err
    assert _train(str(tmp_path / "missing.zarr"), tmp_path / "r3") == 2


def test_l2_codes_flag_turns_on_normalised_lookup_for_a_new_run_only(tmp_path, capsys):
    import dataclasses
    import teco.vqgan as vq
    store = make_store(tmp_path / "s.zarr")
    plain = dataclasses.replace(VQGAN_CONFIGS["tiny"], l2_normalize=False)
    vq.VQGAN_CONFIGS["plain"] = plain            # a tiny config with the paper configs' plain lookup
    try:
        assert _train(store, tmp_path / "p", "--config", "plain", "--steps", "1", "--batch-size", "2") == 0
        assert json.loads((tmp_path / "p" / "run.json").read_text())["vqgan"]["l2_normalize"] is False
        assert _train(store, tmp_path / "l2", "--config", "plain", "--steps", "1", "--batch-size", "2",
                      "--l2-codes") == 0
        assert json.loads((tmp_path / "l2" / "run.json").read_text())["vqgan"]["l2_normalize"] is True
        assert load_vqgan(tmp_path / "l2")[0].quantizer.l2_normalize
        assert _train(store, tmp_path / "p", "--config", "plain", "--steps", "2", "--batch-size", "2", "--resume",
                      "--l2-codes") == 2
        assert "keeps its lookup" in capsys.readouterr().err
    finally:
        del vq.VQGAN_CONFIGS["plain"]


def test_lpips_reloads_its_own_state_dict(tmp_path):
    from teco.lpips import LPIPS
    torch.manual_seed(0)
    m = LPIPS("alex")
    for p in m.parameters():
        p.data.normal_()
    torch.save(m.state_dict(), tmp_path / "own.pt")
    m2 = LPIPS.from_file(str(tmp_path / "own.pt"))
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.allclose(m(x, y), m2(x, y))


def test_resume_refuses_changed_settings_and_keeps_the_record(tmp_path, capsys):
    store = make_store(tmp_path / "s.zarr")
    run, weights = tmp_path / "run", str(tmp_path / "alex.pth")
    torch.save(LPIPS("alex").state_dict(), weights)
    assert _train(store, run, "--steps", "2", "--batch-size", "2", "--lpips-weights", weights) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["lpips"] and meta["lpips_files"]["weights"] == weights
    assert (meta["seed"], meta["test_fraction"], meta["window"]) == (0, 0.05, 4)
    before, _ = (run / "run.json").read_text(), capsys.readouterr()
    # without the LPIPS weights it was trained with: refused, naming the file
    assert _train(store, run, "--steps", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert f"--lpips-weights {weights}" in err and err.count("\n") == 1
    for flag, value in (("--batch-size", "4"), ("--window", "2"), ("--seed", "1"), ("--test-fraction", "0.5")):
        assert _train(store, run, "--steps", "3", "--resume", "--lpips-weights", weights, flag, value) == 2
        err = capsys.readouterr().err
        assert "settings differ" in err and flag[2:].replace("-", "_") in err and err.count("\n") == 1
    assert (run / "run.json").read_text() == before and load_checkpoint(run / "ckpt.pt")["step"] == 2
    # --steps and --lr may change: the new target is recorded, the lr change listed, the rest kept
    assert _train(store, run, "--steps", "3", "--resume", "--lpips-weights", weights, "--lr", "1e-3") == 0
    after = json.loads((run / "run.json").read_text())
    assert after["vqgan"]["steps"] == 3 and after["lr_changes"] == [{"step": 2, "lr": 1e-3}]
    assert after["vqgan"]["lr"] == meta["vqgan"]["lr"] and after["vqgan"]["batch_size"] == 2 and after["lpips"]
    assert [r["lr"] for r in read_log(run) if "rec" in r][-1] == 1e-3
    assert _train(store, tmp_path / "zero", "--steps", "0") == 2
    assert "--steps" in capsys.readouterr().err
