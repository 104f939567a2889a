"""Habitat scene files: discovery, bad-file handling, scene choice, make-scenes determinism and validity."""
import json
import os

import numpy as np
import pytest

from generators.habitat.navgrid import NavSettings, build_navgrid
from generators.habitat.scenegen import scene_seed, write_scene
from generators.habitat.scenes import (SceneUnusable, SceneWarning, check_scene_file, choose_scene, discover_scenes,
                                       load_scene_mesh, main, usable_scene_files)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    assert main(["--out", str(d / "a"), "--count", "2", "--seed", "7", "--texture-px", "16"]) == 0
    os.makedirs(d / "a" / "deep")
    os.replace(d / "a" / "scene_00001.glb", d / "a" / "deep" / "scene_00001.glb")
    (d / "a" / "notes.txt").write_text("not a scene")
    return d


def test_discover_folder_glob_listfile_dataset(scene_dir):
    a = scene_dir / "a"
    want = sorted([str(a / "scene_00000.glb"), str(a / "deep" / "scene_00001.glb")])
    assert discover_scenes(str(a)) == (want, "")
    assert discover_scenes(str(a / "**" / "*.glb")) == (want, "")
    lst = scene_dir / "list.txt"
    lst.write_text("# scenes\na/deep/scene_00001.glb\n\na/scene_00000.glb\na/missing.glb\n")
    paths, _ = discover_scenes(str(lst))
    assert paths == sorted(want + [str(a / "missing.glb")])
    cfg = scene_dir / "ds.scene_dataset_config.json"
    cfg.write_text(json.dumps({"stages": {"paths": {".glb": ["a/**/*.glb"]}}}))
    assert discover_scenes(str(cfg)) == (want, str(cfg))
    with pytest.raises(FileNotFoundError):
        discover_scenes(str(scene_dir / "nowhere"))


def test_bad_scene_files_are_warned_and_skipped(scene_dir, tmp_path):
    good = str(scene_dir / "a" / "scene_00000.glb")
    empty = tmp_path / "empty.glb"
    empty.write_bytes(b"")
    fake = tmp_path / "fake.glb"
    fake.write_bytes(b"PK\x03\x04 zip, not gltf")
    missing = str(tmp_path / "missing.obj")
    assert check_scene_file(good) is None
    with pytest.warns(SceneWarning) as rec:
        kept = usable_scene_files([missing, str(fake), good, str(empty)])
    assert kept == [good]
    text = " ".join(str(w.message) for w in rec)
    for p in (missing, str(fake), str(empty)):
        assert p in text
    # Passes the cheap checks but is no mesh: load time refuses it.
    junk = tmp_path / "junk.obj"
    junk.write_text("this is not an obj file\n")
    with pytest.raises(SceneUnusable):
        load_scene_mesh(str(junk))


def test_choose_scene_is_deterministic_and_covers_scenes():
    picks = [choose_scene(s, 5) for s in range(200)]
    assert picks == [choose_scene(s, 5) for s in range(200)]
    assert set(picks) == set(range(5))
    assert [choose_scene(3, 5, d) for d in range(4)] == [choose_scene(3, 5, d) for d in range(4)]
    with pytest.raises(ValueError):
        choose_scene(0, 0)


def test_make_scenes_deterministic_and_valid(tmp_path, scene_dir):
    p1, p2, p3 = (str(tmp_path / f"{k}.glb") for k in "abc")
    write_scene(p1, scene_seed(7, 0))
    write_scene(p2, scene_seed(7, 0))
    write_scene(p3, scene_seed(8, 0))
    b1, b2, b3 = (open(p, "rb").read() for p in (p1, p2, p3))
    assert b1 == b2 and b1 != b3
    assert open(scene_dir / "a" / "scene_00000.glb", "rb").read() != b1     # 16 px textures differ
    mesh = load_scene_mesh(p1)
    assert mesh.textures and all(t.dtype == np.uint8 and t.shape[2] == 4 for t in mesh.textures)
    assert mesh.faces.max() < len(mesh.positions)
    lo, hi = mesh.positions.min(0), mesh.positions.max(0)
    assert abs(lo[1]) < 1e-5 and abs(hi[1] - 2.7) < 1e-5          # z-up file read back y-up: floor 0, ceiling 2.7
    assert hi[0] - lo[0] > 7 and hi[2] - lo[2] > 5
    grid = build_navgrid(mesh.positions, mesh.faces, NavSettings(cell_size=0.1))
    footprint = (hi[0] - lo[0]) * (hi[2] - lo[2])
    assert grid.size > 0 and grid.area > 0.4 * footprint             # rooms joined by doors: one big region
    assert np.all(np.abs(grid.py) < 0.06)                            # on the floor, not on furniture or roof


