"""Each dataset through the shared runner and store: same bytes for 1 and 2 workers, a verifiable
store, resume after a killed worker, preview (small episodes; the simulators are the embedded ones)."""
import argparse

import numpy as np
import pytest

from generators.runner import RunOptions, generate
from storage import StoreReader
from storage.cli import main as store_cli
from storage.verify import verify


def params_for(spec, argv):
    p = argparse.ArgumentParser()
    spec.add_args(p)
    return spec.params(p.parse_args(argv))


@pytest.fixture(scope="module")
def habitat_scenes(tmp_path_factory):
    from generators.habitat.scenes import main as make_scenes
    d = tmp_path_factory.mktemp("scenes")
    assert make_scenes(["--out", str(d), "--count", "2", "--seed", "3"]) == 0
    return str(d)


def dataset(name, habitat_scenes=None):
    if name == "dmlab":
        from generators.dmlab.spec import SPEC
        return SPEC, params_for(SPEC, ["--length", "24"])
    if name == "minecraft":
        from generators.minecraft.spec import SPEC
        return SPEC, params_for(SPEC, ["--length", "16", "--resolution", "32"])
    from generators.habitat.spec import SPEC
    return SPEC, params_for(SPEC, ["--scenes", habitat_scenes, "--length", "16", "--resolution", "32"])


def read_all(url, n, fields):
    r = StoreReader(url)
    return [[r.read(f, i) for f in fields] for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dmlab", "minecraft", "habitat"])
def test_dataset_same_bytes_for_1_and_2_workers(name, ray_cluster, tmp_path, habitat_scenes, monkeypatch):
    spec, params = dataset(name, habitat_scenes)
    a, b = str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")
    ra = generate(spec, params, RunOptions(out=a, episodes=3, workers=1, progress=False))
    monkeypatch.setenv("TECO_FAULTS", "kill:1")       # and a worker SIGKILLed mid-run on the way
    rb = generate(spec, params, RunOptions(out=b, episodes=3, workers=2, progress=False))
    assert ra.generated == rb.generated == 3 and not ra.failed and not rb.failed and rb.retried >= 1
    fields = ["video", "actions", "pose", "seed"] + list(spec.store_config(params, "embedded", 3, 0).episode_fields)
    for ea, eb in zip(read_all(a, 3, fields), read_all(b, 3, fields)):
        for x, y in zip(ea, eb):
            assert np.array_equal(x, y, equal_nan=True)
    r = StoreReader(a)
    assert r.config.dataset == name and r.config.backend == "embedded"
    video = r.read("video", 0)
    assert video.dtype == np.uint8 and video.shape == (r.config.length, r.config.height, r.config.width, 3)
    assert video.std() > 5                      # a rendered scene, not a blank frame
    acts = r.read("actions", 0)
    assert acts[0] >= -1 and acts[1:].min() >= 0 and acts.max() < len(r.config.action_names)   # -1: the reset view
    assert verify(a, progress=False).ok and verify(b, progress=False).ok
    assert store_cli(["preview", a, "--out", str(tmp_path / "p.gif"), "--episodes", "2"]) == 0
