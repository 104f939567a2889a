"""The embedded backend's navigation grid: walkable floors, walls, doors, climb, erosion, geodesics, moves."""
import numpy as np
import pytest
import trimesh

from generators.habitat.navgrid import NavSettings, build_navgrid


def _room():
    """6 x 4 m room, wall at x = 3 with a door at z 1.5..2.5, a table, a closed 1 m closet, ceiling at 2.7."""
    b = lambda lo, hi: trimesh.creation.box(bounds=[lo, hi])
    parts = [b([0, -0.1, 0], [6, 0, 4]), b([-0.1, 0, 0], [0, 2.7, 4]), b([6, 0, 0], [6.1, 2.7, 4]),
             b([0, 0, -0.1], [6, 2.7, 0]), b([0, 0, 4], [6, 2.7, 4.1]),
             b([3, 0, 0], [3.1, 2.7, 1.5]), b([3, 0, 2.5], [3.1, 2.7, 4]),
             b([1, 0, 1], [2, 0.75, 2]),                                   # table
             b([4.8, 0, 2.9], [4.9, 2.7, 4]), b([4.8, 0, 2.9], [6, 2.7, 3.0]),   # closet walls, no door
             b([0.5, 0, 3.0], [1.5, 0.3, 3.9])]                          # a 0.3 m platform: above max climb
    m = trimesh.util.concatenate(parts)
    ceiling = trimesh.Trimesh([[0, 2.7, 0], [6, 2.7, 0], [6, 2.7, 4], [0, 2.7, 4]], [[0, 1, 2], [0, 2, 3]])
    m = trimesh.util.concatenate([m, ceiling])
    return m.vertices, m.faces


@pytest.fixture(scope="module")
def grid():
    v, f = _room()
    return build_navgrid(v, f, NavSettings(cell_size=0.05, agent_radius=0.01))


def _p(grid, x, z):
    return np.array([x, 0.0, z])


def test_floor_region(grid):
    assert np.allclose(grid.py, 0.0, atol=0.06)                      # no nodes on table, platform or roof
    assert grid.locate(_p(grid, 0.5, 0.5)) >= 0 and grid.locate(_p(grid, 5.5, 0.5)) >= 0
    assert grid.locate(_p(grid, 1.5, 1.5)) < 0                       # under the table
    assert grid.locate(_p(grid, 5.4, 3.5)) < 0                       # closed closet: not the largest region
    assert grid.locate(_p(grid, 1.0, 3.5)) < 0                       # platform too high to climb
    assert grid.locate(_p(grid, 3.05, 0.5)) < 0                      # inside the wall
    assert grid.locate(_p(grid, 0.02, 2.0)) < 0                      # eroded wall margin
    assert 14 < grid.area < 21


def test_geodesics(grid):
    src = _p(grid, 0.5, 0.5)
    f = grid.field(src)
    # Open floor: the any-angle distance is the straight line.
    assert f.at(_p(grid, 2.5, 0.5)) == pytest.approx(2.0, rel=0.01)
    assert f.at(_p(grid, 0.5, 2.9)) == pytest.approx(2.4, rel=0.01)
    # Through the door: around its near corner, a bit longer than straight.
    goal = _p(grid, 5.5, 0.5)
    d = f.at(goal)
    via_corner = np.hypot(2.5, 1.0) + np.hypot(2.5, 1.0)
    assert via_corner * 0.99 < d < via_corner * 1.06
    assert d > 5.0 * 1.05                                            # longer than the euclidean 5 m
    assert f.at(_p(grid, 1.5, 1.5)) == np.inf                         # not navigable
    assert grid.field(goal).at(src) == pytest.approx(d, rel=0.02)   # symmetric


def test_moves_stop_and_slide_at_walls(grid):
    p = _p(grid, 2.8, 0.5)
    n = grid.locate(p)
    n2, q = grid.move(n, p, _p(grid, 3.3, 0.5))                      # straight into the wall
    assert q[0] < 3.0 and q[0] > 2.85
    n3, q = grid.move(n, p, _p(grid, 3.3, 0.8))                      # oblique: slides along it
    assert q[0] < 3.0 and q[2] == pytest.approx(0.8, abs=1e-6)
    assert grid.locate(q) == n3
    n4, q = grid.move(n, p, _p(grid, 2.6, 0.7))                      # free move ends where asked
    assert np.allclose(q[[0, 2]], [2.6, 0.7])


def test_random_points_are_navigable_and_cover(grid):
    rng = np.random.default_rng(0)
    pts = np.stack([grid.random_point(rng) for _ in range(300)])
    assert all(grid.locate(p) >= 0 for p in pts)
    assert (pts[:, 0] > 3.1).mean() > 0.25 and (pts[:, 0] < 3.0).mean() > 0.25   # both rooms


def test_agent_height_and_empty_grid():
    v, f = _room()
    low = build_navgrid(v, f, NavSettings(cell_size=0.1, agent_height=3.0))    # taller than the ceiling
    assert low.size == 0
    wall_only = trimesh.creation.box(bounds=[[0, 0, 0], [0.1, 2, 3]])
    assert build_navgrid(wall_only.vertices, wall_only.faces, NavSettings(cell_size=0.1)).size == 0
