"""TECO (Yan et al. 2022): conditional encoder + codebook, temporal transformer, MaskGit prior, decoder.

Shapes: VQ-GAN codes (B, T, G, G) with G = 16; TECO latents z_t (B, E, g, g) with g = G / 2 (E =
embedding_dim); the temporal transformer sees s x s tokens per frame with s = g / z_ds.
Actions follow the store's convention: actions[t] is the action that produced frame t (taken between
frames t-1 and t; -1 = none). As the authors' `concat(z[:, :-1], a[:, 1:])`, the temporal input
predicting frame t is [z_{t-1}, a_{t+lead}] (`action_lead`: 0, or 1 for DMLab, whose released files hold
the action after each frame), so h_t is computed from z_<t and a_<=t+lead; actions[:, 0] is not used.
Layers, initialisers and losses follow wilson1yan/teco (teco/models/{teco,base}.py); teco/README.md
lists every deliberate difference and the option that selects it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TECOConfig
from .maskgit import SAMPLERS, MaskGit, uniform
from .modules import Codebook, ResNetBlock, init_flax_
from .transformer import KVCache, Transformer, sinusoidal


class CondEncoder(nn.Module):
    """(B, in_ch, G, G) -> (B, out_dim, G/2^(len(depths)-1), ...): conv3x3, one ResNetBlock, then per
    further depth an average pool and `blocks` ResNetBlocks; a Dense (1x1 conv) to out_dim."""

    def __init__(self, in_ch: int, depths: tuple[int, ...], blocks: int, out_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, depths[0], 3, padding=1), ResNetBlock(depths[0])]
        ch = depths[0]
        for d in depths[1:]:
            layers.append(nn.AvgPool2d(2))
            for _ in range(blocks):
                layers.append(ResNetBlock(ch, d))
                ch = d
        layers.append(nn.Conv2d(ch, out_dim, 1))
        self.net = nn.Sequential(*layers)
        init_flax_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CodeDecoder(nn.Module):
    """D(z_t, h_t): (B, in_ch, g, g) -> logits over VQ-GAN codes (B, G, G, vq_codes). A conv3x3 to
    depths[0], then the depths in reverse, `blocks` ResNetBlocks each with a nearest x2 resize between
    them, LayerNorm and a Dense head (the authors' ResNetDecoder)."""

    def __init__(self, in_ch: int, depths: tuple[int, ...], blocks: int, vq_codes: int):
        super().__init__()
        rev = list(reversed(depths))
        ch = depths[0]
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ch, 3, padding=1)]
        for i, d in enumerate(rev):
            for _ in range(blocks):
                layers.append(ResNetBlock(ch, d))
                ch = d
            if i < len(rev) - 1:
                layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
        self.net = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(ch, eps=1e-6)
        self.head = nn.Linear(ch, vq_codes)
        init_flax_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.net(x).permute(0, 2, 3, 1)))


