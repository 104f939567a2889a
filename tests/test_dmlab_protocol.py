"""DMLab-40k protocol: actions, DMLab's turn quantum, maze grids and BFS paths, the goal agent, the spec."""
import argparse

import numpy as np
import pytest

from generators.dmlab import protocol as P
from generators.dmlab.maze import CELL_SIZE, MazeLayout, bfs_distances, generate_layout, parse_layout, round_trip
from generators.dmlab.spec import SPEC

LAYOUT = """
*******
*P    *
* *** *
*   *G*
*******
"""


def test_action_vectors_follow_the_collection_script():
    want = {0: [-20, 0, 0, 0, 0, 0, 0], 1: [20, 0, 0, 0, 0, 0, 0], 2: [0, 0, 0, 1, 0, 0, 0],
            3: [-20, 0, 0, 1, 0, 0, 0], 4: [20, 0, 0, 1, 0, 0, 0]}
    for a, vec in want.items():
        v = P.action_vector(a)
        assert v.dtype == np.intc and v.tolist() == vec
    assert P.action_vector(3, look_rate=7).tolist()[0] == -7
    with pytest.raises(ValueError):
        P.action_vector(5)
    assert P.ACTION_NAMES[P.LOOK_RIGHT_FORWARD] == "look_right_forward"


def test_turn_per_step_is_dmlabs_quantised_rate():
    assert P.engine_frame_msec(30) == 32 and P.engine_frame_msec(60) == 16
    assert P.yaw_rate(-20) == pytest.approx(0.132, abs=1e-7)          # left look = yaw up
    # 4.224 deg per 32 ms frame, snapped to the 360/65536 grid: 768 steps left, 769 right
    assert P.turn_per_step(-20) == pytest.approx(768 * 4 * 360 / 65536)
    assert P.turn_per_step(20) == pytest.approx(-769 * 4 * 360 / 65536)
    assert P.turn_per_step(-20, fps=60, repeat=8) == pytest.approx(8 * 384 * 360 / 65536)
    assert P.short_to_angle(190.0) == pytest.approx(-170.0, abs=0.01)


def test_parse_layout_world_coordinates():
    lay = parse_layout(LAYOUT)
    assert lay.walls.shape == (5, 7) and lay.walls[0].all() and not lay.walls[1, 1]     # 'P' is floor
    # row 0 is north: DMLab puts cell (row, col) at x = col * 100, y = (rows - row - 1) * 100
    assert lay.centre(1, 1) == (150.0, 350.0)
    for r, c in lay.open_cells():
        assert lay.cell_of(*lay.centre(r, c)) == (r, c)
    assert parse_layout("***\n* \n***\n").walls[1].tolist() == [True, False, True]     # ragged: walls
    with pytest.raises(ValueError):
        parse_layout("\n\n")
    with pytest.raises(ValueError):
        parse_layout("***\n***\n")


