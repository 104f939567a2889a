"""The embedded DMLab backend: episodes, motion, collisions, determinism, and the raycaster's geometry."""
import argparse

import numpy as np
import pytest

from generators.dmlab import protocol as P
from generators.dmlab.embedded import EmbeddedBackend, EmbeddedConfig
from generators.dmlab.maze import parse_layout
from generators.dmlab.physics import solid_grid
from generators.dmlab.render import Camera, render
from generators.dmlab.spec import SPEC
from generators.dmlab.textures import SKIES, TextureSet, sky_faces

LEFT = P.turn_per_step(-20)          # +16.875
RIGHT_MIN, RIGHT_MAX = -769 * 4 * 360 / 65536, -(769 * 3 + 768) * 360 / 65536   # 768 when crossing 0


@pytest.fixture(scope="module")
def backend():
    b = EmbeddedBackend(EmbeddedConfig())
    yield b
    b.close()


@pytest.fixture(scope="module")
def episodes(backend):
    parser = argparse.ArgumentParser()
    SPEC.add_args(parser)
    params = SPEC.params(parser.parse_args([]))
    return [SPEC.episode(backend, i, 0, params) for i in range(4)]


def _wrap(a):
    return (a + 180.0) % 360.0 - 180.0


def test_episode_shapes_and_dtypes(episodes):
    ep = episodes[0]
    assert ep.video.shape == (300, 64, 64, 3) and ep.video.dtype == np.uint8
    assert ep.actions.shape == (300,) and ep.actions.dtype == np.int32
    assert ep.pose.shape == (300, 4) and ep.pose.dtype == np.float32
    assert ep.actions.min() >= 0 and ep.actions.max() < len(P.ACTION_NAMES)
    assert (ep.actions[:30] == P.LOOK_LEFT).all()            # steps 10..39 of the initial spin
    assert np.allclose(ep.pose[:, 2], P.ORIGIN_Z)
    assert ep.video.std() > 10                                # a picture, not a flat fill
    assert ep.seed >= 0


def test_actions_match_pose_changes(episodes):
    for ep in episodes:
        dyaw = _wrap(np.diff(ep.pose[:, 3].astype(np.float64)))
        a = ep.actions[:-1]
        left = np.isin(a, [P.LOOK_LEFT, P.LOOK_LEFT_FORWARD])
        right = np.isin(a, [P.LOOK_RIGHT, P.LOOK_RIGHT_FORWARD])
        assert np.allclose(dyaw[left], LEFT, atol=1e-3)
        assert ((dyaw[right] >= RIGHT_MIN - 1e-3) & (dyaw[right] <= RIGHT_MAX + 1e-3)).all()
        assert np.allclose(dyaw[a == P.FORWARD], 0.0)
        assert np.isin(a, [P.LOOK_LEFT_FORWARD, P.LOOK_RIGHT_FORWARD]).sum() > 10    # it does walk


def test_forward_moves_unless_blocked_and_turns_stay_put(backend):
    for seed in range(100):                           # a spawn with two open cells to the east
        backend.reset(seed)
        r, c = backend.layout().cell_of(*backend.pose()[:2])
        if backend.layout().is_open(r, c + 1) and backend.layout().is_open(r, c + 2):
            break
    assert backend.pose()[3] == 0.0                   # spawned facing east, as DMLab's spawn angle 0
    moved = []
    for _ in range(30):                               # walk east: moves, then the wall ahead stops it
        before = backend.pose()
        backend.step(P.FORWARD)
        moved.append(float(np.hypot(*(backend.pose()[:2] - before[:2]))))
        assert backend.in_free_space()
    assert moved[0] == pytest.approx(27.04, abs=0.01)                          # accelerating from rest
    assert max(moved) == pytest.approx(40.96, abs=0.01)                        # 320 units/s, 4 x 32 ms
    assert moved[-1] == 0.0
    x, y = backend.pose()[:2]
    r, c = backend.layout().cell_of(x, y)
    assert not backend.layout().is_open(r, c + 1)                              # the wall is straight ahead
    assert (c + 1) * 100 - x == pytest.approx(P.PLAYER_HALF_WIDTH + P.WALL_INSET + 0.125, abs=1e-6)
    for a, want in ((P.LOOK_LEFT, LEFT), (P.LOOK_RIGHT, None)):
        p0 = backend.pose()
        backend.step(a)
        p1 = backend.pose()
        assert np.allclose(p1[:2], p0[:2])                                     # at rest: turning only
        d = _wrap(p1[3] - p0[3])
        assert d == pytest.approx(want) if want else RIGHT_MIN - 1e-3 <= d <= RIGHT_MAX + 1e-3


