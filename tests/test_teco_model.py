"""TECO model: shapes per config, causality, sliding window, DropLoss, KV cache, MaskGit."""
import dataclasses
import math

import pytest
import torch

from teco.config import TECO_CONFIGS, TECOConfig, TransformerConfig, get_config
from teco.maskgit import MaskGit
from teco.model import TECO
from teco.transformer import frame_mask

torch.set_num_threads(1)

VQ_CODES, VQ_DIM, ACTIONS = 32, 8, 4


def small(name: str, **over) -> TECOConfig:
    """A named config keeping its structure (grids, z_ds, embedding size, codebook, n_cond, DropLoss)
    with small widths so it runs in milliseconds."""
    cfg = get_config(name)
    small_tfm = TransformerConfig(32, 64, 4, 1)
    kw = dict(encoder_depths=(16, 32), encoder_blocks=1, decoder_depths=(16, 32), decoder_blocks=1,
              z_tfm=small_tfm, z_git=small_tfm, z_git_vocab_dim=16, seq_len=6,
              vq_codes=VQ_CODES, vq_dim=VQ_DIM, action_dim=ACTIONS)
    if name != "tiny":
        kw["embedding_dim"] = min(cfg.embedding_dim, 32)
    kw.update(over)
    return dataclasses.replace(cfg, **kw)


def make(cfg, seed=0):
    torch.manual_seed(seed)
    return TECO(cfg, torch.randn(cfg.vq_codes, cfg.vq_dim))


