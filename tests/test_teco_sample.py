"""TECO sampling: shapes, conditioning, determinism, KV cache vs full recomputation, sample-teco, grids."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from teco.config import TransformerConfig, get_config
from teco.maskgit import MaskGit
from teco.model import TECO
from teco.sample import Sampler, build_parser, load_teco, main as sample_main, sample
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


@pytest.mark.parametrize("context,lead", [(None, 0), (2, 0), (None, 1), (2, 1)])
def test_kv_cached_sampling_equals_uncached_h(context, lead, monkeypatch):
    """Sampling pairs frames with actions as training does, with either action_lead."""
    model = tiny_model(max_context=context, action_lead=lead)
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


def test_sampling_past_the_trained_length_slides_a_window(monkeypatch):
    model = tiny_model()                                        # seq_len 6: a window of 5 frames
    cond, actions = inputs(B=1, C=3, L=6)
    seen_h = []
    real = model.generate_frame
    monkeypatch.setattr(model, "generate_frame", lambda h, **kw: seen_h.append(h) or real(h, **kw))
    out = sample(model, cond, actions, 6, generator=torch.Generator().manual_seed(0), **OPTS)
    assert out.shape == (1, 9, 16, 16) and torch.equal(out[:, :3], cond)
    # frame t >= 6 sees the 5 frames before it (re-encoded) and actions t-4..t, a_t included
    with torch.no_grad():
        for t in (6, 8):
            z = model.encode(out[:, t - 5:t + 1])[0]
            h = model.temporal(z, actions[:, t - 5:t + 1])[:, -1]
            torch.testing.assert_close(seen_h[t - 3], h, atol=1e-5, rtol=1e-4)
    long_cond, long_actions = inputs(B=1, C=7, L=1)             # conditioning longer than seq_len
    assert sample(model, long_cond, long_actions, 1, **OPTS).shape == (1, 8, 16, 16)


def record_maskgit_inputs(mg):
    """Token grids (B, n) that each MaskGit forward receives."""
    seen = []
    mg.register_forward_pre_hook(lambda m, args: seen.append(args[0].flatten(1).clone()))
    return seen


def small_maskgit(grid=4, vocab=10):
    torch.manual_seed(0)
    return MaskGit(grid, vocab, 8, 6, TransformerConfig(16, 32, 2, 1)).eval()


@pytest.mark.parametrize("draft,n_tokens", [(5, 16), (4, 16), (8, 9)])
def test_draft_commits_equal_random_chunks(draft, n_tokens):
    """Draft step k masks exactly the not-yet-committed tokens and commits the next chunk: chunk sizes
    are numpy.array_split's (16 in 5 steps: 4, 3, 3, 3, 3), committed tokens never change in the draft."""
    grid = int(n_tokens ** 0.5)
    mg = small_maskgit(grid)
    seen = record_maskgit_inputs(mg)
    cond = torch.randn(2, grid, grid, 6)
    out = mg.sample(cond, draft, 0, 4, 1.0, torch.Generator().manual_seed(0)).flatten(1)
    sizes = [len(c) for c in np.array_split(np.arange(n_tokens), draft)]
    assert len(seen) == draft
    masked = [(x == mg.mask_id) for x in seen]
    assert int(masked[0].sum(1).min()) == n_tokens                      # starts all masked
    committed = [int(masked[k][0].sum() - masked[k + 1][0].sum()) for k in range(draft - 1)]
    assert committed == sizes[:-1]
    assert int(masked[-1][0].sum()) == sizes[-1]
    assert torch.equal(masked[0][0], masked[0][1]) and torch.equal(masked[2][0], masked[2][1])  # one order per batch
    for k in range(draft - 1):                                           # masked sets only shrink
        assert not bool((masked[k + 1] & ~masked[k]).any())
        keep = ~masked[k + 1]
        assert torch.equal(seen[k + 1][keep & ~masked[k]], seen[k][keep & ~masked[k]])
    assert not bool((out == mg.mask_id).any())


def test_each_revision_round_redraws_every_token_once():
    mg = small_maskgit(4)
    seen = record_maskgit_inputs(mg)
    cond = torch.randn(2, 4, 4, 6)
    draft, rounds, steps = 3, 2, 4
    out = mg.sample(cond, draft, rounds, steps, 1.0, torch.Generator().manual_seed(1)).flatten(1)
    assert len(seen) == draft + rounds * steps
    seen.append(out)
    for r in range(rounds):
        calls = list(range(draft + r * steps, draft + (r + 1) * steps))
        masks = [seen[c][0] == mg.mask_id for c in calls]
        assert [int(m.sum()) for m in masks] == [4, 4, 4, 4]            # T_revise equal chunks
        assert torch.equal(torch.stack(masks).sum(0), torch.ones(16, dtype=torch.long))   # each token once
        for c, m in zip(calls, masks):
            nxt = seen[c + 1]
            # between two calls only the chunk just drawn (and the next one, now masked) differ
            nxt_mask = nxt[0] == mg.mask_id
            same = ~m & ~nxt_mask
            assert torch.equal(seen[c][:, same], nxt[:, same])
            assert not bool((nxt[:, m & ~nxt_mask] == mg.mask_id).any())   # the chunk got drawn
    # the order is the seed's, and another seed orders differently
    order = lambda seed: torch.cat(mg.random_chunks(steps, torch.Generator().manual_seed(seed), "cpu"))
    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))


