"""TECO's evaluation metrics: PSNR, SSIM and LPIPS per frame, FVD from I3D features.

Frames are channel-last, (..., H, W, 3): uint8 in [0, 255] or floating point already in [0, 1].
PSNR and SSIM follow TECO's reference code (teco/metrics.py of wilson1yan/teco), itself the
tf.image.psnr / tf.image.ssim definitions: max value 1, per-frame MSE over H, W, C; SSIM with an
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, 'valid' filtering, averaged over pixels
and channels. That SSIM equals skimage's structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_unit(frames, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] frames (array or tensor) -> float32 tensor in [0, 1], same shape."""
    x = torch.as_tensor(frames)
    if device is not None:
        x = x.to(device)
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(f"frames must be uint8 or floating point in [0, 1], got {x.dtype}")
    return x.float()


def _pair(pred, target, device) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = to_unit(pred, device), to_unit(target, device)
    if a.shape != b.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim < 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"frames must be (..., H, W, C) with C in (1, 3), got {tuple(a.shape)}")
    return a, b


@torch.no_grad()
def psnr(pred, target, device=None) -> torch.Tensor:
    """Per-frame PSNR in dB, (..., H, W, C) -> (...); identical frames give +inf."""
    a, b = _pair(pred, target, device)
    mse = (a.double() - b.double()).pow(2).mean(dim=(-3, -2, -1))
    return (-10.0 * torch.log10(mse)).float()   # max value 1: 20 log10(1) = 0


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,); the 2-D window is its outer product (separable)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-coords ** 2 / (2.0 * sigma ** 2))
    return g / g.sum()


@torch.no_grad()
def ssim(pred, target, device=None, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
         k1: float = SSIM_K1, k2: float = SSIM_K2) -> torch.Tensor:
    """Per-frame SSIM, (..., H, W, C) -> (...); identical frames give 1."""
    a, b = _pair(pred, target, device)
    a, b = a.double(), b.double()   # E[x^2] - E[x]^2 cancels badly in float32 on flat regions
    *lead, h, w, c = a.shape
    if h < window or w < window:
        raise ValueError(f"SSIM needs frames of at least {window}x{window} pixels, got {h}x{w}")
    # (N*C, 1, H, W): every channel filtered independently, as a depthwise conv would
    a = a.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, 1, h, w)
    b = b.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, 1, h, w)
    g = gaussian_window(window, sigma).to(a.device)
    gx, gy = g.view(1, 1, 1, window), g.view(1, 1, window, 1)

    def blur(x):   # 'valid' separable Gaussian filtering: (M, 1, H, W) -> (M, 1, H-10, W-10)
        return F.conv2d(F.conv2d(x, gx), gy)

    c1, c2 = k1 ** 2, k2 ** 2    # (K * max_value)^2 with max_value 1
    mu_a, mu_b = blur(a), blur(b)
    mu_ab, mu_aa, mu_bb = mu_a * mu_b, mu_a * mu_a, mu_b * mu_b
    var_a = blur(a * a) - mu_aa
    var_b = blur(b * b) - mu_bb
    cov = blur(a * b) - mu_ab
    s = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))
    per_channel = s.mean(dim=(-2, -1)).reshape(-1, c)   # (N, C)
    return per_channel.mean(dim=-1).reshape(lead).float()


