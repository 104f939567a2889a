"""LPIPS perceptual distance (Zhang et al. 2018) from a local weights file; never downloads.

The VGG16 / AlexNet feature stacks are written out in plain torch with torchvision's layer indices,
so these state-dict layouts load by key mapping (any prefix, e.g. `module.` or `loss.perceptual_loss.`):

* a saved `lpips.LPIPS(net=...)` module (lpips package) or taming-transformers' `LPIPS` module:
  `net.slice{1-5}.{i}.weight|bias` + `lin{0-4}.model.{0|1}.weight` (or `lins.{k}.model...`);
* torchvision backbone keys `features.{i}.weight|bias` (vgg16-397923af.pth, alexnet-owt-7be5be79.pth)
  together with the lin heads, either merged into one file or as two files: the lpips package's
  `lpips/weights/v0.1/{vgg,alex}.pth` (heads only) plus `backbone=` the torchvision file.

The network (vgg or alex) is inferred from the first conv's kernel size or the heads' widths.

Without a given file, `find_weights` looks in the standard PyTorch cache, `torch.hub.get_dir()/checkpoints`,
for one network's files (`HUB_FILES`): AlexNet by default, the paper's metric (TECO's `lpips_jax` with
`net='alexnet'`), as `lpips_alex.pth` or `alex.pth` (the lpips package's `weights/v0.1/alex.pth`; also
taken from an installed lpips package) plus `alexnet-owt-7be5be79.pth` (where
`torchvision.models.alexnet(weights="IMAGENET1K_V1")` downloads it); for VGG, `lpips_vgg.pth` / `vgg.pth`
plus `vgg16-397923af.pth`.
"""
from __future__ import annotations

import os
import re

import torch
import torch.nn as nn

# (layer spec, slice ends): "C out k s p" conv + ReLU, "M k s" max-pool; indices match torchvision
NETS = {
    "vgg": {
        "layers": [("C", 64, 3, 1, 1), ("C", 64, 3, 1, 1), ("M", 2, 2),
                   ("C", 128, 3, 1, 1), ("C", 128, 3, 1, 1), ("M", 2, 2),
                   ("C", 256, 3, 1, 1), ("C", 256, 3, 1, 1), ("C", 256, 3, 1, 1), ("M", 2, 2),
                   ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1), ("M", 2, 2),
                   ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1)],
        "slices": [4, 9, 16, 23, 30],             # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
        "channels": [64, 128, 256, 512, 512],
    },
    "alex": {
        "layers": [("C", 64, 11, 4, 2), ("M", 3, 2), ("C", 192, 5, 1, 2), ("M", 3, 2),
                   ("C", 384, 3, 1, 1), ("C", 256, 3, 1, 1), ("C", 256, 3, 1, 1)],
        "slices": [2, 5, 8, 10, 12],              # relu1 .. relu5
        "channels": [64, 192, 384, 256, 256],
    },
}
# LPIPS's input scaling: inputs in [-1, 1] mapped to ImageNet statistics
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


# what an LPIPS weights file should be, for messages about a file that is not one
EXPECTED = ("LPIPS weights: the lpips package's weights/v0.1/alex.pth or vgg.pth (linear heads; the torchvision "
            "backbone from the cache or --lpips-backbone), or one state dict holding heads and backbone")


def add_backbone_arg(p) -> None:
    """--lpips-backbone, the same for every command taking --lpips-weights."""
    p.add_argument("--lpips-backbone", help="torchvision alexnet/vgg16 state dict (alexnet-owt-7be5be79.pth, "
                                            "vgg16-397923af.pth), when --lpips-weights holds only the heads")


def check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS network '{net}': choose {' or '.join(NETS)}")


def _features(net: str) -> nn.Sequential:
    mods, ch = [], 3
    for spec in NETS[net]["layers"]:
        if spec[0] == "C":
            _, out, k, s, p = spec
            mods += [nn.Conv2d(ch, out, k, s, p), nn.ReLU()]
            ch = out
        else:
            mods.append(nn.MaxPool2d(spec[1], spec[2]))
    return nn.Sequential(*mods)


class LPIPS(nn.Module):
    """forward(x, y in [-1, 1] (B, 3, H, W)) -> (B,) distances. Frozen; gradients flow to the inputs."""

    def __init__(self, net: str = "vgg"):
        super().__init__()
        check_net(net)
        self.net_name = net
        self.features = _features(net)
        self.slices = NETS[net]["slices"]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in NETS[net]["channels"])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)   # a fixed metric: never in training mode

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for end in self.slices:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        dist = 0.0
        for lin, fx, fy in zip(self.lins, self._taps(x), self._taps(y)):
            fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)   # unit-normalise channels
            fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            dist = dist + lin((fx - fy) ** 2).mean((2, 3))              # (B, 1)
        return dist[:, 0]

    @classmethod
    def from_file(cls, path, backbone=None, net: str | None = None) -> "LPIPS":
        """Load from a local state-dict file (see module docstring); `backbone` is an optional second
        file with torchvision `features.*` keys. Raises FileNotFoundError / ValueError on bad files."""
        state = {}
        for p in [path] + ([backbone] if backbone else []):
            state.update(_load_state(p))
        mapped = _map_keys(state)
        net = net or _infer_net(mapped, path)
        model = cls(net)
        own = model.state_dict()
        missing = [k for k in own if k not in mapped]
        if missing:
            what = "backbone (features.*)" if any(k.startswith("features") for k in missing) else "linear heads"
            raise ValueError(f"LPIPS weights in {path} lack the {net} {what}: missing {missing[:3]}"
                             + ("; pass the torchvision backbone file too (--lpips-backbone)"
                                if what.startswith("backbone") else ""))
        for k, v in own.items():
            if mapped[k].shape != v.shape:
                raise ValueError(f"LPIPS weights in {path}: {k} has shape {tuple(mapped[k].shape)}, "
                                 f"{net} needs {tuple(v.shape)}")
        model.load_state_dict({k: mapped[k] for k in own})
        return model