def test_sampler_determinism_and_methods_differ():
    mg = small_maskgit(4)
    cond = torch.randn(3, 4, 4, 6)
    run = lambda seed, method="draft-revise": mg.sample(cond, 4, 2, 4, 1.0, torch.Generator().manual_seed(seed),
                                                        method=method)
    assert torch.equal(run(7), run(7)) and not torch.equal(run(7), run(8))
    assert torch.equal(run(7, "confidence"), run(7, "confidence"))
    assert not torch.equal(run(7), run(7, "confidence"))


def test_sampler_flag_is_shared_and_defaults_to_teco():
    args = build_parser().parse_args(["--ckpt", "r", "--out", "o.npz"])
    assert Sampler.from_args(args).method == "draft-revise"
    cfg = get_config("dmlab")
    assert Sampler.from_args(args).resolve(cfg) == dict(draft_steps=8, revise_rounds=2, revise_steps=8,
                                                        temperature=1.0, sampler="draft-revise")
    args = build_parser().parse_args(["--ckpt", "r", "--out", "o.npz", "--sampler", "confidence"])
    assert Sampler.from_args(args).resolve(cfg)["sampler"] == "confidence"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--ckpt", "r", "--out", "o.npz", "--sampler", "nope"])
    with pytest.raises(ValueError):
        Sampler(method="nope")
    from teco.evaluate import build_parser as eval_parser
    eval_args = [a for a in eval_parser()._actions if "--sampler" in a.option_strings]
    assert eval_args and eval_args[0].default == "draft-revise"
    model = tiny_model()
    cond, actions = inputs(C=2, L=1)
    for method in ("draft-revise", "confidence"):
        out = sample(model, cond, actions, 1, generator=torch.Generator().manual_seed(0), sampler=method, **OPTS)
        assert out.shape == (2, 3, 16, 16)


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


def test_write_grid_labels_and_boundary(tmp_path):
    """Labelled columns and the conditioning boundary: green cell borders before it, red from it on."""
    from storage.preview import COND_COLOR, PRED_COLOR
    v = np.full((2, 5, 8, 8, 3), 128, np.uint8)
    v[:, :, 0, 0] = np.arange(5)[None, :, None] * 50        # distinct frames
    plain = tile(v, rows=1, pad=1)
    out = write_grid(tmp_path / "g.gif", v, rows=1, pad=1, scale=3, labels=["ground truth", "model"], boundary=2)
    frames = iio.imread(out)
    assert frames.shape[0] == 5
    H, W = plain.shape[1] * 3, plain.shape[2] * 3
    assert frames.shape[2] == W and frames.shape[1] > H                      # a header on top
    head = frames.shape[1] - H
    assert (frames[:, :head] < 100).any()                                    # some text in it
    corner = frames[:, -1, -1].astype(int)                                   # bottom-right padding pixel
    assert np.abs(corner[:2] - np.array(COND_COLOR)).max() < 40
    assert np.abs(corner[2:] - np.array(PRED_COLOR)).max() < 40
    # the cells themselves are untouched
    assert (frames[:, head + 3 + 6:head + 3 + 12, 3 + 6:3 + 12] == 128).all()
    with pytest.raises(ValueError):
        write_grid(tmp_path / "h.gif", v, scale=0)


def test_write_grid_names_every_cell_and_refuses_huge_animations(tmp_path, monkeypatch):
    """cell_labels: a caption strip above each grid row (below annotate()'s header); cells untouched."""
    import storage.preview as preview
    v = np.full((3, 2, 8, 8, 3), 128, np.uint8)
    v[:, 1] = 100                                              # distinct frames (GIF writers merge repeats)
    plain = tile(v, rows=2, pad=1)                             # 2 rows x 2 columns, one empty
    frames = iio.imread(write_grid(tmp_path / "c.gif", v, rows=2, pad=1, cell_labels=["a", "b", "c"]))
    assert frames.shape[1:3] == (plain.shape[1] + 2 * preview.LINE_H, plain.shape[2])
    row1, row2 = 1 + preview.LINE_H, 1 + 2 * preview.LINE_H + 8 + 1
    assert (frames[0, row1:row1 + 8, 1:9] == 128).all() and (frames[0, row2:row2 + 8, 1:9] == 128).all()
    strip = frames[0, row1 + 8 + 1:row2]                       # the second row's caption strip
    assert (strip < 100).any() and (strip[:, 10:] > 200).all()  # "c" under column 0, nothing beside it
    titled = iio.imread(write_grid(tmp_path / "t.gif", v, rows=2, pad=1, title="x", cell_labels=["a", "b", "c"]))
    assert titled.shape[1] > frames.shape[1]                   # header + strips
    monkeypatch.setattr(preview, "MAX_GRID_BYTES", plain.nbytes * 4 - 1)
    with pytest.raises(ValueError, match="GiB of memory"):
        write_grid(tmp_path / "big.gif", v, rows=2, pad=1, scale=2)
    assert not (tmp_path / "big.gif").exists()