class LPIPSMetric:
    """Per-frame LPIPS distance with the perceptual network of teco/lpips.py, loaded from a local file."""

    def __init__(self, path: str, device: torch.device | str = "cpu", batch_size: int = 64,
                 backbone: str | None = None):
        from teco.lpips import LPIPS   # deferred: only needed when weights are there
        self.device = torch.device(device)
        self.net = LPIPS.from_file(path, backbone=backbone).to(self.device).eval()
        self.files = [path] + ([backbone] if backbone else [])
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, pred, target) -> torch.Tensor:
        """(..., H, W, 3) frames -> (...) distances (lower is closer)."""
        a, b = _pair(pred, target, self.device)
        lead = a.shape[:-3]
        a = a.reshape(-1, *a.shape[-3:]).permute(0, 3, 1, 2) * 2 - 1   # (N, 3, H, W) in [-1, 1]
        b = b.reshape(-1, *b.shape[-3:]).permute(0, 3, 1, 2) * 2 - 1
        out = [self.net(a[i:i + self.batch_size], b[i:i + self.batch_size]).reshape(-1).float()
               for i in range(0, a.shape[0], self.batch_size)]
        return torch.cat(out).reshape(lead)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,), covariance (D, D) (unbiased, as tfgan and pytorch-fid use)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians, computed as the authors' FVD
    does (tfgan's frechet_classifier_distance_from_activations): Tr((S1 S2)^(1/2)) as the trace of the
    symmetric square root of S1^(1/2) S2 S1^(1/2), so singular covariances (fewer videos than feature
    dimensions, as FVD on 256 videos of 400 logits) need no regularisation and give no imaginary parts."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    root1 = _symmetric_sqrt(sigma1)
    trace_sqrt = np.trace(_symmetric_sqrt(root1 @ sigma2 @ root1))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _symmetric_sqrt(m: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Square root of a symmetric PSD matrix through its SVD, singular values below eps kept as they are
    (tfgan's _symmetric_matrix_square_root)."""
    u, s, vt = np.linalg.svd(m)
    s = np.where(s < eps, s, np.sqrt(s))
    return (u * s) @ vt


def fvd_from_features(real, fake) -> float:
    """Frechet distance between two sets of I3D features (N, D) and (M, D)."""
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


def summarize(values) -> dict:
    """Mean and standard deviation over runs, as the paper reports (mean +/- std of 4 runs)."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "per_run": [float(x) for x in v]}


def finite_mean(x: torch.Tensor) -> float:
    """Mean of a metric tensor; an exact reconstruction's +inf PSNR would swamp it, so it is capped at 100 dB."""
    return float(torch.clamp(x.double(), max=100.0).mean()) if x.numel() else math.nan


# -- learning beyond copying (held-out, teacher-forced) ------------------------------------------------

def prior_from_past(model, codes: torch.Tensor, actions: torch.Tensor):
    """TECO's latent codes of frames n_cond.. scored by the MaskGit prior with every token masked, i.e.
    predicted from h_t (the past) alone. codes long (B, T, G, G), actions long (B, T) ->
    z (B, T, E, g, g), h (N, E, g, g), z_codes long (N, g, g), logits float (N, g, g, V); N = B (T - n_cond)."""
    n = model.cfg.n_cond
    z, z_codes, _ = model.encode(codes)
    h = model.temporal(z, actions)[:, n:].flatten(0, 1)
    zc = z_codes.flatten(0, 1)
    logits = model.prior(torch.full_like(zc, model.prior.mask_id), h.permute(0, 2, 3, 1)).float()
    return z, h, zc, logits


class LearningStats:
    """Does a TECO predict the next frame better than the trivial answers? Accumulated over held-out
    windows of true VQ-GAN codes, every frame's context being the true past (teacher forcing):

    * prior_nll_per_token: NLL (nats) of TECO's latent codes z_t under the MaskGit prior with every token
      masked, i.e. predicted from h_t (the past) alone; vs code_entropy, the entropy of the same codes'
      frequencies (what a prior that ignores the past achieves at best). Below it = the prior uses the past.
    * prior_masked_nll_per_token: the training objective (random cosine-schedule mask, fixed seed) per
      masked token, for comparison with train-teco's prior_loss / tokens.
    * next_frame_acc: VQ-GAN code accuracy of the greedy next frame (prior argmax with all tokens masked,
      then the decoder's argmax) vs copy_acc, the accuracy of copying the previous frame's codes.
    * posterior_acc: the decoder's accuracy from the posterior latent (it has seen the target frame):
      train-teco's recon_acc, an upper bound for next_frame_acc.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.sums: dict[str, float] = {}
        self.counts: torch.Tensor | None = None

    def _add(self, k: str, v) -> None:
        self.sums[k] = self.sums.get(k, 0.0) + float(v)

    @torch.no_grad()
    def add(self, model, codes: torch.Tensor, actions: torch.Tensor) -> None:
        """codes long (B, T, G, G), actions long (B, T) on the model's device."""
        was_training = model.training
        model.eval()
        try:
            prior, n = model.prior, model.cfg.n_cond
            z, h, zc, logits = prior_from_past(model, codes, actions)
            hc = h.permute(0, 2, 3, 1)
            self._add("nll_sum", F.cross_entropy(logits.reshape(-1, prior.vocab_size), zc.reshape(-1),
                                                 reduction="sum"))
            gen = torch.Generator().manual_seed(self.seed + int(self.sums.get("tokens", 0)))
            mask = prior.random_mask(zc.shape[0], gen, zc.device)
            loss, _ = prior.masked_loss(zc, mask, hc)
            self._add("masked_nll_sum", loss / (prior.grid ** 2) * zc.shape[0])
            self._add("masked_frames", zc.shape[0])
            self._add("tokens", zc.numel())
            counts = torch.bincount(zc.reshape(-1).cpu(), minlength=prior.vocab_size).double()
            self.counts = counts if self.counts is None else self.counts + counts
            target, prev = codes[:, n:].flatten(0, 1), codes[:, n - 1:-1].flatten(0, 1)
            zhat = model.codebook.embed(logits.argmax(-1)).permute(0, 3, 1, 2)
            self._add("next_correct", (model.decode_logits(h, zhat).argmax(-1) == target).sum())
            zq = z[:, n:].flatten(0, 1)
            self._add("posterior_correct", (model.decode_logits(h, zq).argmax(-1) == target).sum())
            self._add("copy_correct", (prev == target).sum())
            self._add("codes", target.numel())
            self._add("frames", target.shape[0])
        finally:
            model.train(was_training)

    def summary(self) -> dict:
        s = self.sums
        if not s.get("tokens"):
            return {"frames": 0}
        p = self.counts / self.counts.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        return {"frames": int(s["frames"]), "tokens": int(s["tokens"]),
                "prior_nll_per_token": s["nll_sum"] / s["tokens"], "code_entropy": entropy,
                "prior_masked_nll_per_token": s["masked_nll_sum"] / s["masked_frames"],
                "next_frame_acc": s["next_correct"] / s["codes"], "copy_acc": s["copy_correct"] / s["codes"],
                "posterior_acc": s["posterior_correct"] / s["codes"]}
