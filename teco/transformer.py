"""Pre-LN transformer used twice by TECO: causal over frames (temporal model, with a KV cache and an
optional sliding window) and bidirectional over one frame's latent grid (MaskGit prior).

As the authors' (wilson1yan/teco teco/models/transformer.py): an input Dense (use_fc_in) before the
position codes, MLP activation x * sigmoid(1.702 x), output head Dense -> tanh-GELU -> LayerNorm,
Flax initialisers (attention projections normal, other kernels truncated normal, std 1/sqrt(fan_in)).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TransformerConfig
from .modules import init_flax_, lecun_normal_


def sinusoidal(n: int, dim: int, offset: int = 0, device=None) -> torch.Tensor:
    """(n, dim) sin/cos position codes for positions offset .. offset+n-1."""
    pos = torch.arange(offset, offset + n, dtype=torch.float32, device=device)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))
    ang = pos[:, None] * inv_freq[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1)[:, :dim]


def frame_mask(q_frames: torch.Tensor, k_frames: torch.Tensor, max_context: int | None) -> torch.Tensor:
    """bool (Nq, Nk), True = may attend: a token sees every token of its own and earlier frames
    (block-causal, so the tokens of one frame see each other), and with max_context only the last
    max_context frames, its own included."""
    q, k = q_frames[:, None], k_frames[None, :]
    allowed = k <= q
    if max_context is not None:
        allowed = allowed & (q - k < max_context)
    return allowed


class KVCache:
    """Past keys/values of every layer plus the frame index of each cached token. After each forward
    the tokens the next frame can no longer see (outside max_context) are dropped, so memory stays
    bounded for the sliding-window model."""

    def __init__(self, num_layers: int, max_context: int | None = None):
        self.k: list[torch.Tensor | None] = [None] * num_layers   # (B, heads, S, head_dim)
        self.v: list[torch.Tensor | None] = [None] * num_layers
        self.frames: torch.Tensor | None = None                   # long (S,), on the CPU
        self.max_context = max_context

    def __len__(self) -> int:
        return 0 if self.frames is None else int(self.frames.numel())

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], 2), torch.cat([self.v[layer], v], 2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def key_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return frames if self.frames is None else torch.cat([self.frames, frames])

    def commit(self, frames: torch.Tensor) -> None:
        """Record the new tokens' frames and drop what the next frame (last + 1) would not attend to."""
        self.frames = self.key_frames(frames)
        if self.max_context is None:
            return
        keep = self.frames > int(self.frames.max()) + 1 - self.max_context
        if not bool(keep.all()):
            self.frames = self.frames[keep]
            self.k = [k[:, :, keep.to(k.device)] for k in self.k]
            self.v = [v[:, :, keep.to(v.device)] for v in self.v]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        # x (B, N, D) -> (B, N, D)
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, N, D))


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """The authors' MLP activation ("gelu2"): x * sigmoid(1.702 x)."""
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, cfg.attention_dropout)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.mlp = MLP(cfg.embed_dim, cfg.mlp_dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask, is_causal, cache=None, layer=0):
        x = x + self.drop(self.attn(self.norm1(x), mask, is_causal, cache, layer))
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """x (B, N, in_dim) -> (B, N, D). With `in_dim`, an input Dense in_dim -> D comes first (the authors'
    use_fc_in); `pos` (N, D) is added after it. With `frames` (long (N,) on the CPU, the frame of each
    token) attention is block-causal over frames (sliding window when max_context is set); without,
    bidirectional."""

    def __init__(self, cfg: TransformerConfig, max_context: int | None = None, in_dim: int | None = None):
        super().__init__()
        self.cfg, self.max_context = cfg, max_context
        self.fc_in = nn.Linear(in_dim, cfg.embed_dim) if in_dim else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.head = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.embed_dim), nn.GELU(approximate="tanh"),
                                  nn.LayerNorm(cfg.embed_dim, eps=1e-6))
        init_flax_(self)
        for b in self.blocks:   # Flax MultiHeadAttention: plain (untruncated) normal kernels
            for lin in (b.attn.qkv, b.attn.out):
                lecun_normal_(lin.weight, cfg.embed_dim, truncated=False)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.blocks), self.max_context)

    def _mask(self, frames: torch.Tensor | None, cache: KVCache | None):
        """(mask, is_causal) for SDPA; one token per frame without a window is plain causal attention,
        which goes through is_causal (flash kernels, no N x N mask in memory)."""
        if frames is None:
            return None, False
        if cache is None and self.max_context is None and bool((frames.diff() == 1).all()):
            return None, True
        k_frames = cache.key_frames(frames) if cache is not None else frames
        allowed = frame_mask(frames, k_frames, self.max_context)
        return (None, False) if bool(allowed.all()) else (allowed, False)

    def forward(self, x: torch.Tensor, frames: torch.Tensor | None = None,
                cache: KVCache | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
        if cache is not None and frames is None:
            raise ValueError("a KV cache needs the frame index of every token")
        mask, is_causal = self._mask(frames, cache)
        if mask is not None:
            mask = mask.to(x.device)
        x = self.fc_in(x)
        if pos is not None:
            x = x + pos.to(x.dtype)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, is_causal, cache, i)
        if cache is not None:
            cache.commit(frames)
        return self.head(x)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

