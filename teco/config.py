"""TECO hyper-parameters as dataclasses; the named configs mirror the authors' configs/{dmlab,minecraft,habitat}.yaml
(wilson1yan/teco; field-by-field table in teco/README.md). Fields marked "deviation" select behaviour that
is not the authors'; they are off by default."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from cli_common import strict_from_json


@dataclass
class TransformerConfig:
    embed_dim: int
    mlp_dim: int
    num_heads: int
    num_layers: int
    dropout: float = 0.0
    attention_dropout: float = 0.0

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")


RETIRED_FIELDS = ("open_loop_ctx",)   # TECOConfig fields older runs recorded; accepted and ignored


@dataclass
class TECOConfig:
    name: str = "custom"
    # -- optimisation (AdamW, linear warmup then cosine decay reaching 0 at total_steps - warmup_steps) --
    seq_len: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)
    total_steps: int = 1_000_000
    warmup_steps: int = 5000
    grad_clip: float | None = None   # deviation when set: clip the gradient norm (the authors do not clip)
    save_interval: int = 100_000
    log_interval: int = 100
    # -- conditional encoder E(x_t, x_{t-1}): ResNet on VQ-GAN code embeddings, 16x16 -> 8x8 --
    codes_grid: int = 16         # the VQ-GAN's grid: set from it at train time, like vq_codes and vq_dim
    encoder_depths: tuple[int, ...] = (256, 512)
    encoder_blocks: int = 2
    decoder_depths: tuple[int, ...] = (256, 512)   # mirrored: run in reverse, 8x8 -> 16x16
    decoder_blocks: int = 4
    embedding_dim: int = 64
    n_codes: int = 1024          # TECO's own l2-normalised codebook
    proj_dim: int = 32
    # -- temporal transformer over frames; each 8x8 latent is strided down by z_ds --
    z_ds: int = 8
    z_tfm: TransformerConfig = field(default_factory=lambda: TransformerConfig(1024, 4096, 16, 8))
    max_context: int | None = None   # sliding-window attention over the last k frames (short-context baseline)
    # -- MaskGit prior p(z_t | h_t) --
    z_git: TransformerConfig = field(default_factory=lambda: TransformerConfig(512, 2048, 8, 8))
    z_git_vocab_dim: int = 256
    mask_schedule: str = "cosine"
    # -- losses --
    n_cond: int = 1
    drop_loss_rate: float = 0.9
    drop_loss_unique: bool = False   # deviation: DropLoss steps drawn without replacement, uniformly
    label_smoothing: float = 0.01
    # -- actions: ids 0..action_dim-1, plus one "dropped / none" id --
    use_actions: bool = True
    action_dim: int = 6
    action_embed_dim: int = 16
    dropout_actions: bool = True
    action_dropout_p: float = 0.5
    # the input predicting frame t takes actions[t + action_lead] (store convention: actions[t] produced
    # frame t; past the window's end: none). 1 for DMLab, whose released files store the action taken
    # after each frame, which the authors' concat(z[:, :-1], a[:, 1:]) paired with frame t-1 (teco/README.md)
    action_lead: int = 0
    # -- the VQ-GAN whose codes TECO models (filled in from the VQ-GAN at train time) --
    vq_codes: int = 1024
    vq_dim: int = 64
    # -- sampling --
    T_draft: int = 8
    T_revise: int = 8
    M: int = 2

    def __post_init__(self):
        if isinstance(self.z_tfm, dict):
            self.z_tfm = TransformerConfig(**self.z_tfm)
        if isinstance(self.z_git, dict):
            self.z_git = TransformerConfig(**self.z_git)
        self.encoder_depths, self.decoder_depths = tuple(self.encoder_depths), tuple(self.decoder_depths)
        self.betas = tuple(self.betas)
        if self.codes_grid % self.down != 0:
            raise ValueError(f"codes grid {self.codes_grid} is not divisible by the encoder's downsampling {self.down}")
        if self.z_grid % self.z_ds != 0:
            raise ValueError(f"latent grid {self.z_grid} is not divisible by z_ds {self.z_ds}")
        if self.max_context is not None and self.max_context < 1:
            raise ValueError(f"max_context must be >= 1 or None, got {self.max_context}")
        if self.action_lead not in (0, 1):
            raise ValueError(f"action_lead must be 0 or 1, got {self.action_lead}")
        if not 0.0 <= self.drop_loss_rate < 1.0:
            raise ValueError(f"drop_loss_rate must be in [0, 1), got {self.drop_loss_rate}")
        if self.seq_len <= self.n_cond:
            raise ValueError(f"seq_len {self.seq_len} must exceed n_cond {self.n_cond}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None (no clipping), got {self.grad_clip}")
        if self.mask_schedule != "cosine":
            raise ValueError(f"unknown mask_schedule '{self.mask_schedule}' (only 'cosine')")

    @property
    def down(self) -> int:
        return 2 ** (len(self.encoder_depths) - 1)

    @property
    def z_grid(self) -> int:
        """Side of TECO's latent z_t (8 for a 16x16 code grid)."""
        return self.codes_grid // self.down

    @property
    def tfm_grid(self) -> int:
        """Side of the per-frame token grid the temporal transformer sees (1 for DMLab)."""
        return self.z_grid // self.z_ds

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "TECOConfig":
        # open_loop_ctx: recorded by runs made before it was dropped (nothing read it)
        return strict_from_json(cls, {k: v for k, v in d.items() if k not in RETIRED_FIELDS}, "TECO")


