"""TECO sampling: shapes, conditioning, determinism, KV cache vs full recomputation, sample-teco, grids."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from teco.config import TransformerConfig, get_config
from teco.model import TECO
from teco.sample import load_teco, main as sample_main, sample
from teco.train import main as train_main
from storage.preview import tile, write_grid
from test_teco_train import make_store, make_vqgan_run

torch.set_num_threads(1)


def tiny_model(seed=0, **over):
    cfg = get_config("tiny", vq_codes=32, vq_dim=8, action_dim=3, seq_len=6,
                     z_tfm=TransformerConfig(32, 64, 2, 1), z_git=TransformerConfig(32, 64, 2, 1), **over)
    torch.manual_seed(seed)
    return TECO(cfg, torch.randn(32, 8)).eval()


def inputs(B=2, C=3, L=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 32, (B, C, 16, 16), generator=g), torch.randint(0, 3, (B, C + L), generator=g)


OPTS = dict(draft_steps=2, revise_rounds=1, revise_steps=2)


def test_sample_shape_conditioning_and_determinism():
    model = tiny_model()
    cond, actions = inputs(C=3, L=2)
    out = sample(model, cond, actions, 2, generator=torch.Generator().manual_seed(1), **OPTS)
    assert out.shape == (2, 5, 16, 16) and out.dtype == torch.long
    assert torch.equal(out[:, :3], cond)
    assert int(out.min()) >= 0 and int(out.max()) < 32
    again = sample(model, cond, actions, 2, generator=torch.Generator().manual_seed(1), **OPTS)
    other = sample(model, cond, actions, 2, generator=torch.Generator().manual_seed(2), **OPTS)
    assert torch.equal(out, again) and not torch.equal(out, other)
    with pytest.raises(ValueError):
        sample(model, cond, actions[:, :4], 2)                 # actions must cover C + L
    with pytest.raises(ValueError):
        sample(model, cond[:, :0], actions[:, :2], 2)           # no conditioning frame


def test_actions_steer_the_samples():
    model = tiny_model()
    cond, actions = inputs(B=1, C=2, L=3)
    g = lambda: torch.Generator().manual_seed(0)
    a = sample(model, cond, actions, 3, generator=g(), temperature=0.0, **OPTS)
    other = actions.clone()
    other[:, 1:] = (other[:, 1:] + 1) % 3
    b = sample(model, cond, other, 3, generator=g(), temperature=0.0, **OPTS)
    assert not torch.equal(a[:, 2:], b[:, 2:])


@pytest.mark.parametrize("context", [None, 2])
def test_kv_cached_sampling_equals_uncached_h(context, monkeypatch):
    model = tiny_model(max_context=context)
    cond, actions = inputs(C=2, L=3)
    seen_h, seen_z = [], []
    real = model.generate_frame

    def record(h, **kw):
        z, codes = real(h, **kw)
        seen_h.append(h)
        seen_z.append(z)
        return z, codes

    monkeypatch.setattr(model, "generate_frame", record)
    sample(model, cond, actions, 3, generator=torch.Generator().manual_seed(0), **OPTS)
    with torch.no_grad():
        z = torch.cat([model.encode(cond)[0], torch.stack(seen_z, 1)], 1)     # (B, C+L, E, g, g)
        h = model.temporal(z, actions)
    torch.testing.assert_close(torch.stack(seen_h, 1), h[:, 2:], atol=1e-5, rtol=1e-4)


def test_sampling_past_the_trained_length_slides_a_window():
    model = tiny_model()                                        # seq_len 6
    cond, actions = inputs(B=1, C=3, L=6)
    out = sample(model, cond, actions, 6, generator=torch.Generator().manual_seed(0), **OPTS)
    assert out.shape == (1, 9, 16, 16) and torch.equal(out[:, :3], cond)
    long_cond, long_actions = inputs(B=1, C=7, L=1)             # conditioning longer than seq_len
    assert sample(model, long_cond, long_actions, 1, **OPTS).shape == (1, 8, 16, 16)


def test_write_grid_gif_and_mp4(tmp_path):
    v = np.zeros((3, 4, 8, 10, 3), np.uint8)
    v[1] = 100
    v[0] = np.arange(4)[:, None, None, None] * 40     # distinct frames (GIF writers merge repeats)
    frames = tile(v, rows=2, pad=1)
    assert frames.shape == (4, 2 * 9 + 1, 2 * 11 + 1, 3)
    assert (frames[:, 1:9, 12:22] == 100).all() and (frames[:, 10:18, 12:22] == 255).all()   # empty cell
    gif = write_grid(tmp_path / "a.gif", list(v), rows=1, fps=5)
    assert iio.imread(gif).shape[0] == 4
    mp4 = write_grid(tmp_path / "a.mp4", v, rows=3)
    assert (tmp_path / "a.mp4").stat().st_size > 0 and mp4.endswith(".mp4")
    with pytest.raises(ValueError):
        write_grid(tmp_path / "a.avi", v)
    with pytest.raises(ValueError):
        write_grid(tmp_path / "b.gif", v.astype(np.float32))


def test_load_teco_and_sample_teco_cli(tmp_path, capsys):
    h = make_vqgan_run(str(tmp_path / "vq"))
    store = make_store(tmp_path / "s.zarr", h, episodes=4, length=8)
    run = tmp_path / "run"
    assert train_main(["--store", store, "--vqgan", str(tmp_path / "vq"), "--out", str(run), "--config", "tiny",
                       "--steps", "1", "--batch-size", "2", "--device", "cpu", "--num-workers", "0"]) == 0
    model, vqgan, info = load_teco(run)
    assert isinstance(model, TECO) and not model.training and info["step"] == 1
    test_eps = info["split"]["test"]
    assert test_eps and info["store"].endswith("s.zarr")
    out = tmp_path / "samples.npz"
    assert sample_main(["--ckpt", str(run), "--store", store, "--cond", "3", "--length", "6", "--out", str(out),
                        "--episodes", "2", "--device", "cpu", "--draft-steps", "2", "--revise-steps", "2"]) == 0
    d = np.load(out)
    n = min(2, len(test_eps))
    assert d["video_true"].shape == (n, 6, 32, 32, 3) == d["video_pred"].shape
    assert d["video_pred"].dtype == np.uint8 and d["actions"].shape == (n, 6)
    assert d["episodes"].tolist() == test_eps[:n]
    assert iio.imread(tmp_path / "samples.gif").shape[0] == 6
    # bad requests are one-line errors
    assert sample_main(["--ckpt", str(run), "--cond", "6", "--length", "6", "--out", str(out), "--device", "cpu"]) == 2
    assert "--cond" in capsys.readouterr().err
    assert sample_main(["--ckpt", str(tmp_path), "--out", str(out)]) == 2