def test_agent_never_enters_walls(backend):
    for seed in (3, 4):
        backend.reset(seed)
        agent = P.GoalAgent(P.GoalAgentConfig(), np.random.default_rng(seed))
        for t in range(200):
            backend.step(agent(t, None, backend.pose(), backend))
            assert backend.in_free_space()
            r, c = backend.layout().cell_of(*backend.pose()[:2])
            assert backend.layout().is_open(r, c)


def test_policy_revisits_cells(backend, episodes):
    def revisits(ep):
        layout_cells = [backend_cell(p) for p in ep.pose]
        for t1 in range(len(ep.pose)):
            for t2 in range(t1 + 50, len(ep.pose)):
                if layout_cells[t2] == layout_cells[t1] and any(c != layout_cells[t1] for c in layout_cells[t1:t2]):
                    return True
        return False

    def backend_cell(p):
        return int(p[0] // 100), int(p[1] // 100)

    assert sum(revisits(ep) for ep in episodes) >= 3


def test_same_seed_same_bytes_different_seed_different_world(backend):
    parser = argparse.ArgumentParser()
    SPEC.add_args(parser)
    params = SPEC.params(parser.parse_args(["--length", "40", "--skip", "5"]))
    a = SPEC.episode(backend, 7, 1, params)
    backend.reset(123)                                     # state left over from another episode
    b = SPEC.episode(EmbeddedBackend(EmbeddedConfig()), 7, 1, params)
    c = SPEC.episode(backend, 7, 1, params)
    for e in (b, c):
        assert a.video.tobytes() == e.video.tobytes() and np.array_equal(a.actions, e.actions)
        assert a.pose.tobytes() == e.pose.tobytes()
    d = SPEC.episode(backend, 8, 1, params)
    assert d.video.tobytes() != a.video.tobytes()
    layouts, looks = set(), set()
    for seed in range(6):
        backend.reset(seed)
        layouts.add(backend.layout().text())
        looks.add((backend.wall_tex.tobytes(), backend.floor_tex.tobytes(), backend.sky.tobytes()[:64]))
    assert len(layouts) == 6 and len(looks) >= 5


def test_raycaster_geometry_against_projection():
    """Flat colours: wall red, floor green, sky blue. Facing a wall at a known distance, each column
    must show sky / wall / floor exactly where the pinhole projection puts them."""
    lay = parse_layout("*****\n*   *\n*****\n")            # a 3-cell corridor along x
    n = 1 + 7
    sizes = np.array([1 << (n - 1 - k) for k in range(n)], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes ** 2)[:-1]]).astype(np.int64)
    texels = np.zeros((2, int((sizes ** 2).sum()), 3), np.uint8)
    texels[0, :, 0] = 200                                   # wall texture
    texels[1, :, 1] = 200                                   # floor texture
    tex = TextureSet(texels, offsets, sizes, 1)
    sky = np.zeros((6, 8, 8, 3), np.uint8)
    sky[..., 2] = 200
    solid = solid_grid(lay)
    wall_tex = np.zeros(solid.shape, np.int64)
    floor_tex = np.ones(solid.shape, np.int64)
    H = W = 64
    cam = Camera.make(H, W, n)
    out = np.zeros((H, W, 3), np.uint8)
    x, y = 150.0, 150.0                                     # middle of the first cell, facing +x
    render(out, x, y, 0.0, solid, wall_tex, floor_tex, tex, sky, cam)
    d = 400.0 - P.WALL_INSET - x                            # to the end wall's surface
    c = W // 2
    z = P.EYE_Z + cam.v * d                                 # height where each row's ray meets that wall
    want = np.where(z > P.WALL_HEIGHT, 2, np.where(z >= P.FLOOR_Z, 0, 1))
    got = out[:, c].argmax(axis=1)
    assert (got == want).all()
    # the side walls (100 units apart) fill the screen edges: at column 0 the ray meets y = 200 - inset
    assert out[H // 2, 0].argmax() == 0 and out[H // 2, W - 1].argmax() == 0
    # turning 180 degrees shows the other end wall, nearer: more wall rows
    render(out, x, y, 180.0, solid, wall_tex, floor_tex, tex, sky, cam)
    assert (out[:, c].argmax(axis=1) == 0).sum() > (want == 0).sum()


@pytest.mark.parametrize("name", SKIES)
def test_sky_sides_join_without_seams(name):
    faces = sky_faces(name).astype(np.float64)       # +x, -x, +y, -y: ft, bk, lf, rt
    ring = [faces[2], faces[0], faces[3], faces[1]]  # lf | ft | rt | bk going right
    for a, b in zip(ring, ring[1:] + ring[:1]):
        assert np.abs(a[:, -1] - b[:, 0]).mean() < 8.0