def _load_state(path) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LPIPS weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a weights file torch can read ({type(e).__name__}); "
                         f"expected {EXPECTED}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a state dict; expected {EXPECTED}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


_SLICE = re.compile(r"(?:^|\.)net\.slice[1-5]\.(\d+)\.(weight|bias)$")
_FEAT = re.compile(r"(?:^|\.)features\.(\d+)\.(weight|bias)$")
_LIN = re.compile(r"(?:^|\.)lin(?:s\.)?([0-4])(?:\.model\.\d+)?\.weight$")


def _map_keys(state: dict) -> dict:
    """Any supported layout -> this module's keys (features.{i}.*, lins.{k}.weight)."""
    out = {}
    for k, v in state.items():
        m = _SLICE.search(k) or _FEAT.search(k)
        if m:
            out[f"features.{m.group(1)}.{m.group(2)}"] = v
            continue
        m = _LIN.search(k)
        if m:
            out[f"lins.{m.group(1)}.weight"] = v
    return out


def _infer_net(mapped: dict, path) -> str:
    w = mapped.get("features.0.weight")
    if w is not None:
        return "alex" if w.shape[-1] == 11 else "vgg"
    for net, spec in NETS.items():
        if all(mapped.get(f"lins.{i}.weight", torch.empty(0)).shape[1:2] == (c,)
               for i, c in enumerate(spec["channels"])):
            return net
    raise ValueError(f"{path} holds no LPIPS weights (no net.slice*/features.* or lin* keys); expected {EXPECTED}")


# per network: the heads as the lpips package names them (weights/v0.1/{net}.pth, or prefixed with lpips_) and
# torchvision's ImageNet backbone as torchvision caches it
HUB_FILES = {"alex": (("lpips_alex.pth", "alex.pth"), "alexnet-owt-7be5be79.pth", "alexnet"),
             "vgg": (("lpips_vgg.pth", "vgg.pth"), "vgg16-397923af.pth", "vgg16")}
# the paper's metric: TECO computes LPIPS with lpips_jax.LPIPSEvaluator(net='alexnet') (teco/metrics.py)
PAPER_NET = "alex"


def hub_checkpoints() -> str:
    """The standard PyTorch weights cache: torch.hub.get_dir()/checkpoints (TORCH_HOME aware)."""
    import torch.hub
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _package_heads(net: str = PAPER_NET) -> str | None:
    """weights/v0.1/{net}.pth of an installed lpips package, found without importing it."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        f = os.path.join(folder, "weights", "v0.1", f"{net}.pth")
        if os.path.isfile(f):
            return f
    return None


def missing_message(net: str = PAPER_NET) -> str:
    check_net(net)
    hub, (heads, backbone, tv) = hub_checkpoints(), HUB_FILES[net]
    return (f"no LPIPS weights ({net}): pass --lpips-weights FILE, or put the lpips package's weights/v0.1/{net}.pth "
            f"at {os.path.join(hub, heads[0])} and torchvision's {backbone} in {hub}/ "
            f"(torchvision.models.{tv}(weights='IMAGENET1K_V1') downloads it there)")


def find_weights(path: str | None = None, backbone: str | None = None,
                 net: str = PAPER_NET) -> tuple[str, str | None]:
    """(weights file, backbone file or None) for LPIPS.from_file: the given files, completed from the hub
    cache (a heads-only file gets the cached backbone of the network its heads are for); with no path, the
    hub cache's files for `net` alone. FileNotFoundError saying which file to put where when nothing
    usable is found."""
    check_net(net)
    hub = hub_checkpoints()
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"LPIPS weights file {path} does not exist")
        mapped = _map_keys(_load_state(path))
        if backbone is None and not any(k.startswith("features.") for k in mapped):
            cached = os.path.join(hub, HUB_FILES[_infer_net(mapped, path)][1])
            backbone = cached if os.path.isfile(cached) else None
        return path, backbone
    names, backbone_name, _ = HUB_FILES[net]
    cached_backbone = os.path.join(hub, backbone_name)
    heads = next((f for f in [os.path.join(hub, n) for n in names] + [_package_heads(net)]
                  if f and os.path.isfile(f)), None)
    if heads is None:
        raise FileNotFoundError(missing_message(net))
    if any(k.startswith("features.") for k in _map_keys(_load_state(heads))):
        return heads, None
    if backbone is None and not os.path.isfile(cached_backbone):
        raise FileNotFoundError(f"found the LPIPS heads {heads} but not the {net} backbone: put torchvision's "
                                f"{backbone_name} in {hub}/ or pass --lpips-weights with a merged file")
    return heads, backbone or cached_backbone
