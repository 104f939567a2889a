"""MaskGit prior over one frame's latent codes z_t (g x g grid), conditioned on h_t by channel concat.

Training: mask a cosine-scheduled random fraction of tokens, cross-entropy on the masked ones only.
Sampling, two methods:
- "draft-revise" (default; TECO's, wilson1yan/teco teco/models/maskgit.py `sample`): a draft of T_draft
  steps commits the tokens in a random order, in equal chunks, each drawn at the temperature given the
  tokens committed so far; then M revision rounds each re-draw every token once, in T_revise random
  equal chunks, given all the others.
- "confidence" (named deviation, not TECO's): MaskGIT-style confidence decoding on a cosine schedule with
  annealed Gumbel noise, then revision rounds that re-decode the least confident half.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TransformerConfig
from .modules import init_flax_
from .transformer import Transformer

SAMPLERS = ("draft-revise", "confidence")


def uniform(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """U[0,1) drawn on the generator's own device (so a CPU generator drives a GPU model
    reproducibly), then moved to `device`."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev).to(device)


def gumbel(shape, generator=None, device=None) -> torch.Tensor:
    u = uniform(shape, generator, device).clamp_(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def cosine_schedule(r: torch.Tensor | float) -> torch.Tensor | float:
    """Fraction of tokens still masked at progress r in [0, 1]."""
    if isinstance(r, torch.Tensor):
        return torch.cos(math.pi / 2 * r)
    return math.cos(math.pi / 2 * r)


class MaskGit(nn.Module):
    def __init__(self, grid: int, vocab_size: int, vocab_dim: int, cond_dim: int, cfg: TransformerConfig):
        super().__init__()
        self.grid, self.vocab_size = grid, vocab_size
        self.mask_id = vocab_size   # the extra embedding row
        e = cfg.embed_dim
        self.token_embed = nn.Parameter(torch.randn(vocab_size + 1, vocab_dim) * 0.02)
        # broadcast position embedding: row and column codes concatenated on channels (row gets the odd one)
        self.pos_row = nn.Parameter(torch.randn(grid, e - e // 2) * 0.02)
        self.pos_col = nn.Parameter(torch.randn(grid, e // 2) * 0.02)
        self.net = Transformer(cfg, in_dim=vocab_dim + cond_dim)     # input Dense on [token embedding, h_t]
        self.mlm = nn.Sequential(nn.Linear(e, vocab_dim), nn.GELU(approximate="tanh"), nn.LayerNorm(vocab_dim, eps=1e-6))
        init_flax_(self.mlm)
        nn.init.normal_(self.mlm[0].weight, 0.0, 0.02)
        self.out_bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """tokens long (B, g, g) with mask_id where masked, cond (B, g, g, C) -> logits (B, g, g, V)."""
        B, g = tokens.shape[0], self.grid
        x = torch.cat([self.token_embed[tokens].to(cond.dtype), cond], dim=-1).reshape(B, g * g, -1)
        pos = torch.cat([self.pos_row[:, None].expand(g, g, -1), self.pos_col[None].expand(g, g, -1)], -1)
        x = self.net(x, pos=pos.reshape(g * g, -1))
        logits = self.mlm(x) @ self.token_embed[: self.vocab_size].t() + self.out_bias
        return logits.view(B, g, g, self.vocab_size)

    def random_mask(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """bool (B, g, g): per row, max(1, floor(cos(pi/2 r) * g*g)) random positions, r ~ U[0, 1)."""
        n = self.grid * self.grid
        ratio = cosine_schedule(uniform((batch,), generator, device))
        n_mask = torch.clamp(torch.floor(ratio * n), min=1)                            # (B,)
        rank = uniform((batch, n), generator, device).argsort(1).argsort(1)           # random order per row
        return (rank < n_mask[:, None]).view(batch, self.grid, self.grid)

    def masked_loss(self, codes: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor):
        """Cross-entropy on the masked tokens only -> (mean over them times g*g, i.e. a per-frame sum as
        in TECO; accuracy on them). codes long (B, g, g), mask bool (B, g, g), cond (B, g, g, C)."""
        logits = self(torch.where(mask, self.mask_id, codes), cond)
        ce = F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), codes.reshape(-1), reduction="none")
        m = mask.reshape(-1).float()
        loss = (ce * m).sum() / m.sum() * (self.grid * self.grid)
        acc = ((logits.argmax(-1) == codes).reshape(-1).float() * m).sum() / m.sum()
        return loss, acc

    def loss(self, codes: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None):
        """codes long (B, g, g), cond (B, g, g, C) -> (loss scalar, accuracy on masked tokens)."""
        return self.masked_loss(codes, self.random_mask(codes.shape[0], generator, codes.device), cond)

    # -- sampling --------------------------------------------------------------------------------
    def _draw(self, logits, temperature, generator):
        """Sample every position: (B, n, V) -> (tokens (B, n), log-prob of the drawn token (B, n))."""
        logp = F.log_softmax(logits.float(), -1)
        if temperature > 0:
            noisy = logp / temperature + gumbel(logp.shape, generator, logp.device)   # Gumbel-max sampling
            tok = noisy.argmax(-1)
        else:
            tok = logp.argmax(-1)
        return tok, logp.gather(-1, tok[..., None])[..., 0]

    def random_chunks(self, steps: int, generator: torch.Generator | None, device) -> list[torch.Tensor]:
        """A random permutation of the g*g positions split into `steps` near-equal chunks (the first
        n % steps one longer, as numpy's array_split); one order for the whole batch, as the authors'."""
        n = self.grid * self.grid
        gdev = generator.device if generator is not None else device
        perm = torch.randperm(n, generator=generator, device=gdev).to(device)
        return list(perm.tensor_split(steps))

    def _redraw(self, tokens, chunks, cond, temperature, generator):
        """For each chunk in turn: mask its positions, predict given all other current tokens, draw
        them at the temperature. tokens (B, n) -> (B, n)."""
        B, n = tokens.shape
        tokens = tokens.clone()
        for idx in chunks:
            if idx.numel() == 0:
                continue
            tokens[:, idx] = self.mask_id
            logits = self(tokens.view(B, self.grid, self.grid), cond).view(B, n, -1)
            tok, _ = self._draw(logits[:, idx], temperature, generator)
            tokens[:, idx] = tok
        return tokens

    def _decode(self, tokens, masked, n_masked: int, cond, steps, temperature, generator):
        """Confidence decoding: fill the `masked` positions (n_masked per row) of tokens (B, n) over
        `steps` parallel steps. At each step every masked position is drawn, the most confident are kept
        (the count follows the cosine schedule), the rest masked again; confidence noise anneals to 0."""
        B, n = tokens.shape
        n0 = n_masked
        for s in range(steps):
            tok, conf = self._draw(self(tokens.view(B, self.grid, self.grid), cond).view(B, n, -1),
                                   temperature, generator)
            left = 0 if s == steps - 1 else int(math.floor(n0 * cosine_schedule((s + 1) / steps)))
            left = max(0, min(left, n_masked - 1))                # unmask at least one per step
            if temperature > 0:
                conf = conf + temperature * (1.0 - (s + 1) / steps) * gumbel(conf.shape, generator, conf.device)
            conf = conf.masked_fill(~masked, float("inf"))       # decided tokens are never re-masked here
            remask = torch.zeros_like(masked)
            if left > 0:
                remask.scatter_(1, conf.topk(left, dim=1, largest=False).indices, True)
            tokens = torch.where(masked & ~remask, tok, tokens)
            masked, n_masked = remask, left
        return tokens

    def _sample_confidence(self, cond, draft_steps, revise_rounds, revise_steps, temperature, generator):
        B, n = cond.shape[0], self.grid * self.grid
        tokens = torch.full((B, n), self.mask_id, dtype=torch.long, device=cond.device)
        masked = torch.ones(B, n, dtype=torch.bool, device=cond.device)
        tokens = self._decode(tokens, masked, n, cond, draft_steps, temperature, generator)
        for _ in range(revise_rounds):
            # confidence of each current token given all the others; re-decode the least confident half
            logp = F.log_softmax(self(tokens.view(B, self.grid, self.grid), cond).view(B, n, -1).float(), -1)
            conf = logp.gather(-1, tokens[..., None])[..., 0]
            if temperature > 0:
                conf = conf + temperature * gumbel(conf.shape, generator, conf.device)
            masked = torch.zeros_like(masked).scatter_(1, conf.topk(n // 2, dim=1, largest=False).indices, True)
            tokens = self._decode(tokens.masked_fill(masked, self.mask_id), masked, n // 2, cond,
                                  revise_steps, temperature, generator)
        return tokens

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, draft_steps: int = 8, revise_rounds: int = 2, revise_steps: int = 8,
               temperature: float = 1.0, generator: torch.Generator | None = None,
               method: str = "draft-revise") -> torch.Tensor:
        """cond (B, g, g, C) -> codes long (B, g, g); `method` one of SAMPLERS (module docstring)."""
        if draft_steps < 1 or revise_steps < 1 or revise_rounds < 0:
            raise ValueError("draft_steps and revise_steps must be >= 1, revise_rounds >= 0")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if method not in SAMPLERS:
            raise ValueError(f"unknown sampler '{method}': choose one of {', '.join(SAMPLERS)}")
        B, n = cond.shape[0], self.grid * self.grid
        if method == "confidence":
            tokens = self._sample_confidence(cond, draft_steps, revise_rounds, revise_steps, temperature, generator)
        else:
            tokens = torch.full((B, n), self.mask_id, dtype=torch.long, device=cond.device)
            tokens = self._redraw(tokens, self.random_chunks(draft_steps, generator, cond.device), cond,
                                  temperature, generator)
            for _ in range(revise_rounds):
                tokens = self._redraw(tokens, self.random_chunks(revise_steps, generator, cond.device), cond,
                                      temperature, generator)
        return tokens.view(B, self.grid, self.grid)
