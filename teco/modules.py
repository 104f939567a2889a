"""Shared CNN building blocks and the vector-quantised codebook (used by the VQ-GAN and by TECO)."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def _fp32(x: torch.Tensor):
    """Autocast off for x's device (nearest-neighbour distances in bf16 pick wrong codes)."""
    kind = x.device.type
    return torch.autocast(kind, enabled=False) if torch.amp.is_autocast_available(kind) else contextlib.nullcontext()


def group_norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups; fewer for the tiny configs whose channel counts are small."""
    groups = 32
    while ch % groups:
        groups //= 2
    return nn.GroupNorm(groups, ch, eps=1e-6)


class ResBlock(nn.Module):
    """(GroupNorm, SiLU, conv3x3) x 2 with a residual; a 1x1 conv on the skip when channels change.
    x (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int | None = None, dropout: float = 0.0):
        super().__init__()
        out_ch = out_ch or in_ch
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Stride-2 conv3x3: (B, C, H, W) -> (B, C, H/2, W/2). Asymmetric padding as in taming-transformers
    so odd kernels halve even sizes exactly."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2 then conv3x3: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions with a residual (VQ-GAN's mid block).
    x (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # (B, HW, C) each
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]       # (B, HW, C)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook with a straight-through estimator.

    With `proj_dim`, inputs are projected (1x1) to proj_dim before the lookup and the chosen codes are
    projected back, as TECO's codebook does; with `l2_normalize`, both inputs and codebook vectors are
    unit-normalised so the lookup is by cosine similarity (better codebook usage).
    loss_vq = ||sg(z) - e||^2 + beta * ||z - sg(e)||^2 (means over elements), computed in lookup space.
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, l2_normalize: bool = False,
                 proj_dim: int | None = None):
        super().__init__()
        self.num_codes, self.dim, self.beta, self.l2_normalize = num_codes, dim, beta, l2_normalize
        self.code_dim = proj_dim or dim
        self.proj_in = nn.Conv2d(dim, self.code_dim, 1) if proj_dim else nn.Identity()
        self.proj_out = nn.Conv2d(self.code_dim, dim, 1) if proj_dim else nn.Identity()
        self.embedding = nn.Embedding(num_codes, self.code_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_codes, 1.0 / num_codes)

    def codebook(self) -> torch.Tensor:
        """(K, code_dim) lookup-space code vectors (normalised when l2_normalize)."""
        e = self.embedding.weight
        return F.normalize(e, dim=1) if self.l2_normalize else e

    def _lookup_space(self, z: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, H, W, code_dim) float32: distances in bf16 pick wrong neighbours
        with _fp32(z):
            z = self.proj_in(z.float()).permute(0, 2, 3, 1)
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    @torch.no_grad()
    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, dim, H, W) -> codes long (B, H, W)."""
        return self._nearest(self._lookup_space(z))

    def _nearest(self, zf: torch.Tensor) -> torch.Tensor:
        # zf (B, H, W, D); ||z||^2 - 2 z.e + ||e||^2, argmin takes the first index on ties -> deterministic
        e = self.codebook().float()
        flat = zf.reshape(-1, zf.shape[-1])
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1).view(zf.shape[:-1])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, dim, H, W) -> (z_q (B, dim, H, W) straight-through, codes long (B, H, W), loss_vq scalar)."""
        zf = self._lookup_space(z)                                    # (B, H, W, D)
        codes = self._nearest(zf.detach())
        e = F.embedding(codes, self.codebook())                       # (B, H, W, D)
        loss = F.mse_loss(e, zf.detach()) + self.beta * F.mse_loss(zf, e.detach())
        zq = zf + (e - zf).detach()                                   # straight-through
        with _fp32(z):
            return self.proj_out(zq.permute(0, 3, 1, 2)), codes, loss

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes long (B, H, W) -> (B, dim, H, W), what the decoder receives for these codes."""
        e = F.embedding(codes, self.codebook())                       # (B, H, W, D)
        with _fp32(codes):
            return self.proj_out(e.permute(0, 3, 1, 2))


# -- TECO's own blocks (wilson1yan/teco teco/models/base.py); the VQ-GAN above keeps its taming-style ones --

def lecun_normal_(w: torch.Tensor, fan_in: int, truncated: bool = True) -> torch.Tensor:
    """Flax's default kernel init, variance_scaling(1, "fan_in"): std 1/sqrt(fan_in); truncated at two
    standard deviations and rescaled so the variance stays 1/fan_in (PyTorch's default is ~sqrt(3) smaller)."""
    std = fan_in ** -0.5
    if not truncated:
        return nn.init.normal_(w, 0.0, std)
    std /= 0.87962566103423978   # std of a unit normal truncated to [-2, 2]
    return nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


def init_flax_(module: nn.Module) -> None:
    """Flax defaults on every Linear / conv below `module`: lecun-normal kernels, zero biases.
    (Flax's kernel fan-in is in_features x kernel area, also for a transposed conv.)"""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            lecun_normal_(m.weight, m.in_features)
        elif isinstance(m, nn.ConvTranspose2d):
            lecun_normal_(m.weight, m.weight.shape[0] * m.weight[0, 0].numel())
        elif isinstance(m, nn.Conv2d):
            lecun_normal_(m.weight, m.weight[0].numel())
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class ResNetBlock(nn.Module):
    """TECO's residual block: (GroupNorm, ELU, conv3x3) x 2, output skip + 0.1 * branch; a bias-free
    1x1 conv on the skip when channels change. (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int | None = None):
        super().__init__()
        out_ch = out_ch or in_ch
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x)))
        h = self.conv2(F.elu(self.norm2(h)))
        return self.skip(x) + 0.1 * h


class Codebook(nn.Module):
    """TECO's codebook: bias-free projections dim -> code_dim (lookup) and back, l2-normalised inputs and
    code vectors (cosine nearest neighbour), straight-through gradients. Losses as optax.l2_loss means:
    codebook = mean 0.5 (sg(z) - e)^2, commitment = beta * mean 0.5 (z - sg(e))^2. Works channels-last."""

    def __init__(self, num_codes: int, dim: int, code_dim: int, beta: float = 0.25):
        super().__init__()
        self.num_codes, self.beta = num_codes, beta
        self.proj_in = nn.Linear(dim, code_dim, bias=False)
        self.proj_out = nn.Linear(code_dim, dim, bias=False)
        self.embedding = nn.Parameter(torch.randn(num_codes, code_dim) * 0.02)

    def codebook(self) -> torch.Tensor:
        """(K, code_dim) unit-norm code vectors (fp32)."""
        return F.normalize(self.embedding.float(), dim=-1, eps=1e-6)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z (..., dim) -> dict(embeddings (..., dim) straight-through, codes long (...), codebook_loss,
        commitment_loss, perplexity). Lookup in fp32: distances in bf16 pick wrong neighbours."""
        with _fp32(z):
            zp = F.normalize(self.proj_in(z.float()), dim=-1, eps=1e-6)
            e = self.codebook()
            codes = (zp.detach().reshape(-1, zp.shape[-1]) @ e.t()).argmax(1)   # max cosine = min distance
            q = e[codes].view(zp.shape)
            commitment = self.beta * 0.5 * (zp - q.detach()).pow(2).mean()
            codebook = 0.5 * (zp.detach() - q).pow(2).mean()
            out = self.proj_out(zp + (q - zp).detach())
            p = torch.bincount(codes, minlength=self.num_codes).float() / codes.numel()
            perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
        return dict(embeddings=out.to(z.dtype), codes=codes.view(zp.shape[:-1]), codebook_loss=codebook,
                    commitment_loss=commitment, perplexity=perplexity.detach())

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes long (...) -> (..., dim), the embedding the rest of TECO sees for these codes."""
        with _fp32(codes):
            return self.proj_out(self.codebook()[codes])