TECO_CONFIGS: dict[str, TECOConfig] = {
    "dmlab": TECOConfig(
        name="dmlab", encoder_blocks=2, decoder_blocks=4, embedding_dim=64, n_codes=1024, z_ds=8,
        z_tfm=TransformerConfig(1024, 4096, 16, 8), z_git=TransformerConfig(512, 2048, 8, 8),
        save_interval=100_000, dropout_actions=True, action_lead=1),
    "minecraft": TECOConfig(
        name="minecraft", batch_size=8, encoder_blocks=4, decoder_blocks=6, embedding_dim=128, n_codes=1024, z_ds=8,
        z_tfm=TransformerConfig(1024, 4096, 16, 12), z_git=TransformerConfig(768, 3072, 12, 6),
        save_interval=100_000, dropout_actions=False),
    "habitat": TECOConfig(
        name="habitat", encoder_blocks=4, decoder_blocks=8, embedding_dim=256, n_codes=2048, z_ds=4,
        z_tfm=TransformerConfig(1024, 4096, 16, 8), z_git=TransformerConfig(1024, 4096, 16, 16),
        save_interval=50_000, dropout_actions=True),
    # trains in seconds on a CPU; z_ds 4 keeps several tokens per frame so the general path is exercised
    "tiny": TECOConfig(
        name="tiny", seq_len=8, batch_size=4, lr=3e-3, total_steps=200, warmup_steps=5,
        save_interval=100, log_interval=10,
        encoder_depths=(16, 32), encoder_blocks=1, decoder_depths=(16, 32), decoder_blocks=1,
        embedding_dim=16, n_codes=64, proj_dim=8, z_ds=4,
        z_tfm=TransformerConfig(32, 64, 2, 2), z_git=TransformerConfig(32, 64, 2, 2), z_git_vocab_dim=16,
        drop_loss_rate=0.5, T_draft=4, T_revise=4, M=1),
    # experiments/consistency.py: tiny's widths with a 48-frame window, so a context of 47 frames covers the
    # revisits of the DMLab retrace probe (gaps 17-40) that a --context 16 twin cannot see
    "probe48": TECOConfig(
        name="probe48", seq_len=48, batch_size=4, lr=1e-3, total_steps=3000, warmup_steps=100,
        save_interval=500, log_interval=50,
        encoder_depths=(16, 32), encoder_blocks=1, decoder_depths=(16, 32), decoder_blocks=1,
        embedding_dim=16, n_codes=64, proj_dim=8, z_ds=4,
        z_tfm=TransformerConfig(32, 64, 2, 2), z_git=TransformerConfig(32, 64, 2, 2), z_git_vocab_dim=16,
        drop_loss_rate=0.5, T_draft=4, T_revise=4, M=1),
}


def store_default(store_params: dict, key: str, what: str) -> str | dict:
    """The default config a store's dataset records (params[key]: a config name or its fields)."""
    value = store_params.get(key)
    if not isinstance(value, (str, dict)):
        raise ValueError(f"--config is required: the store records no default {what} config (params['{key}'])")
    return value


def get_config(name: str | dict, **overrides) -> TECOConfig:
    """A fresh copy of a named config (or one given by its fields) with dataclass field overrides."""
    if isinstance(name, dict):
        return dataclasses.replace(TECOConfig.from_json(copy.deepcopy(name)), **overrides)
    if name not in TECO_CONFIGS:
        raise ValueError(f"unknown TECO config '{name}': choose one of {', '.join(sorted(TECO_CONFIGS))}")
    return dataclasses.replace(copy.deepcopy(TECO_CONFIGS[name]), **overrides)