def test_make_scenes_cli_errors(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--count", "0"]) == 2
    assert "make-scenes: error" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    for args, msg in ((["--out", str(tmp_path / "s"), "--seed", "-1"], "--seed must be within 0..2**63-1, got -1"),
                      (["--out", str(tmp_path / "afile")], "is a file, not a folder")):
        assert main([*args, "--count", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
    assert not os.path.exists(tmp_path / "s")                        # refused before anything is written
    ok = tmp_path / "ok"
    assert main(["--out", str(ok), "--count", "1", "--texture-px", "8"]) == 0
    assert sorted(os.listdir(ok)) == ["make-scenes.json", "scene_00000.glb"]   # written whole, then renamed
    first = (ok / "scene_00000.glb").read_bytes()
    assert main(["--out", str(ok), "--count", "2", "--texture-px", "8"]) == 0   # same settings: adds scenes
    assert (ok / "scene_00000.glb").read_bytes() == first and discover_scenes(str(ok))[0][-1].endswith("01.glb")
    capsys.readouterr()
    assert main(["--out", str(ok), "--count", "2", "--texture-px", "8", "--seed", "5"]) == 2   # would mix seeds
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '"seed": 0' in err, err
    assert (ok / "scene_00000.glb").read_bytes() == first


def test_simplify_mesh_for_rendering(tmp_path):
    from generators.habitat.scenegen import SceneGenConfig
    from generators.habitat.scenes import simplify_mesh
    p = str(tmp_path / "dense.glb")
    write_scene(p, scene_seed(2, 0), SceneGenConfig(texture_px=8), subdivide=2)
    mesh = load_scene_mesh(p)
    small = simplify_mesh(mesh, 0.3)
    assert small.triangles < mesh.triangles * 0.8
    assert np.allclose(small.positions.min(0), mesh.positions.min(0), atol=0.3)
    assert np.allclose(small.positions.max(0), mesh.positions.max(0), atol=0.3)
    assert small.faces.max() < len(small.positions) and sum(c for _, c, _ in small.parts) == small.triangles
    assert simplify_mesh(mesh, 0.0) is mesh


def test_replaced_scene_refused_on_resume(tmp_path):
    """Issue 17 item 7: a scene file replaced at the same path must not be mixed into an existing store."""
    import argparse

    from generators.habitat.spec import SPEC
    from generators.runner import RunOptions, generate
    from storage import StoreError, StoreWriter
    d = tmp_path / "scenes"
    assert main(["--out", str(d), "--count", "2", "--seed", "7", "--texture-px", "8"]) == 0
    p = argparse.ArgumentParser()
    SPEC.add_args(p)
    argv = ["--scenes", str(d), "--length", "8", "--resolution", "16"]
    params = SPEC.params(p.parse_args(argv))
    out = str(tmp_path / "h.zarr")
    StoreWriter.create(out, SPEC.store_config(params, "embedded", 2, 0))      # the first run's store
    assert SPEC.params(p.parse_args(argv)) == params                           # same files: same config
    scene = d / "scene_00001.glb"
    assert main(["--out", str(tmp_path / "other"), "--count", "2", "--seed", "8", "--texture-px", "8"]) == 0
    os.replace(tmp_path / "other" / "scene_00001.glb", scene)                  # same path, other content
    changed = SPEC.params(p.parse_args(argv))
    assert changed["scenes"] == params["scenes"] and changed["scene_sha256"][1] != params["scene_sha256"][1]
    with pytest.raises(StoreError, match="different config"):
        generate(SPEC, changed, RunOptions(out=out, episodes=2, backend="embedded", progress=False))


def test_make_scenes_seed_with_small_big_room(tmp_path):
    """Seed 8 drew a 1.6 m table for a 3.5 m room (less than 1.2 m clearance both sides) and crashed."""
    assert main(["--out", str(tmp_path), "--count", "2", "--seed", "8", "--texture-px", "8"]) == 0