def test_round_trip_walks_bfs_path_there_and_back():
    lay = parse_layout(LAYOUT)
    start = (1, 1)
    dist = bfs_distances(lay, start)
    assert dist[3, 5] == 6 and dist[0, 0] == -1
    for goal_dist in (1, 3, 6):
        cells = round_trip(lay, start, goal_dist, np.random.default_rng(goal_dist))
        assert len(cells) == 2 * goal_dist and cells[-1] == start
        assert dist[cells[goal_dist - 1]] == goal_dist                       # the turning point
        steps = [start] + cells
        assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(steps, steps[1:]))
        assert cells[:goal_dist - 1] == cells[goal_dist:-1][::-1]            # back the same way
    far = round_trip(lay, start, 50, np.random.default_rng(0))               # too far: the farthest cell
    assert far[len(far) // 2 - 1] == (3, 5)
    with pytest.raises(ValueError):
        round_trip(lay, (0, 0), 2, np.random.default_rng(0))


def test_generated_mazes_are_connected_with_an_outer_wall():
    for seed in range(5):
        lay = generate_layout(seed, 7, 0.15)
        assert lay.walls.shape == (9, 9)
        assert lay.walls[0].all() and lay.walls[-1].all() and lay.walls[:, 0].all() and lay.walls[:, -1].all()
        d = bfs_distances(lay, tuple(lay.open_cells()[0]))
        assert ((d >= 0) == ~lay.walls).all()
    assert generate_layout(1, 7, 0.15).text() != generate_layout(2, 7, 0.15).text()
    assert generate_layout(3, 7, 0.15).text() == generate_layout(3, 7, 0.15).text()
    with pytest.raises(ValueError):
        generate_layout(0, 6, 0.15)


class _FakeBackend:
    def __init__(self, layout: MazeLayout):
        self._layout = layout

    def layout(self):
        return self._layout


def _agent(**kw):
    cfg = P.GoalAgentConfig(**{"goal_dist": 2, **kw})
    return P.GoalAgent(cfg, np.random.default_rng(0))


def test_goal_agent_turns_first_then_steers_toward_landmarks():
    lay = parse_layout(LAYOUT)
    backend = _FakeBackend(lay)
    agent = _agent()
    x, y = lay.centre(1, 1)
    for t in range(40):                                   # the initial spin, whatever the heading
        assert agent(t, None, np.array([x, y, 25, 0.0]), backend) == P.LOOK_LEFT
    tx, ty = agent.landmarks[agent.idx]
    bearing = np.degrees(np.arctan2(ty - y, tx - x))
    assert agent(40, None, np.array([x, y, 25, bearing - 30]), backend) == P.LOOK_LEFT
    assert agent(41, None, np.array([x, y, 25, bearing + 30]), backend) == P.LOOK_RIGHT
    assert agent(42, None, np.array([x, y, 25, bearing - 5]), backend) == P.LOOK_LEFT_FORWARD
    assert agent(43, None, np.array([x, y, 25, bearing + 5]), backend) == P.LOOK_RIGHT_FORWARD
    # heading wraps: 179 vs -179 is 2 degrees apart
    agent.landmarks[agent.idx] = (x - 100.0, y + 3.5)
    assert agent(44, None, np.array([x, y, 25, -179.0]), backend) in (P.LOOK_LEFT_FORWARD, P.LOOK_RIGHT_FORWARD)


@pytest.mark.parametrize("mode", ["resample", "repeat"])
def test_goal_agent_advances_landmarks_and_replans(mode):
    lay = parse_layout(LAYOUT)
    backend = _FakeBackend(lay)
    agent = _agent(goal_mode=mode)
    x, y = lay.centre(1, 1)
    agent(0, None, np.array([x, y, 25, 0.0]), backend)
    first = agent.landmarks.copy()
    assert len(first) == 4 and tuple(first[-1]) == (x, y)
    for k, (lx, ly) in enumerate(first):                  # reach each landmark in turn (within 10 units)
        assert agent.idx == k
        agent(50 + k, None, np.array([lx + 6, ly - 6, 25, 0.0]), backend)
    assert agent.idx == 0
    if mode == "repeat":
        assert np.array_equal(agent.landmarks, first)
    else:
        assert tuple(agent.landmarks[-1]) == (x, y)       # a new trip from the same start


def _params(*argv):
    parser = argparse.ArgumentParser()
    SPEC.add_args(parser)
    return SPEC.params(parser.parse_args(list(argv)))


def test_spec_flags_defaults_and_store_config():
    p = _params()
    assert (p["length"], p["skip"], p["resolution"], p["fps"], p["action_repeat"], p["look_rate"]) == \
        (300, 10, 64, 30, 4, 20)
    assert (p["maze_size"], p["turn_steps"], p["heading_tol"], p["landmark_radius"]) == (7, 40, 10.0, 10.0)
    assert p["pose_units"] == "dmlab units, 100 per maze cell"
    SPEC.validate(p, "embedded")
    cfg = SPEC.store_config(p, "embedded", 10, 3)
    assert cfg.dataset == "dmlab" and cfg.length == 300 and cfg.height == cfg.width == 64
    assert cfg.action_names == P.ACTION_NAMES and cfg.pose_names == ["x", "y", "z", "yaw"]
    assert cfg.params["goal_dist"] == p["goal_dist"] and cfg.backend_version.startswith("1+labmaze-")
    assert SPEC.name == "dmlab" and SPEC.real_module == "deepmind_lab" and SPEC.default_episodes == 40000


@pytest.mark.parametrize("argv,backend", [
    (["--resolution", "96"], "embedded"), (["--length", "0"], "embedded"), (["--maze-size", "8"], "embedded"),
    (["--look-rate", "600"], "embedded"), (["--open-fraction", "1.0"], "embedded"),
    (["--heading-tol", "0"], "embedded"), ([], "deepmind_lab"),     # random_maze is always 15x15
])
def test_spec_rejects_unsupported_settings(argv, backend):
    with pytest.raises(ValueError):
        SPEC.validate(_params(*argv), backend)


def test_spec_accepts_random_maze_size_for_deepmind_lab():
    SPEC.validate(_params("--maze-size", "13"), "deepmind_lab")
    assert CELL_SIZE == 100.0