def batch(cfg, B=2, T=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = T or cfg.seq_len
    return (torch.randint(0, cfg.vq_codes, (B, T, 16, 16), generator=g),
            torch.randint(0, cfg.action_dim, (B, T), generator=g))


def test_named_configs_mirror_the_paper():
    d, m, h = TECO_CONFIGS["dmlab"], TECO_CONFIGS["minecraft"], TECO_CONFIGS["habitat"]
    assert (d.seq_len, d.batch_size, d.lr, d.weight_decay, d.warmup_steps) == (300, 32, 1e-4, 1e-5, 5000)
    assert (m.batch_size, h.batch_size, d.betas, d.grad_clip, d.drop_loss_unique) == (8, 32, (0.9, 0.95), None, False)
    assert (d.z_tfm.embed_dim, d.z_tfm.num_heads, d.z_tfm.num_layers) == (1024, 16, 8)
    assert (d.z_grid, d.tfm_grid, h.tfm_grid, m.tfm_grid) == (8, 1, 2, 1)
    assert (d.embedding_dim, m.embedding_dim, h.embedding_dim) == (64, 128, 256)
    assert (d.n_codes, h.n_codes, d.proj_dim, d.drop_loss_rate, d.n_cond) == (1024, 2048, 32, 0.9, 1)
    assert d.dropout_actions and not m.dropout_actions and h.dropout_actions
    assert (d.T_draft, d.T_revise, d.M) == (8, 8, 2)
    with pytest.raises(ValueError):
        get_config("nope")
    with pytest.raises(ValueError):
        get_config("dmlab", z_ds=3)


@pytest.mark.parametrize("name", sorted(TECO_CONFIGS))
def test_shapes_through_every_module(name):
    cfg = small(name)
    model = make(cfg).train()
    codes, actions = batch(cfg)
    B, T = codes.shape[:2]
    E, g, s = cfg.embedding_dim, cfg.z_grid, cfg.tfm_grid
    z, zc, vq = model.encode(codes)
    assert z.shape == (B, T, E, g, g) and zc.shape == (B, T - cfg.n_cond, g, g)
    assert vq["codebook_loss"].ndim == 0 and vq["commitment_loss"].ndim == 0
    tokens = model._tokens(z[:, :-1], actions[:, 1:])
    assert tokens.shape == (B, T - 1, s * s, cfg.z_tfm.embed_dim)
    h = model.temporal(z, actions)
    assert h.shape == (B, T, E, g, g)
    logits = model.decode_logits(h[:, 1], z[:, 1])
    assert logits.shape == (B, 16, 16, cfg.vq_codes)
    prior_logits = model.prior(zc[:, 0], h[:, 1].permute(0, 2, 3, 1))
    assert prior_logits.shape == (B, g, g, cfg.n_codes)
    out = model(codes, actions, torch.Generator().manual_seed(0))
    assert set(out) >= {"loss", "recon_loss", "prior_loss", "vq_loss", "codebook_loss", "commitment_loss"}
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert model.encoder.net[0].weight.grad is not None and model.z_proj.weight.grad is not None
    for sampler in ("draft-revise", "confidence"):
        zt, ct = model.generate_frame(h[:, 1].detach(), draft_steps=2, revise_rounds=1, revise_steps=2,
                                      sampler=sampler)
        assert zt.shape == (B, E, g, g) and ct.shape == (B, 16, 16) and int(ct.max()) < cfg.vq_codes


def test_temporal_is_causal_in_frames_and_actions():
    """Store convention: actions[t] produced frame t. h_t (which predicts frame t) must see z_<t and
    a_1..a_t: a_t is first used by h_t, never by h_{t-1} (an off-by-one either way fails here)."""
    cfg = small("tiny", seq_len=6)
    model = make(cfg).eval()
    codes, actions = batch(cfg)
    t = 3
    with torch.no_grad():
        z = model.encode(codes)[0]
        h = model.temporal(z, actions)
        codes2 = codes.clone()
        codes2[:, t] = (codes2[:, t] + 1) % cfg.vq_codes
        h2 = model.temporal(model.encode(codes2)[0], actions)
        actions2 = actions.clone()
        actions2[:, t] = (actions2[:, t] + 1) % cfg.action_dim
        h3 = model.temporal(z, actions2)
        actions0 = actions.clone()
        actions0[:, 0] = (actions0[:, 0] + 1) % cfg.action_dim
        h0 = model.temporal(z, actions0)
    assert torch.equal(h[:, : t + 1], h2[:, : t + 1])         # h_t depends on z_<t only
    assert (h[:, t + 1] - h2[:, t + 1]).abs().max() > 1e-4
    assert torch.equal(h[:, :t], h3[:, :t])                   # a_t is not seen before frame t ...
    assert (h[:, t] - h3[:, t]).abs().max() > 1e-4            # ... and conditions frame t itself
    assert torch.equal(h, h0)                                 # actions[:, 0] (before frame 0) is unused


def test_action_pairing_matches_the_authors_input():
    """The token predicting frame t is z_proj([z_{t-1}, embed(a_t)]) (authors: concat(z[:, :-1], a[:, 1:]))."""
    cfg = small("tiny", seq_len=5)
    model = make(cfg).eval()
    codes, actions = batch(cfg, B=1)
    actions[0, 2] = -1                                        # "no action" -> the extra embedding row
    seen = []
    model.z_proj.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        z = model.encode(codes)[0]
        model.temporal(z, actions)
    x = seen[0]                                               # (T-1, E + A, g, g)
    E = cfg.embedding_dim
    emb = model.action_embed.weight
    for j in range(cfg.seq_len - 1):                          # input j -> predicts frame j + 1
        torch.testing.assert_close(x[j, :E], z[0, j])
        want = emb[cfg.action_dim] if j + 1 == 2 else emb[actions[0, j + 1]]
        torch.testing.assert_close(x[j, E:, 0, 0], want)


def test_action_lead_pairs_frame_t_with_the_next_action():
    """action_lead 1 (the dmlab config): the input predicting frame t carries actions[t + 1], the last one
    none (-1), as the authors' model on their DMLab files, whose actions[t] is the action after frame t."""
    from teco.config import TECO_CONFIGS
    assert [TECO_CONFIGS[n].action_lead for n in ("dmlab", "minecraft", "habitat", "tiny")] == [1, 0, 0, 0]
    cfg = small("tiny", seq_len=5, action_lead=1)
    model = make(cfg).eval()
    codes, actions = batch(cfg, B=1)
    seen = []
    model.z_proj.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        z = model.encode(codes)[0]
        h = model.temporal(z, actions)
        later = actions.clone()
        later[:, 3] = (later[:, 3] + 1) % cfg.action_dim
        h3 = model.temporal(z, later)
    E, emb = cfg.embedding_dim, model.action_embed.weight
    for j in range(cfg.seq_len - 1):                          # input j predicts frame j + 1, with a_{j+2}
        want = emb[cfg.action_dim] if j + 2 >= cfg.seq_len else emb[actions[0, j + 2]]
        torch.testing.assert_close(seen[0][j, E:, 0, 0], want)
    assert torch.equal(h[:, :2], h3[:, :2]) and (h[:, 2] - h3[:, 2]).abs().max() > 1e-4   # a_3 conditions frame 2
    with pytest.raises(ValueError, match="action_lead"):
        small("tiny", action_lead=2)


def test_frame_mask():
    f = torch.tensor([0, 0, 1, 1, 2, 2])
    full = frame_mask(f, f, None)
    assert full.tolist()[1] == [True, True, False, False, False, False]   # own frame's tokens are visible
    assert full.tolist()[5] == [True] * 6
    win = frame_mask(f, f, 2)
    assert win.tolist()[5] == [False, False, True, True, True, True]


@pytest.mark.parametrize("name,k", [("tiny", 2), ("dmlab", 3)])
def test_sliding_window_max_context(name, k):
    cfg = small(name, seq_len=8, max_context=k)
    model = make(cfg).eval()
    codes, actions = batch(cfg)
    j = 2
    with torch.no_grad():
        z = model.encode(codes)[0]
        h = model.temporal(z, actions)
        z2 = z.clone()
        z2[:, j] += 1.0
        h2 = model.temporal(z2, actions)
    changed = [(h[:, t] - h2[:, t]).abs().max().item() > 1e-5 for t in range(cfg.seq_len)]
    # z_j enters the input that predicts frame j+1 and is seen by the next k frames only
    assert changed == [j < t <= j + k for t in range(cfg.seq_len)]


def test_droploss_uses_the_configured_fraction():
    # the authors' k = max(1, int((1 - 0.9) * n)): 1 - 0.9 is 0.0999.., so 30 steps -> 2, 299 -> 29
    cfg = small("dmlab", seq_len=31)
    model = make(cfg).train()
    seen = {}
    model.decoder.register_forward_hook(lambda m, i, o: seen.__setitem__("decoder", i[0].shape[0]))
    model.prior.register_forward_hook(lambda m, i, o: seen.__setitem__("prior", i[0].shape[0]))
    codes, actions = batch(cfg, B=2)
    model(codes, actions, torch.Generator().manual_seed(0))
    assert seen == {"decoder": 2 * 2, "prior": 2 * 2}
    idx = model.loss_steps(299, torch.Generator().manual_seed(1), "cpu")
    assert len(idx) == 29 and int(idx.min()) >= 0 and int(idx.max()) <= 298
    assert len(model.loss_steps(5, None, "cpu")) == 1                     # at least one step
    model.eval()
    model(codes, actions)
    assert seen == {"decoder": 2 * 30, "prior": 2 * 30}                    # evaluation sees every step
    nodrop = make(dataclasses.replace(cfg, drop_loss_rate=0.0)).train()
    assert len(nodrop.loss_steps(30, None, "cpu")) == 30


def test_droploss_draws_like_the_authors():
    """With replacement from 0..T-1 (T = n_pred + n_cond), clamped to the last predicted step: over
    many draws every step is hit about 1/T of the time and the last about 2/T. drop_loss_unique (a
    deviation) draws distinct steps uniformly."""
    cfg = small("dmlab", seq_len=11)                                       # 10 predicted steps, k = 1
    model = make(cfg).train()
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([model.loss_steps(10, g, "cpu") for _ in range(20000)])
    freq = torch.bincount(draws, minlength=10).float() / len(draws)
    assert (freq[:9] - 1 / 11).abs().max() < 0.01 and abs(freq[9] - 2 / 11) < 0.01
    many = make(dataclasses.replace(cfg, drop_loss_rate=0.5)).train()
    assert any(len(set(many.loss_steps(10, g, "cpu").tolist())) < 5 for _ in range(50))   # repeats happen
    uniq = make(dataclasses.replace(cfg, drop_loss_rate=0.5, drop_loss_unique=True)).train()
    assert all(len(set(uniq.loss_steps(10, g, "cpu").tolist())) == 5 for _ in range(50))


def test_action_dropout_and_bad_actions():
    cfg = small("tiny")
    model = make(cfg)
    ids = model.action_ids(torch.tensor([[0, -1, 3]]))
    assert ids.tolist() == [[0, cfg.action_dim, 3]]
    with pytest.raises(ValueError):
        model.check_actions(torch.tensor([[cfg.action_dim]]))
    model.check_actions(torch.tensor([[-1, 0, cfg.action_dim - 1]]))
    off = make(dataclasses.replace(cfg, use_actions=False))
    assert off.action_ids(torch.tensor([[0, 2, -1]])).tolist() == [[0, 0, cfg.action_dim]]


@pytest.mark.parametrize("name,k", [("tiny", None), ("tiny", 2), ("dmlab", None), ("habitat", 3)])
def test_kv_cache_matches_full_computation(name, k):
    cfg = small(name, seq_len=7, max_context=k)
    model = make(cfg).eval()
    codes, actions = batch(cfg)
    with torch.no_grad():
        z = model.encode(codes)[0]
        h = model.temporal(z, actions)
        C, a = 2, model.lead_actions(actions)                  # the cached path takes the paired actions
        cache, hc = model.start_temporal(z[:, :C], a[:, :C + 1])
        steps = [hc]
        for t in range(C + 1, cfg.seq_len):
            steps.append(model.step_temporal(cache, t, z[:, t - 1], a[:, t]))
    torch.testing.assert_close(torch.stack(steps, 1), h[:, C:], atol=1e-5, rtol=1e-4)
    if k is not None:   # the cache keeps only what the next frame can see
        assert int(cache.frames.min()) >= cfg.seq_len - k


def test_maskgit_loss_counts_masked_tokens_only():
    torch.manual_seed(0)
    mg = MaskGit(4, 10, 8, 6, TransformerConfig(16, 32, 2, 1)).eval()
    codes = torch.randint(0, 10, (1, 4, 4))
    cond = torch.randn(1, 4, 4, 6)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    loss, _ = mg.masked_loss(codes, mask, cond)
    logits = mg(torch.where(mask, mg.mask_id, codes), cond)
    want = torch.nn.functional.cross_entropy(logits[0, 1, 2][None], codes[0, 1, 2][None]) * 16
    torch.testing.assert_close(loss, want)
    # cosine schedule: E[cos(pi r / 2)] = 2 / pi of the tokens are masked, never none
    m = mg.random_mask(4000, torch.Generator().manual_seed(0))
    counts = m.flatten(1).sum(1)
    assert counts.min() >= 1 and counts.max() <= 16
    assert abs(counts.float().mean().item() / 16 - 2 / math.pi) < 0.03


def test_maskgit_sampling():
    torch.manual_seed(0)
    mg = MaskGit(4, 10, 8, 6, TransformerConfig(16, 32, 2, 1)).eval()
    cond = torch.randn(3, 4, 4, 6)
    for method in ("draft-revise", "confidence"):
        a = mg.sample(cond, 4, 2, 4, 1.0, torch.Generator().manual_seed(5), method=method)
        b = mg.sample(cond, 4, 2, 4, 1.0, torch.Generator().manual_seed(5), method=method)
        c = mg.sample(cond, 4, 2, 4, 1.0, torch.Generator().manual_seed(6), method=method)
        assert a.shape == (3, 4, 4) and a.dtype == torch.long
        assert int(a.min()) >= 0 and int(a.max()) < 10            # the mask id never leaks out
        assert torch.equal(a, b) and not torch.equal(a, c)
        greedy = mg.sample(cond, 4, 0, 4, 0.0, method=method)
        assert torch.equal(greedy, mg.sample(cond, 4, 0, 4, 0.0, method=method))
    with pytest.raises(ValueError):
        mg.sample(cond, 0, 1, 4)
    with pytest.raises(ValueError):
        mg.sample(cond, 4, 1, 4, method="nope")
