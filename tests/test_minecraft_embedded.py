"""The embedded Minecraft backend: world purity, player physics, action semantics, rendering, determinism."""
import numpy as np
import pytest

from generators.minecraft import embedded as E
from generators.minecraft import protocol as P
from generators.minecraft import world as W
from generators.seeds import episode_seed

RES = 24      # frames are tiny here: the renderer is resolution independent


@pytest.fixture(scope="module")
def backend():
    return E.EmbeddedMinecraft(RES, RES)


def _flat(size=24, ground=2, height=8):
    """A hand-made view: grass floor whose top face is at world y = ground + 1 (oy = 0)."""
    b = np.zeros((size, height, size), np.uint8)
    b[:, :ground + 1, :] = W.GRASS
    return b


def test_chunks_are_a_pure_function_of_seed_and_coordinates():
    a, b = W.World(99), W.World(99)
    b.chunk(5, 5), b.chunk(-1, 0)                         # different generation order and cache state
    ra, rb = a.region(-1, -1, 3, 3), b.region(-1, -1, 3, 3)
    assert (ra == rb).all()
    assert (ra[16:32, :, 16:32] == W.generate_chunk(np.uint64(99), 0, 0)).all()
    assert (ra != W.World(100).region(-1, -1, 3, 3)).any()
    kinds = set(np.unique(a.region(-4, -4, 8, 8)).tolist())
    for blk in (W.GRASS, W.WATER, W.LOG, W.LEAVES, W.LILY, W.VINE, W.TALLGRASS):
        assert blk in kinds, W.BLOCK_NAMES[blk]


def test_walking_speed_and_jump_height_match_minecraft():
    view = W.LocalView.from_array(_flat(size=64), -32, 0, -32)
    p = E.Player(0.5, 3.0, -30.5, yaw=0.0)            # facing +z
    for _ in range(60):
        E.tick(view, p, forward=True, jump=False)
    z0 = p.z
    E.tick(view, p, forward=True, jump=False)
    assert p.z - z0 == pytest.approx(4.317 / 20, rel=1e-3)       # 4.317 blocks/s at 20 ticks/s
    assert p.x == 0.5 and p.y == 3.0
    peak = p.y
    for _ in range(20):
        E.tick(view, p, forward=False, jump=True)
        peak = max(peak, p.y)
    assert peak - 3.0 == pytest.approx(1.2522, abs=1e-3)           # Minecraft's jump apex


def test_walls_block_and_jumping_climbs_one_block():
    blocks = _flat()
    blocks[:, 3, 12:] = W.LOG                      # a 1-high terrace from z = 12 on (oz = 0)
    view = W.LocalView.from_array(blocks, 0, 0, 0)
    p = E.Player(5.5, 3.0, 8.5, yaw=0.0)
    for _ in range(40):
        E.tick(view, p, forward=True, jump=False)
    assert p.z == pytest.approx(12 - 0.3) and p.collided_h and p.y == 3.0
    for _ in range(20):
        E.tick(view, p, forward=True, jump=True)
    for _ in range(20):
        E.tick(view, p, forward=False, jump=False)
    assert p.z > 12.3 and p.y == 4.0 and p.on_ground and E.box_is_free(view, p.box())


def test_turns_are_exactly_twenty_degrees_and_a_full_turn_repeats_the_frame(backend):
    first = backend.reset(episode_seed(0, 3))
    assert first.shape == (RES, RES, 3) and first.dtype == np.uint8
    pose0 = backend.pose()
    assert pose0.shape == (5,) and pose0.dtype == np.float32 and pose0[4] == 0.0
    backend.step(P.NOOP)
    yaw = float(backend.pose()[3])
    for a, d in [(P.LEFT, -20.0), (P.LEFT, -20.0), (P.RIGHT, 20.0)]:
        backend.step(a)
        assert float(backend.pose()[3]) == P.wrap_degrees(yaw + d)
        yaw = float(backend.pose()[3])
    backend.step(P.LEFT)
    start, start_pose = backend.observe(), backend.pose()
    frames = [backend.step(P.RIGHT) for _ in range(18)]
    assert (frames[-1] == start).all() and (backend.pose() == start_pose).all()
    assert not (frames[4] == start).all()               # the view really turned in between


def test_forward_moves_along_the_heading_unless_blocked(backend):
    backend.reset(episode_seed(0, 5))
    moved = 0
    for _ in range(60):
        before = backend.pose()
        heading = np.radians(before[3])
        backend.step(P.FORWARD)
        after = backend.pose()
        d = (after[0] - before[0]) * -np.sin(heading) + (after[2] - before[2]) * np.cos(heading)
        assert d > 0 or backend.player.collided_h
        moved += d > 0
    assert moved > 30


def test_a_long_random_walk_never_enters_a_block():
    b = E.EmbeddedMinecraft(8, 8)
    for k in range(2):
        seed = episode_seed(1, k)
        b.reset(seed)
        pol = P.ExplorePolicy(seed, prob_forward=0.95, max_consec_forward=0)
        start = b.pose()
        for t in range(400):
            b.step(pol(t))
            assert E.box_is_free(b.view, b.player.box()), (k, t, b.pose())
        assert np.hypot(*(b.pose() - start)[[0, 2]]) > 5          # it got somewhere


def test_same_seed_same_bytes_different_seed_differs(backend):
    def run(seed):
        pol = P.ExplorePolicy(seed)
        frames = [backend.reset(seed)]
        frames += [backend.step(pol(t)) for t in range(40)]
        return np.stack(frames), backend.pose()
    (a, pa), (b, pb) = run(123), run(123)
    other, _ = run(124)
    assert (a == b).all() and (pa == pb).all()
    assert (a != other).any()


def test_bad_action_is_refused(backend):
    backend.reset(1)
    with pytest.raises(ValueError, match="action id 7"):
        backend.step(7)
