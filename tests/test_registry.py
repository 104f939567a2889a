"""The dataset registry: every dataset found by name, each with a console script, and its facts
(recorded in the store) enough for teco to pick its configs and revisit tolerances without a table."""
import pathlib

import pytest

from generators import registry
from generators.spec import DatasetSpec
from teco.config import get_config, store_default
from teco.revisit import tolerances
from teco.vqgan import named_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_unknown_dataset_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown dataset 'nope': choose one of dmlab, minecraft, habitat"):
        registry.get("nope")


def test_every_dataset_has_a_console_script():
    tomllib = pytest.importorskip("tomllib")      # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in registry.names():
        assert f"gen-{name}" in scripts, f"pyproject.toml has no gen-{name} script"
        module, func = scripts[f"gen-{name}"].split(":")
        assert module.startswith("generators."), module


@pytest.mark.parametrize("name", registry.names())
def test_the_store_carries_what_teco_needs(name, tmp_path):
    spec = registry.get(name)
    assert isinstance(spec, DatasetSpec) and spec.name == name
    params = spec.params_from_argv(spec.setup_args(str(tmp_path)))          # the dataset's defaults
    cfg = spec.store_config(params, "embedded", 4, 0)
    recorded = cfg.params
    assert cfg.dataset == name and recorded["pose_units"] == spec.pose_units != ""
    assert tolerances(recorded) == tuple(spec.revisit_tolerances)
    vq = named_config(store_default(recorded, "vqgan_config", "VQ-GAN"))
    assert (vq.resolution, vq.resolution) == (cfg.height, cfg.width)   # the default VQ-GAN takes the frames
    assert get_config(store_default(recorded, "teco_config", "TECO")).seq_len >= 2
    small = spec.store_config(spec.params_from_argv([*spec.setup_args(str(tmp_path)), *spec.small_args]),
                              "embedded", 2, 0)
    assert small.length <= cfg.length


def test_a_store_without_facts_needs_the_flags():
    with pytest.raises(ValueError, match="--config is required: the store records no default TECO config"):
        store_default({}, "teco_config", "TECO")