@pytest.fixture(scope="module")
def teco_run(tmp_path_factory):
    """A 1-step tiny TECO run on 4 8-frame episodes, trained on 4-frame windows (seq_len 4)."""
    d = tmp_path_factory.mktemp("sample")
    h = make_vqgan_run(str(d / "vq"))
    store = make_store(d / "s.zarr", h, episodes=4, length=8)
    assert train_main(["--store", store, "--vqgan", str(d / "vq"), "--out", str(d / "run"), "--config", "tiny",
                       "--steps", "1", "--batch-size", "2", "--seq-len", "4", "--device", "cpu",
                       "--num-workers", "0"]) == 0
    return {"store": store, "run": d / "run", "vq": d / "vq"}


def test_load_teco_and_sample_teco_cli(teco_run, tmp_path, capsys):
    store, run = teco_run["store"], teco_run["run"]
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
    grid = iio.imread(tmp_path / "samples.gif")
    assert grid.shape[0] == 6 and grid.shape[2] >= 2 * 32 * 3            # two labelled columns at scale 3
    # bad requests are one-line errors
    assert sample_main(["--ckpt", str(run), "--cond", "6", "--length", "6", "--out", str(out), "--device", "cpu"]) == 2
    assert "--cond" in capsys.readouterr().err
    assert sample_main(["--ckpt", str(tmp_path), "--out", str(out)]) == 2


def _sample(teco_run, out, *extra):
    return sample_main(["--ckpt", str(teco_run["run"]), "--out", str(out), "--cond", "3", "--length", "5",
                        "--device", "cpu", "--draft-steps", "1", "--revise-steps", "1", *extra])


def test_sample_teco_checks_the_grid_before_sampling(teco_run, tmp_path, capsys, monkeypatch):
    import teco.sample as ts

    def no_sampling(*a, **kw):
        raise AssertionError("sampled before refusing the grid")
    monkeypatch.setattr(ts, "sample", no_sampling)
    out = tmp_path / "s.npz"
    for extra, want in ((["--fps", "0"], "--fps"), (["--grid", str(tmp_path / "g.png")], ".gif or .mp4"),
                        (["--grid", str(tmp_path / "no" / "g.gif")], "does not exist")):
        assert _sample(teco_run, out, *extra) == 2
        err = capsys.readouterr().err
        assert want in err and err.count("\n") == 1, err


def test_sample_teco_says_what_it_leaves_out(teco_run, tmp_path, capsys, monkeypatch):
    import teco.sample as ts
    titles = []
    monkeypatch.setattr(ts, "write_grid", lambda path, *a, title=None, **kw: titles.append(title))
    test_eps = load_teco(teco_run["run"])[2]["split"]["test"]
    assert len(test_eps) == 1
    assert sample_main(["--ckpt", str(teco_run["run"]), "--out", str(tmp_path / "s.npz"), "--cond", "4", "--length",
                        "6", "--episodes", "5", "--device", "cpu", "--draft-steps", "1", "--revise-steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "--episodes 5: the run's test split has 1, 1 of them complete" in err and "sampling 1 episode\n" in err
    assert "4-frame windows: sampling sees only the last 3 of the 4 conditioning frames" in err
    # PIL's default font draws a space 2 px wide: 'episodes 0' read as 'episodes0'; one episode is singular
    assert titles == [f"episode  {test_eps[0]}"]


def test_sample_teco_finds_a_moved_vqgan_with_the_vqgan_flag(teco_run, tmp_path, capsys):
    import shutil
    from conftest import copy_run_with_vqgan_moved
    from teco.runs import load_checkpoint, save_checkpoint
    run = copy_run_with_vqgan_moved(teco_run["run"], tmp_path / "run", tmp_path / "moved")
    moved = dict(teco_run, run=run)
    assert _sample(moved, tmp_path / "a.npz") == 2
    err = capsys.readouterr().err
    assert "recorded in" in err and str(run / "run.json") in err and "--vqgan DIR" in err
    assert _sample(moved, tmp_path / "a.npz", "--vqgan", str(teco_run["vq"])) == 0
    other = tmp_path / "other"       # another VQ-GAN: refused by its hash
    shutil.copytree(teco_run["vq"], other)
    ck = load_checkpoint(other / "ckpt.pt")
    ck["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in ck["model"].items()}
    save_checkpoint(other / "ckpt.pt", ck)
    capsys.readouterr()
    assert _sample(moved, tmp_path / "b.npz", "--vqgan", str(other)) == 2
    assert "is not the one this TECO was trained on" in capsys.readouterr().err
