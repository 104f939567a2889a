"""Autoregressive token-by-token prior over all flattened VQ codes of a video: the Perceiver-AR-like
baseline that bench/sample.py times against TECO's MaskGit sampling.

A causal transformer (teco/transformer.py, the same blocks as TECO's) reads the codes of every frame
in raster order, one token per position; the action that produced a frame (store convention, -1 =
none) is added to its tokens.
Sampling keeps keys/values in a preallocated cache and runs one forward per generated token.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TransformerConfig
from .maskgit import gumbel
from .transformer import Transformer, sinusoidal


class StaticKVCache:
    """KV cache with buffers allocated once for `capacity` tokens, so a step costs no copy of the
    past (teco.transformer.KVCache concatenates, fine for TECO's few tokens per frame, not for
    tens of thousands). Same interface: extend / key_frames / commit; positions are token indices."""

    def __init__(self, num_layers: int, capacity: int):
        self.capacity, self.n = capacity, 0
        self.k: list[torch.Tensor | None] = [None] * num_layers    # (B, heads, capacity, head_dim)
        self.v: list[torch.Tensor | None] = [None] * num_layers

    def __len__(self) -> int:
        return self.n

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = k.shape[2]
        if self.n + m > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} tokens, asked for {self.n + m}")
        if self.k[layer] is None:
            shape = (k.shape[0], k.shape[1], self.capacity, k.shape[3])
            self.k[layer] = k.new_empty(shape)
            self.v[layer] = v.new_empty(shape)
        self.k[layer][:, :, self.n:self.n + m] = k
        self.v[layer][:, :, self.n:self.n + m] = v
        return self.k[layer][:, :, :self.n + m], self.v[layer][:, :, :self.n + m]

    def key_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.arange(self.n + frames.numel(), device=frames.device)

    def commit(self, frames: torch.Tensor) -> None:
        self.n += frames.numel()


class ARPrior(nn.Module):
    """p(codes) = prod_p p(token_p | tokens_<p, actions), tokens of T frames of G x G codes flattened."""

    def __init__(self, vocab_size: int, cfg: TransformerConfig, action_dim: int, grid: int = 16):
        super().__init__()
        self.vocab_size, self.grid, self.action_dim = vocab_size, grid, action_dim
        self.bos = vocab_size                                    # extra input id: start of video
        self.token_embed = nn.Embedding(vocab_size + 1, cfg.embed_dim)
        self.action_embed = nn.Embedding(action_dim + 1, cfg.embed_dim)   # last id: no action (-1)
        self.net = Transformer(cfg)
        self.out = nn.Linear(cfg.embed_dim, vocab_size)

    def _embed(self, inputs: torch.Tensor, actions: torch.Tensor, start: int) -> torch.Tensor:
        """inputs long (B, n) at positions start.., actions (B, T) -> (B, n, D). Position p predicts
        token p of frame p // G^2, which actions[frame] produced."""
        B, n = inputs.shape
        D, per = self.token_embed.embedding_dim, self.grid * self.grid
        pos = torch.arange(start, start + n, device=inputs.device)
        a = actions[:, pos // per]
        a = torch.where(a < 0, torch.full_like(a, self.action_dim), a)
        return (self.token_embed(inputs) + self.action_embed(a)
                + sinusoidal(n, D, offset=start, device=inputs.device).to(self.token_embed.weight.dtype))

    def forward(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """codes long (B, T, G, G), actions (B, T) -> next-token logits (B, T*G*G, vocab)."""
        tokens = codes.flatten(1)
        inputs = torch.cat([torch.full_like(tokens[:, :1], self.bos), tokens[:, :-1]], 1)
        frames = torch.arange(tokens.shape[1], device=tokens.device)     # one "frame" per token: causal
        return self.out(self.net(self._embed(inputs, actions, 0), frames=frames))

    def loss(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logits = self(codes, actions)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), codes.reshape(-1))

    @torch.no_grad()
    def prefill(self, codes_cond: torch.Tensor, actions: torch.Tensor, capacity: int):
        """Run BOS + every context token (B, C, G, G) through the network into a fresh cache of
        `capacity` tokens -> (cache, hidden state of the last position (B, D), which predicts the
        first new token)."""
        n_ctx = codes_cond[0].numel()
        flat = codes_cond.flatten(1)
        cache = StaticKVCache(len(self.net.blocks), capacity)
        inputs = torch.cat([torch.full_like(flat[:, :1], self.bos), flat], 1)
        h = self.net(self._embed(inputs, actions, 0), frames=torch.arange(n_ctx + 1, device=flat.device), cache=cache)
        return cache, h[:, -1]

    @torch.no_grad()
    def decode(self, out: torch.Tensor, start: int, cache: StaticKVCache, h: torch.Tensor, actions: torch.Tensor,
               temperature: float = 1.0, generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
        """Fill tokens start.. of out long (B, N) one forward at a time; `cache` holds positions
        0..start and h (B, D) is the last one's hidden state. `progress(k)` after the k-th token."""
        total = out.shape[1]
        for p in range(start, total):
            logits = self.out(h).float()                                     # (B, vocab)
            if temperature > 0:
                logits = logits / temperature + gumbel(logits.shape, generator, logits.device)
            out[:, p] = logits.argmax(-1)
            if progress is not None:
                progress(p - start + 1)
            if p + 1 < total:
                x = self._embed(out[:, p:p + 1], actions, p + 1)
                h = self.net(x, frames=torch.tensor([p + 1], device=out.device), cache=cache)[:, -1]
        return out

    @torch.no_grad()
    def sample(self, codes_cond: torch.Tensor, actions: torch.Tensor, length: int, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
        """codes_cond long (B, C, G, G), actions (B, C+L) -> (B, C+L, G, G); one forward per new token.
        `progress`, if given, is called with the number of tokens drawn after each token."""
        B, C, G, _ = codes_cond.shape
        if actions.shape != (B, C + length):
            raise ValueError(f"actions must be (B, C+L) = {(B, C + length)}, got {tuple(actions.shape)}")
        n_ctx, total = C * G * G, (C + length) * G * G
        out = torch.empty(B, total, dtype=torch.long, device=codes_cond.device)
        out[:, :n_ctx] = codes_cond.flatten(1)
        cache, h = self.prefill(codes_cond, actions, total)
        self.decode(out, n_ctx, cache, h, actions, temperature, generator, progress)
        return out.view(B, C + length, G, G)
