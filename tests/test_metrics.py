"""PSNR / SSIM / Frechet distance against known values; I3D checkpoint loading and preprocessing."""
import math

import numpy as np
import pytest
import torch

from teco import metrics
from teco.i3d import MIN_FRAMES, InceptionI3d, i3d_features, load_i3d, preprocess

torch.set_num_threads(1)


def _frames(seed, shape=(4, 24, 24, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_identical_frames():
    x = _frames(0)
    assert torch.isinf(metrics.psnr(x, x)).all()
    assert torch.allclose(metrics.ssim(x, x), torch.ones(4), atol=1e-6)


def test_psnr_of_known_gaussian_noise():
    rng = np.random.default_rng(1)
    sigma = 0.05
    clean = np.full((3, 64, 64, 3), 0.5)
    noisy = clean + rng.normal(0, sigma, clean.shape)          # float frames in [0, 1], no clipping at 10 sigma
    got = metrics.psnr(torch.tensor(noisy, dtype=torch.float32), torch.tensor(clean, dtype=torch.float32))
    want = -10 * math.log10(sigma ** 2)                         # 26.02 dB
    assert got.shape == (3,)
    assert torch.allclose(got, torch.full((3,), want), atol=0.15)
    # uint8: rounding adds variance 1/12 (in 0..255 units) to the noise
    s8 = 10.0
    clean8 = np.full((2, 64, 64, 3), 128, np.uint8)
    noisy8 = np.clip(np.round(128 + rng.normal(0, s8, clean8.shape)), 0, 255).astype(np.uint8)
    want8 = 10 * math.log10(255 ** 2 / (s8 ** 2 + 1 / 12))
    assert torch.allclose(metrics.psnr(noisy8, clean8), torch.full((2,), want8), atol=0.15)


def _ssim_reference(x, y, data_range=255.0):
    """Direct per-window evaluation of Wang et al.'s SSIM with skimage's constants and 11x11 Gaussian
    window (sigma 1.5, use_sample_covariance=False): K1=0.01, K2=0.03, C = (K * data_range)^2."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    c = np.arange(11) - 5.0
    g = np.exp(-c ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, wd, ch = x.shape
    vals = []
    for k in range(ch):
        for i in range(h - 10):
            for j in range(wd - 10):
                a, b = x[i:i + 11, j:j + 11, k], y[i:i + 11, j:j + 11, k]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_direct_formula():
    x = _frames(2, (2, 16, 18, 3))
    noise = np.random.default_rng(3).integers(-40, 40, x.shape)
    y = np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)
    got = metrics.ssim(x, y)
    want = [_ssim_reference(x[i], y[i]) for i in range(2)]
    assert np.allclose(got.numpy(), want, atol=1e-5)
    assert 0.0 < float(got.min()) < 0.99


def test_ssim_of_constant_frames_closed_form():
    a, b = 0.3, 0.6                       # zero variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = 0.01^2
    x, y = torch.full((1, 12, 12, 3), a), torch.full((1, 12, 12, 3), b)
    c1 = 0.01 ** 2
    assert float(metrics.ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(_frames(0, (1, 12, 12, 3)), _frames(0, (1, 12, 13, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(_frames(0, (1, 8, 8, 3)), _frames(1, (1, 8, 8, 3)))
    with pytest.raises(ValueError, match="uint8 or floating"):
        metrics.psnr(np.zeros((1, 12, 12, 3), np.int64), np.zeros((1, 12, 12, 3), np.int64))


def test_frechet_distance_identical_is_zero_and_known_gaussians():
    f = np.random.default_rng(4).normal(size=(500, 6))
    assert abs(metrics.fvd_from_features(f, f)) < 1e-6
    # closed form for diagonal covariances: |d|^2 + sum(s1 + s2 - 2 sqrt(s1 s2))
    got = metrics.frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([3.0, 0.0]), np.diag([4.0, 1.0]))
    assert got == pytest.approx(9.0 + (1 + 4 - 4) + (4 + 1 - 4), abs=1e-6)
    # samples of N(0, I) vs N(m, I): the distance is |m|^2 up to sampling error
    rng = np.random.default_rng(5)
    m = np.array([1.0, -2.0, 0.5, 0.0])
    a, b = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4))
    a, b = a - a.mean(0), b - b.mean(0) + m          # exact means; covariances differ from I by ~1/sqrt(n)
    assert metrics.fvd_from_features(a, b) == pytest.approx(float(m @ m), abs=0.01)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fvd_from_features(a[:1], b[:1])


def test_frechet_distance_of_singular_covariances_as_tfgan():
    """Fewer feature vectors than dimensions (FVD: 256 videos, 400 logits) make both covariances singular;
    the distance is still real and finite, 0 for identical sets, and equals the eigenvalue form
    Tr (S1 S2)^(1/2) = sum sqrt(eig(S1 S2)) (real and >= 0 for PSD matrices)."""
    rng = np.random.default_rng(124)     # scaled features whose regularised scipy sqrtm had an imaginary part

    def draw(n, d):
        return rng.normal(size=(n, d)) * rng.uniform(0.01, 3, size=d)
    draw(8, 9), draw(8, 9)
    a, b = draw(8, 20), draw(8, 20)
    assert abs(metrics.fvd_from_features(a, a)) < 1e-6
    (m1, s1), (m2, s2) = metrics.feature_stats(a), metrics.feature_stats(b)
    eig = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
    want = float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())
    got = metrics.fvd_from_features(a, b)
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-6)


def test_summarize_and_finite_mean():
    s = metrics.summarize([1.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "per_run": [1.0, 3.0]}
    assert metrics.finite_mean(torch.tensor([float("inf"), 20.0])) == 60.0   # +inf capped at 100 dB


def test_i3d_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    ref = InceptionI3d(num_classes=400).eval()
    sd = {("module." + k): v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": sd}, tmp_path / "rgb.pt")
    got = load_i3d(str(tmp_path / "rgb.pt"))
    videos = torch.randint(0, 256, (1, MIN_FRAMES, 20, 28, 3), dtype=torch.uint8)
    fa, fb = i3d_features(ref, videos), i3d_features(got, videos)
    assert fa.shape == (1, 400) and torch.equal(fa, fb)

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="pytorch-i3d"):
        load_i3d(str(tmp_path / "bad.pt"))
    with pytest.raises(FileNotFoundError):
        load_i3d(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_features(ref, videos[:, :MIN_FRAMES - 1])


class _Detector(torch.nn.Module):
    def forward(self, x, rescale: bool = True, resize: bool = True, return_features: bool = False):
        assert not rescale and not resize and return_features
        return x.mean(dim=(2, 3, 4)).repeat(1, 2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # torch.jit is deprecated, the format is not
def test_i3d_torchscript_archive(tmp_path):
    torch.jit.save(torch.jit.script(_Detector()), str(tmp_path / "i3d_torchscript.pt"))
    det = load_i3d(str(tmp_path / "i3d_torchscript.pt"))
    videos = torch.full((2, 3, 4, 4, 3), 255, dtype=torch.uint8)
    assert torch.allclose(i3d_features(det, videos), torch.ones(2, 6, dtype=torch.float64))


def test_i3d_preprocess_range_and_layout():
    v = torch.zeros(1, 2, 8, 8, 3, dtype=torch.uint8)
    v[0, 1] = 255
    x = preprocess(v)
    assert x.shape == (1, 3, 2, 224, 224)
    assert torch.allclose(x[:, :, 0], torch.tensor(-1.0)) and torch.allclose(x[:, :, 1], torch.tensor(1.0))


def test_lpips_wrapper_batches_and_matches_the_network(tmp_path):
    from teco.lpips import LPIPS
    torch.manual_seed(0)
    net = LPIPS("alex")
    for lin in net.lins:                      # positive heads, as trained LPIPS weights are
        lin.weight.data.uniform_(0.1, 1.0)
    # saved in the lpips package's layout (net.slice*/lin*.model.1.*), which LPIPS.from_file maps
    sd = {f"net.slice1.{k.split('.', 1)[1]}": v for k, v in net.state_dict().items() if k.startswith("features")}
    sd.update({f"lin{i}.model.1.weight": lin.weight for i, lin in enumerate(net.lins)})
    torch.save(sd, tmp_path / "alex.pth")
    metric = metrics.LPIPSMetric(str(tmp_path / "alex.pth"), batch_size=3)
    x, y = _frames(6, (2, 4, 32, 32, 3)), _frames(7, (2, 4, 32, 32, 3))
    got = metric(x, y)
    assert got.shape == (2, 4)
    assert torch.allclose(metric(x, x), torch.zeros(2, 4), atol=1e-6)
    to = lambda a: torch.tensor(a).reshape(-1, 32, 32, 3).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(got.reshape(-1), net(to(x), to(y)), rtol=1e-4, atol=1e-6)
    assert float(got.min()) > 0


def test_learning_stats_fields_and_copy_baseline():
    """Copy accuracy is exact on crafted codes; the other figures are in range and deterministic."""
    from teco.config import get_config
    from teco.model import TECO
    torch.manual_seed(0)
    cfg = get_config("tiny", action_dim=3, vq_codes=16, vq_dim=8)
    model = TECO(cfg, torch.randn(16, 8))
    codes = torch.randint(0, 16, (2, 5, 16, 16))
    codes[:, 2] = codes[:, 1]                       # frame 2 repeats frame 1: copying is right there
    actions = torch.randint(0, 3, (2, 5))
    stats = metrics.LearningStats(seed=0)
    stats.add(model, codes, actions)
    s = stats.summary()
    want_copy = (codes[:, 1:] == codes[:, :-1]).float().mean().item()
    assert s["copy_acc"] == pytest.approx(want_copy)
    assert s["frames"] == 2 * 4 and s["tokens"] == 2 * 4 * cfg.z_grid ** 2
    assert 0 < s["code_entropy"] <= math.log(cfg.n_codes) + 1e-9
    assert s["prior_nll_per_token"] > 0 and s["prior_masked_nll_per_token"] > 0
    assert 0 <= s["next_frame_acc"] <= 1 and 0 <= s["posterior_acc"] <= 1
    assert model.training                           # left as found
    again = metrics.LearningStats(seed=0)
    again.add(model, codes, actions)
    assert again.summary() == s
    assert metrics.LearningStats().summary() == {"frames": 0}


def test_weights_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    """No path given: LPIPS and I3D files come from torch.hub.get_dir()/checkpoints; missing ones are
    named with the folder to put them in."""
    from teco import i3d, lpips
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    hub = tmp_path / "home" / "hub" / "checkpoints"
    monkeypatch.setattr(lpips, "_package_heads", lambda net: None)  # an installed lpips package must not count
    with pytest.raises(FileNotFoundError, match=r"\(alex\).*lpips_alex\.pth.*alexnet-owt-7be5be79\.pth"):
        lpips.find_weights()                                        # the paper's network by default
    with pytest.raises(FileNotFoundError, match=r"lpips_vgg\.pth.*vgg16-397923af\.pth"):
        lpips.find_weights(net="vgg")
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        lpips.find_weights(net="squeeze")
    with pytest.raises(FileNotFoundError, match=r"i3d_torchscript\.pt"):
        i3d.find_i3d()
    with pytest.raises(FileNotFoundError):
        i3d.find_i3d(str(tmp_path / "nope.pt"))
    hub.mkdir(parents=True)
    net = lpips.LPIPS("vgg")
    heads = {f"lin{i}.model.1.weight": w.weight for i, w in enumerate(net.lins)}
    torch.save(heads, hub / "lpips_vgg.pth")
    with pytest.raises(FileNotFoundError, match="vgg backbone"):
        lpips.find_weights(net="vgg")
    with pytest.raises(FileNotFoundError, match="lpips_alex"):
        lpips.find_weights()                                        # VGG files are not the paper's metric
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith("features")}, hub / "vgg16-397923af.pth")
    found = lpips.find_weights(net="vgg")
    assert found == (str(hub / "lpips_vgg.pth"), str(hub / "vgg16-397923af.pth"))
    assert lpips.LPIPS.from_file(*found).net_name == "vgg"
    alex = lpips.LPIPS("alex")
    torch.save({f"lin{i}.model.1.weight": w.weight for i, w in enumerate(alex.lins)}, hub / "alex.pth")
    torch.save({k: v for k, v in alex.state_dict().items() if k.startswith("features")},
               hub / "alexnet-owt-7be5be79.pth")
    found = lpips.find_weights()
    assert found == (str(hub / "alex.pth"), str(hub / "alexnet-owt-7be5be79.pth"))
    assert lpips.LPIPS.from_file(*found).net_name == "alex"
    # a given heads-only file is completed with the cached backbone of its own network
    torch.save(heads, tmp_path / "mine.pth")
    assert lpips.find_weights(str(tmp_path / "mine.pth"))[1] == str(hub / "vgg16-397923af.pth")
    assert lpips.find_weights(str(hub / "alex.pth"), net="vgg")[1] == str(hub / "alexnet-owt-7be5be79.pth")
    (hub / "rgb_imagenet.pt").write_bytes(b"x")
    assert i3d.find_i3d() == str(hub / "rgb_imagenet.pt")
    (hub / "i3d_torchscript.pt").write_bytes(b"x")
    assert i3d.find_i3d() == str(hub / "i3d_torchscript.pt")             # the paper-comparable one first
