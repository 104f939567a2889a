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


@pytest.fixture(scope="module")
def still_turns():
    return E.EmbeddedMinecraft(RES, RES, turn_jump=False)


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


def _water_columns(blocks):
    """(columns holding water, y layers holding water) of a region array."""
    water = blocks == W.WATER
    return water.any(axis=1), np.flatnonzero(water.any(axis=(0, 2))) + W.Y0


def test_sea_level_one_leaves_only_the_swamps_one_deep_puddles_at_y62():
    w = W.World(7)
    assert w.sea_level == W.SEA_LEVEL == 1
    r = w.region(-6, -6, 12, 12)                           # 192 x 192 columns
    cols, layers = _water_columns(r)
    assert list(layers) == [W.PUDDLE_Y]                    # no sea: water only in the y = 62 puddles
    xs, zs = np.nonzero(cols)
    assert (r[xs, W.PUDDLE_Y - 1 - W.Y0, zs] == W.GRASS).all()          # one deep, on grass
    assert all(w.height(x - 96, z - 96) == W.PUDDLE_Y for x, z in zip(xs[::50], zs[::50]))
    lily = r == W.LILY
    assert (r[:, W.PUDDLE_Y - W.Y0][lily[:, W.PUDDLE_Y + 1 - W.Y0]] == W.WATER).all() and lily.any()
    assert 0.05 < cols.mean() < 0.35                       # puddles, not a flooded swamp
    # Minecraft's default sea level 63 floods every lower column up to y = 62 (the old embedded look)
    flooded = W.World(7, sea_level=W.VANILLA_SEA_LEVEL).region(-6, -6, 12, 12)
    fcols, flayers = _water_columns(flooded)
    assert list(flayers) == [W.PUDDLE_Y] and fcols.mean() > cols.mean() + 0.2
    dry = ~fcols & ~(flooded == W.LOG).any(axis=1)          # (a trunk in a pool stands on its bed)
    assert (flooded.transpose(0, 2, 1)[dry] == r.transpose(0, 2, 1)[dry]).all()   # same land; only water differs
    with pytest.raises(ValueError, match="sea levels"):
        W.World(7, sea_level=0)


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


def test_turns_without_jump_are_exactly_twenty_degrees_and_a_full_turn_repeats_the_frame(still_turns):
    backend = still_turns
    first = backend.reset(episode_seed(0, 3))
    assert first.shape == (RES, RES, 3) and first.dtype == np.uint8
    pose0 = backend.pose()
    assert pose0.shape == (5,) and pose0.dtype == np.float32 and pose0[4] == 0.0
    yaw = float(pose0[3])
    for a, d in [(P.LEFT, -20.0), (P.LEFT, -20.0), (P.RIGHT, 20.0)]:
        backend.step(a)
        assert float(backend.pose()[3]) == P.wrap_degrees(yaw + d)
        yaw = float(backend.pose()[3])
    backend.step(P.LEFT)
    start, start_pose = backend.observe(), backend.pose()
    frames = [backend.step(P.RIGHT) for _ in range(18)]
    assert (frames[-1] == start).all() and (backend.pose() == start_pose).all()
    assert not (frames[4] == start).all()               # the view really turned in between


def test_turns_hold_jump_so_turning_frames_bob(backend, still_turns):
    seed = episode_seed(0, 4)
    backend.reset(seed)
    p0 = backend.pose()
    ys = []
    for _ in range(15):                                 # three 5-tick turn actions, as the policy holds them
        backend.step(P.LEFT)
        ys.append(float(backend.pose()[1]))
    p1 = backend.pose()
    assert ys[0] == pytest.approx(float(p0[1]) + E.JUMP_VELOCITY, abs=1e-5)   # the first tick leaves the ground
    assert max(ys) - float(p0[1]) == pytest.approx(1.2522, abs=1e-3)          # a full jump's apex
    assert ys[11] == float(p0[1]) and ys[12] > ys[11]  # lands after 12 ticks and, jump held, jumps again
    assert (p1[[0, 2]] == p0[[0, 2]]).all() and float(p1[3]) == P.wrap_degrees(float(p0[3]) - 300.0)
    # the same turns without jump keep the eye height and so give other frames
    still_turns.reset(seed)
    bob = [backend.reset(seed)] + [backend.step(P.LEFT) for _ in range(3)]
    flat = [still_turns.observe()] + [still_turns.step(P.LEFT) for _ in range(3)]
    assert (bob[0] == flat[0]).all() and not (bob[3] == flat[3]).all()
    assert still_turns.pose()[1] == p0[1]


def test_frame_zero_is_the_reset_view_and_frame_one_differs(backend):
    from generators.minecraft.spec import SPEC
    params = dict(length=4, prob_forward=0.9, action_repeat=5, max_consec_forward=50, max_attempts=2)
    for index in range(3):
        ep = SPEC.episode(backend, index, 21, params)
        assert ep.actions[0] == -1 and set(ep.actions[1:]) <= {P.FORWARD, P.LEFT, P.RIGHT}
        assert (ep.video[0] == backend.reset(ep.seed)).all()
        assert not (ep.video[1] == ep.video[0]).all()  # every action jumps: frame 1 never repeats frame 0


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


def test_walk_statistics_on_a_hand_made_episode():
    from generators.minecraft.stats import episode_stats
    from generators.rollout import Episode
    T = 60
    pose = np.zeros((T, 5), np.float32)
    pose[:, 0] = np.minimum(np.arange(T), 30) * 0.25 + 0.5      # 30 forward steps of 1/4 block, then standing
    actions = np.array([-1] + [P.FORWARD] * 30 + [P.LEFT] * 29, np.int32)
    ep = Episode(np.zeros((T, 1, 1, 3), np.uint8), actions, pose)
    s = episode_stats(ep, np.zeros(T, bool))
    assert s["share_forward_jump"] == pytest.approx(30 / 59) and s["share_left_jump"] == pytest.approx(29 / 59)
    assert s["share_steps_moving"] == pytest.approx(30 / 59) and s["share_forward_blocked"] == 0.0
    assert s["distinct_blocks"] == 9 and s["path_length"] == pytest.approx(7.5) and s["longest_forward_run"] == 30
    assert s["revisit_fraction"] == 0.0          # frames 50..59 stand at x = 8, > 3 blocks from frames 0..9
    still = Episode(ep.video, actions, np.zeros_like(pose))
    assert episode_stats(still, np.ones(T, bool))["revisit_fraction"] == pytest.approx(10 / 60)


def test_stats_cli_prints_json_last(capsys):
    import json
    from generators.minecraft.stats import main
    assert main(["--episodes", "1", "--length", "30"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 1 and out["length"] == 30 and 0 <= out["mean"]["share_forward_jump"] <= 1
