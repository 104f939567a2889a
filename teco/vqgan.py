"""VQ-GAN frame tokenizer (Esser et al. 2021, as used by TECO): frames <-> 16x16 grids of codes.

Architecture follows taming-transformers (which TECO's checkpoints came from): conv encoder with
ResBlocks and stride-2 downsampling, a mid block with self-attention, a codebook, a mirrored decoder,
and a PatchGAN discriminator trained with the hinge loss and an adaptive weight.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cli_common import strict_from_json

from .runs import CKPT_FILE, checkpoint_hash, load_checkpoint, read_run
from .modules import AttnBlock, Downsample, ResBlock, Upsample, VectorQuantizer, group_norm


@dataclass
class VQGANConfig:
    resolution: int                       # square frames, H = W
    channels: int = 128                   # base width; level i has channels * ch_mult[i]
    ch_mult: tuple[int, ...] = (1, 2, 2)  # len - 1 downsamplings: 64 px (1,2,2) -> 16; 128 px (1,1,2,2) -> 16
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)   # feature-map sides that get self-attention
    mid_attn: bool = True
    z_channels: int = 256
    embed_dim: int = 256                  # codebook vector size
    codebook_size: int = 1024
    beta: float = 0.25
    l2_normalize: bool = False            # True: cosine-similarity lookup (ViT-VQGAN); the authors' VQ-GAN is plain
    proj_dim: int | None = None           # low-dimensional lookup space
    dropout: float = 0.0
    disc_channels: int = 64
    disc_layers: int = 3
    disc_start: int = 10_000              # generator step at which the GAN loss switches on
    disc_weight: float = 0.8
    perceptual_weight: float = 1.0        # only used when LPIPS weights are given
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    lr: float = 2e-4
    weight_decay: float = 0.0
    batch_size: int = 64                  # frames per step
    steps: int = 100_000

    def __post_init__(self):
        self.ch_mult = tuple(int(m) for m in self.ch_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        if self.resolution % 2 ** (len(self.ch_mult) - 1):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2^{len(self.ch_mult) - 1}")

    @property
    def grid(self) -> int:
        """Latent grid side: resolution / 2^(len(ch_mult) - 1)."""
        return self.resolution // 2 ** (len(self.ch_mult) - 1)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "VQGANConfig":
        return strict_from_json(cls, d, "VQ-GAN")


# Codebook sizes: the paper's Habitat VQ-GAN is named for 8192 codes (habitat_8192 in TECO's configs);
# DMLab and Minecraft use 1024. Encoder/decoder widths are taming-transformers' defaults. The paper configs
# look codes up by plain Euclidean distance, as the authors' VQ-GAN (teco/models/vqgan.py) does;
# `train-vqgan --l2-codes` looks them up l2-normalised (ViT-VQGAN: fewer dead codes from scratch), which
# the CPU-scale tiny configs use.
VQGAN_CONFIGS: dict[str, VQGANConfig] = {
    "tiny": VQGANConfig(resolution=32, channels=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                        mid_attn=False, z_channels=32, embed_dim=16, codebook_size=64, disc_channels=16,
                        disc_layers=2, disc_start=20, lr=2e-3, batch_size=16, steps=200, l2_normalize=True),
    "tiny64": VQGANConfig(resolution=64, channels=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(),
                          mid_attn=False, z_channels=32, embed_dim=16, codebook_size=64, disc_channels=16,
                          disc_layers=2, disc_start=20, lr=2e-3, batch_size=16, steps=200, l2_normalize=True),
    # experiments/consistency.py: tiny64 widths with a 1024-code codebook (k-means on 4x4 patches bounds 64 codes
    # at ~23.7 dB PSNR, 1024 at ~27.0) and the GAN off (at CPU-scale step counts it cost 2 dB)
    "tiny64k": VQGANConfig(resolution=64, channels=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(),
                           mid_attn=False, z_channels=32, embed_dim=16, codebook_size=1024, disc_channels=16,
                           disc_layers=2, disc_start=10 ** 9, lr=2e-3, batch_size=16, steps=4000,
                           l2_normalize=True),
    "dmlab": VQGANConfig(resolution=64, ch_mult=(1, 2, 2), codebook_size=1024),
    "minecraft": VQGANConfig(resolution=128, ch_mult=(1, 1, 2, 2), codebook_size=1024, batch_size=32),
    "habitat": VQGANConfig(resolution=128, ch_mult=(1, 1, 2, 2), codebook_size=8192, batch_size=32),
}


def named_config(name: str | dict) -> VQGANConfig:
    """A fresh copy of a named config, or the config given by its fields."""
    if isinstance(name, dict):
        return VQGANConfig.from_json(dict(name))
    if name not in VQGAN_CONFIGS:
        raise ValueError(f"unknown VQ-GAN config '{name}': choose one of {', '.join(VQGAN_CONFIGS)}")
    return dataclasses.replace(VQGAN_CONFIGS[name])


class Encoder(nn.Module):
    """(B, 3, R, R) float -> (B, z_channels, R/2^L, R/2^L)."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        ch, res = cfg.channels, cfg.resolution
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        blocks: list[nn.Module] = []
        for i, mult in enumerate(cfg.ch_mult):
            out = cfg.channels * mult
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, out, cfg.dropout))
                ch = out
                if res in cfg.attn_resolutions:
                    blocks.append(AttnBlock(ch))
            if i != len(cfg.ch_mult) - 1:
                blocks.append(Downsample(ch))
                res //= 2
        self.down = nn.Sequential(*blocks)
        self.mid = _mid(ch, cfg)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """(B, z_channels, g, g) -> (B, 3, R, R) float (unbounded; ~[-1, 1] after training)."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        ch, res = cfg.channels * cfg.ch_mult[-1], cfg.grid
        self.conv_in = nn.Conv2d(cfg.z_channels, ch, 3, padding=1)
        self.mid = _mid(ch, cfg)
        blocks: list[nn.Module] = []
        for i in reversed(range(len(cfg.ch_mult))):
            out = cfg.channels * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(ch, out, cfg.dropout))
                ch = out
                if res in cfg.attn_resolutions:
                    blocks.append(AttnBlock(ch))
            if i != 0:
                blocks.append(Upsample(ch))
                res *= 2
        self.up = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


def _mid(ch: int, cfg: VQGANConfig) -> nn.Sequential:
    attn = [AttnBlock(ch)] if cfg.mid_attn else []
    return nn.Sequential(ResBlock(ch, ch, cfg.dropout), *attn, ResBlock(ch, ch, cfg.dropout))


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / taming NLayerDiscriminator): (B, 3, R, R) -> (B, 1, h, w) real/fake logits."""

    def __init__(self, channels: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = channels
        for n in range(1, layers + 1):
            out = channels * min(2 ** n, 8)
            stride = 2 if n < layers else 1    # the last hidden layer keeps the resolution
            mods += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.main = nn.Sequential(*mods)
        for m in self.modules():   # pix2pix init: N(0, 0.02) convs, N(1, 0.02) norms
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class VQGAN(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.embed_dim, cfg.beta, cfg.l2_normalize, cfg.proj_dim)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = Decoder(cfg)

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x float in [-1, 1] (B, 3, R, R) -> (recon (B, 3, R, R), vq_loss scalar, codes long (B, g, g))."""
        zq, codes, vq_loss = self.quantizer(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(zq)), vq_loss, codes

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 (B, R, R, 3) -> codes long (B, g, g)."""
        return self.quantizer.lookup(self.quant_conv(self.encoder(to_float(frames))))

    def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
        """codes long (B, g, g) -> (B, 3, R, R) float, ~[-1, 1]; differentiable w.r.t. the decoder."""
        return self.decoder(self.post_quant_conv(self.quantizer.embed(codes)))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes long (B, g, g) -> uint8 (B, R, R, 3)."""
        return to_uint8(self.decode_float(codes))

    def codebook_embeddings(self) -> torch.Tensor:
        """(K, D) code vectors in lookup space (D = proj_dim or embed_dim), detached."""
        return self.quantizer.codebook().detach()

    def last_layer(self) -> torch.Tensor:
        """The decoder's output conv weight: where the adaptive GAN weight compares gradients."""
        return self.decoder.conv_out.weight


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


# -- losses ---------------------------------------------------------------------------------------

def reconstruction_loss(x: torch.Tensor, recon: torch.Tensor, cfg: VQGANConfig,
                        lpips: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """{"rec": weighted sum, "l1", "l2", and "lpips" when a perceptual net is given}; x, recon in [-1, 1]."""
    out = {"l1": (x - recon).abs().mean(), "l2": F.mse_loss(recon.float(), x.float())}
    rec = cfg.l1_weight * out["l1"] + cfg.l2_weight * out["l2"]
    if lpips is not None:
        out["lpips"] = lpips(x, recon).mean()
        rec = rec + cfg.perceptual_weight * out["lpips"]
    out["rec"] = rec
    return out


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4, eps: float = 1e-6) -> torch.Tensor:
    """lambda = ||grad_w L_rec|| / (||grad_w L_GAN|| + eps) at the decoder's last layer w, clamped to
    [0, max_weight] and detached (taming-transformers' balancing of the two losses)."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gan.norm() + eps)).clamp(0.0, max_weight).detach()


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


# -- loading ----------------------------------------------------------------------------------------

def run_files(run_dir) -> tuple[str, str]:
    """(run folder, ckpt.pt) of a train-vqgan run; a ckpt path is accepted for the run too."""
    run_dir = str(run_dir)
    if os.path.isfile(run_dir):
        run_dir = os.path.dirname(os.path.abspath(run_dir))
    read_run(run_dir, "vqgan")   # names the folder when it is no run at all
    ckpt_path = os.path.join(run_dir, CKPT_FILE)
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"{run_dir} is not a train-vqgan run: {CKPT_FILE} is missing")
    return run_dir, ckpt_path


def read_run_config(run_dir) -> dict:
    """run.json (config.json in older runs) of a run: {"name", "vqgan": VQGANConfig fields, "store", ...}."""
    run_dir, _ = run_files(run_dir)
    meta = read_run(run_dir, "vqgan")
    if "vqgan" not in meta or not isinstance(meta["vqgan"], dict):
        raise ValueError(f"{run_dir} holds no train-vqgan config (no 'vqgan' entry in its run file)")
    return meta


def load_vqgan(run_dir, map_location="cpu") -> tuple[VQGAN, str]:
    """(VQGAN in eval mode with frozen weights, content hash of its checkpoint) from a train-vqgan run; the
    model's `trained_step` is the checkpoint's step (None if it records none), of cfg.steps."""
    _, ckpt_path = run_files(run_dir)
    cfg = VQGANConfig.from_json(read_run_config(run_dir)["vqgan"])
    ckpt = load_checkpoint(ckpt_path, map_location)
    if "model" not in ckpt:
        raise ValueError(f"{ckpt_path} holds no VQ-GAN weights ('model' entry missing)")
    model = VQGAN(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise ValueError(f"{ckpt_path} does not match its run's config: {str(e).splitlines()[0]}") from None
    model.trained_step = ckpt.get("step")
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    return model.eval().requires_grad_(False), checkpoint_hash(ckpt_path)


def load_recorded_vqgan(path, run_file: str, given: bool, map_location="cpu") -> tuple[VQGAN, str]:
    """load_vqgan of the VQ-GAN a TECO run's run.json (`run_file`) names; when that path no longer holds it
    the message says where the path is recorded and that --vqgan DIR overrides it (`given`: it came from
    --vqgan already)."""
    try:
        return load_vqgan(path, map_location)
    except FileNotFoundError as e:
        if given:
            raise
        raise FileNotFoundError(f"{e}; that path of the VQ-GAN is recorded in {run_file}: if the VQ-GAN run "
                                "moved, pass --vqgan DIR") from None
