"""Each dataset through the shared runner and store: same bytes for 1 and 2 workers, a verifiable
store, resume after a killed worker, preview (small episodes; the simulators are the embedded ones)."""
import argparse

import numpy as np
import pytest

from generators import registry
from generators.runner import RunOptions, generate
from storage import StoreReader
from storage.cli import main as store_cli
from storage.verify import verify


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("setup"))


def dataset(name, setup_dir):
    """The registered dataset's spec and the params of a small store (its `small_args`)."""
    spec = registry.get(name)
    return spec, spec.params_from_argv([*spec.setup_args(setup_dir), *spec.small_args])


def read_all(url, n, fields):
    r = StoreReader(url)
    return [[r.read(f, i) for f in fields] for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.names())
def test_dataset_same_bytes_for_1_and_2_workers(name, ray_cluster, tmp_path, setup_dir, monkeypatch):
    spec, params = dataset(name, setup_dir)
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
    acts = r.read("actions", 0)        # actions[0] is -1 when frame 0 is the view at reset
    assert acts[0] >= -1 and acts[1:].min() >= 0 and acts.max() < len(r.config.action_names)
    # the dataset's facts travel in the store, where teco/ reads them
    assert {k: r.config.params[k] for k in spec.facts()} == spec.facts()
    assert r.config.params["pose_units"] and r.config.params["revisit"]["radius"] > 0
    assert verify(a, progress=False).ok and verify(b, progress=False).ok
    assert store_cli(["preview", a, "--out", str(tmp_path / "p.gif"), "--episodes", "2"]) == 0