class TECO(nn.Module):
    def __init__(self, cfg: TECOConfig, vq_embeddings: torch.Tensor | None = None):
        """vq_embeddings (vq_codes, vq_dim): the VQ-GAN codebook (VQGAN.codebook_embeddings()); kept
        frozen as a buffer so a checkpoint is self-contained."""
        super().__init__()
        self.cfg = cfg
        E, W, s, z = cfg.embedding_dim, cfg.z_tfm.embed_dim, cfg.tfm_grid, cfg.z_ds
        if vq_embeddings is None:
            vq_embeddings = torch.zeros(cfg.vq_codes, cfg.vq_dim)
        if tuple(vq_embeddings.shape) != (cfg.vq_codes, cfg.vq_dim):
            raise ValueError(f"VQ-GAN codebook is {tuple(vq_embeddings.shape)}, config says ({cfg.vq_codes}, {cfg.vq_dim})")
        self.register_buffer("vq_embed", vq_embeddings.detach().float().clone())
        self.action_embed = nn.Embedding(cfg.action_dim + 1, cfg.action_embed_dim)   # last id = dropped / none
        nn.init.normal_(self.action_embed.weight, 0.0, cfg.action_embed_dim ** -0.5)    # Flax Embed default
        # posterior q(z_t | x_t, x_{t-1}); the first frame's "previous frame" is learned
        self.sos_post = nn.Parameter(torch.randn(cfg.vq_dim, cfg.codes_grid, cfg.codes_grid) * 0.02)
        self.encoder = CondEncoder(2 * cfg.vq_dim, cfg.encoder_depths, cfg.encoder_blocks, E)
        self.codebook = Codebook(cfg.n_codes, E, cfg.proj_dim, beta=0.25)
        # temporal transformer
        self.z_proj = nn.Conv2d(E + cfg.action_embed_dim, W, z, stride=z, bias=False)
        self.sos = nn.Parameter(torch.randn(s * s, W) * 0.02)
        self.z_tfm = Transformer(cfg.z_tfm, max_context=cfg.max_context, in_dim=W)
        self.z_unproj = nn.ConvTranspose2d(W, E, z, stride=z, bias=False)
        init_flax_(self.codebook)
        init_flax_(self.z_proj)
        init_flax_(self.z_unproj)
        # prior and decoder
        self.prior = MaskGit(cfg.z_grid, cfg.n_codes, cfg.z_git_vocab_dim, E, cfg.z_git)
        self.decoder = CodeDecoder(2 * E, cfg.decoder_depths, cfg.decoder_blocks, cfg.vq_codes)

    # -- posterior ----------------------------------------------------------------------------------
    def encode(self, codes: torch.Tensor):
        """codes long (B, T, G, G) -> z (B, T, E, g, g) (frames < n_cond unquantised, the rest through
        TECO's codebook), z_codes long (B, T - n_cond, g, g), vq dict (codebook_loss, commitment_loss,
        perplexity: over all T frames, the conditioning ones included, as the authors')."""
        B, T = codes.shape[:2]
        n = self.cfg.n_cond
        x = F.embedding(codes, self.vq_embed).permute(0, 1, 4, 2, 3)               # (B, T, D, G, G)
        prev = torch.cat([self.sos_post.to(x.dtype).expand(B, 1, *self.sos_post.shape), x[:, :-1]], 1)
        enc = self.encoder(torch.cat([prev, x], 2).flatten(0, 1))                   # (B*T, E, g, g)
        enc = enc.view(B, T, *enc.shape[1:])
        vq = self.codebook(enc.permute(0, 1, 3, 4, 2))                              # channels last
        zq = vq.pop("embeddings").permute(0, 1, 4, 2, 3).to(enc.dtype)
        z = torch.cat([enc[:, :n], zq[:, n:]], 1)
        return z, vq.pop("codes")[:, n:], vq

    # -- temporal transformer -----------------------------------------------------------------------
    def check_actions(self, actions: torch.Tensor) -> None:
        """ValueError unless every id is in -1..action_dim-1 (a host sync: not on the training path,
        whose actions the store writer already checked)."""
        if bool(((actions < -1) | (actions >= self.cfg.action_dim)).any()):
            raise ValueError(f"action ids must be in -1..{self.cfg.action_dim - 1}")

    def action_ids(self, actions: torch.Tensor) -> torch.Tensor:
        """Embedding rows: store ids 0..action_dim-1 as they are, -1 (none / dropped) -> the extra row
        action_dim (the authors' nn.Embed(action_dim + 1) indexed with -1). With use_actions off every
        action is 0, as the authors' zeroed actions (the extra row stays for dropped ones)."""
        if not self.cfg.use_actions:
            actions = torch.where(actions < 0, actions, torch.zeros_like(actions))
        return torch.where(actions < 0, torch.full_like(actions, self.cfg.action_dim), actions)

    def lead_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (B, T) in the store's convention -> the ones the model pairs with each position:
        actions[:, t + action_lead], -1 (none) past the end. Applied once to a whole sequence, before any
        windowing (temporal(), sample())."""
        k = self.cfg.action_lead
        if k == 0:
            return actions
        return torch.cat([actions[:, k:], torch.full_like(actions[:, :k], -1)], 1)

    def _tokens(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Inputs z_{t-1} (B, n, E, g, g) + a_t (B, n) -> tokens (B, n, s*s, W) that predict frame t."""
        B, n, _, g, _ = z.shape
        a = self.action_embed(self.action_ids(actions)).to(z.dtype)                # (B, n, A)
        x = torch.cat([z, a[..., None, None].expand(-1, -1, -1, g, g)], 2)
        x = self.z_proj(x.flatten(0, 1))                                             # (B*n, W, s, s)
        return x.flatten(2).transpose(1, 2).reshape(B, n, -1, x.shape[1])

    def _temporal(self, tokens: torch.Tensor, start: int, cache: KVCache | None = None) -> torch.Tensor:
        """tokens (B, n, s*s, W) at frame positions start.. -> h (B, n, E, g, g). Sinusoidal codes of
        the flattened token position, added after the transformer's input Dense."""
        B, n, ss, W = tokens.shape
        pos = sinusoidal(n * ss, W, offset=start * ss, device=tokens.device)
        frames = torch.arange(start, start + n).repeat_interleave(ss)   # on the CPU: masks need no device sync
        h = self.z_tfm(tokens.reshape(B, n * ss, W), frames=frames, cache=cache, pos=pos)
        s = self.cfg.tfm_grid
        h = self.z_unproj(h.view(B * n, s, s, W).permute(0, 3, 1, 2))                # (B*n, E, g, g)
        return h.view(B, n, *h.shape[1:])

    def temporal(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z (B, T, E, g, g), actions (B, T) -> h (B, T, E, g, g); h_t depends on z_<t and a_1..a_t
        (a_t produced frame t; a_1..a_{t+1} with action_lead 1); h_0 sees only the start token."""
        B = z.shape[0]
        sos = self.sos.to(z.dtype).expand(B, 1, *self.sos.shape)
        tokens = torch.cat([sos, self._tokens(z[:, :-1], self.lead_actions(actions)[:, 1:])], 1)
        return self._temporal(tokens, 0)

    def start_temporal(self, z: torch.Tensor, actions: torch.Tensor) -> tuple[KVCache, torch.Tensor]:
        """Cached run over observed frames z (B, C, E, g, g) with actions (B, C+1), actions[:, t] being the
        one paired with position t (after lead_actions(); without a lead, the one that produced frame t,
        the last producing the frame to predict) -> (cache, h_C (B, E, g, g))."""
        B, C = z.shape[:2]
        if actions.shape[1] != C + 1:
            raise ValueError(f"start_temporal needs C+1 = {C + 1} actions, got {actions.shape[1]}")
        cache = self.z_tfm.new_cache()
        sos = self.sos.to(z.dtype).expand(B, 1, *self.sos.shape)
        tokens = torch.cat([sos, self._tokens(z, actions[:, 1:])], 1)
        return cache, self._temporal(tokens, 0, cache)[:, -1]

    def step_temporal(self, cache: KVCache, t: int, z_prev: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
        """h_t (B, E, g, g) from the cache plus the newest frame z_{t-1} (B, E, g, g) and the action
        a_t (B,) paired with position t (lead_actions(); without a lead, the one that produces frame t)."""
        return self._temporal(self._tokens(z_prev[:, None], a_t[:, None]), t, cache)[:, 0]

    # -- prior + decoder ----------------------------------------------------------------------------
    def decode_logits(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """h, z (N, E, g, g) -> logits (N, G, G, vq_codes)."""
        return self.decoder(torch.cat([h, z.to(h.dtype)], 1))

    @torch.no_grad()
    def generate_frame(self, h: torch.Tensor, draft_steps: int = 8, revise_rounds: int = 2, revise_steps: int = 8,
                       temperature: float = 1.0, generator: torch.Generator | None = None,
                       sampler: str = SAMPLERS[0]):
        """h_t (B, E, g, g) -> (z_t (B, E, g, g) for the next temporal step, VQ-GAN codes (B, G, G)).
        `sampler`: MaskGit method, "draft-revise" (TECO's) or "confidence" (teco/maskgit.py)."""
        zc = self.prior.sample(h.permute(0, 2, 3, 1), draft_steps, revise_rounds, revise_steps,
                               temperature, generator, method=sampler)
        z = self.codebook.embed(zc).permute(0, 3, 1, 2).to(h.dtype)
        return z, self.decode_logits(h, z).argmax(-1)

    # -- training -----------------------------------------------------------------------------------
    def loss_steps(self, n_pred: int, generator: torch.Generator | None, device) -> torch.Tensor:
        """DropLoss: the predicted steps (0-based among the T - n_cond) that get decoder and prior losses.
        As the authors': k = max(1, int((1 - rate) * n_pred)) draws with replacement from 0..n_pred+n_cond-1,
        clamped to n_pred - 1 (JAX clamps out-of-range gathers), so the last step is a little likelier.
        cfg.drop_loss_unique (deviation): k distinct steps, uniformly."""
        cfg = self.cfg
        if not self.training or cfg.drop_loss_rate <= 0:
            return torch.arange(n_pred, device=device)
        k = max(1, int((1.0 - cfg.drop_loss_rate) * n_pred))
        if cfg.drop_loss_unique:
            return uniform((n_pred,), generator, device).argsort()[:k].sort().values
        T = n_pred + cfg.n_cond
        idx = (uniform((k,), generator, device) * T).long().clamp(max=n_pred - 1)
        return idx

    def forward(self, codes: torch.Tensor, actions: torch.Tensor,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """codes long (B, T, G, G), actions long (B, T) -> dict of scalars;
        "loss" = recon + prior + codebook + commitment (the authors' sum)."""
        cfg = self.cfg
        B, T = codes.shape[:2]
        if T <= cfg.n_cond:
            raise ValueError(f"sequence of {T} frames is too short for n_cond {cfg.n_cond}")
        if not cfg.use_actions:
            actions = torch.zeros_like(actions)
        if self.training and cfg.dropout_actions:
            drop = uniform((B,), generator, codes.device) < cfg.action_dropout_p
            actions = torch.where(drop[:, None], torch.full_like(actions, -1), actions)
        z, z_codes, vq = self.encode(codes)
        h = self.temporal(z, actions)[:, cfg.n_cond:]                               # (B, T-n, E, g, g)
        idx = self.loss_steps(T - cfg.n_cond, generator, codes.device)
        h, zq, zc = h[:, idx].flatten(0, 1), z[:, cfg.n_cond:][:, idx].flatten(0, 1), z_codes[:, idx].flatten(0, 1)
        target = codes[:, cfg.n_cond:][:, idx].flatten(0, 1)                        # (B*k, G, G)

        prior_loss, prior_acc = self.prior.loss(zc, h.permute(0, 2, 3, 1), generator)
        logits = self.decode_logits(h, zq)
        ce = F.cross_entropy(logits.reshape(-1, cfg.vq_codes).float(), target.reshape(-1),
                             label_smoothing=cfg.label_smoothing, reduction="none")
        recon_loss = ce.view(target.shape[0], -1).sum(1).mean()                      # per-frame sum, as TECO
        recon_acc = (logits.argmax(-1) == target).float().mean()
        vq_loss = vq["codebook_loss"] + vq["commitment_loss"]
        loss = recon_loss + prior_loss + vq_loss
        return dict(loss=loss, recon_loss=recon_loss.detach(), prior_loss=prior_loss.detach(),
                    vq_loss=vq_loss.detach(), codebook_loss=vq["codebook_loss"].detach(),
                    commitment_loss=vq["commitment_loss"].detach(), recon_acc=recon_acc.detach(),
                    prior_acc=prior_acc.detach(), perplexity=vq["perplexity"])
