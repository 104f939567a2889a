"""A navigable floor grid for the embedded backend, built like Recast's heightfield (what habitat's navmesh
is made from): voxelize every triangle, keep walkable tops with room for the agent's height, link
neighbouring columns within the climb limit, erode by the agent radius, keep the largest connected region.

Paths are any-angle (Lazy Theta*) distance fields over that grid, so geodesic distances are close to the
straight-line lengths habitat's string-pulled navmesh paths have. All heavy loops are numba kernels.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numba as nb
import numpy as np

# Neighbour directions: 4 axis steps, then 4 diagonals. (dx, dz) in cells.
DIRS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], np.int64)
_INF = np.inf


@dataclass
class NavSettings:
    cell_size: float = 0.05      # metres, habitat's NavMeshSettings default
    cell_height: float = 0.05    # finer than Recast's 0.2 so steps and thin slabs keep their heights
    agent_height: float = 1.5
    agent_radius: float = 0.01
    max_climb: float = 0.2
    max_slope: float = 45.0      # degrees


# ----------------------------------------------------------------------------------------- voxelization

@nb.njit(cache=True)
def _clip(px, py, pz, n, axis, bound, keep_greater, ox, oy, oz):
    """Sutherland-Hodgman clip of polygon (px, py, pz)[:n] by the plane x|z = bound; returns new length."""
    m = 0
    for i in range(n):
        j = (i + 1) % n
        ai = px[i] if axis == 0 else pz[i]
        aj = px[j] if axis == 0 else pz[j]
        in_i = ai >= bound if keep_greater else ai <= bound
        in_j = aj >= bound if keep_greater else aj <= bound
        if in_i:
            ox[m], oy[m], oz[m] = px[i], py[i], pz[i]
            m += 1
        if in_i != in_j:
            t = (bound - ai) / (aj - ai)
            ox[m] = px[i] + t * (px[j] - px[i])
            oy[m] = py[i] + t * (py[j] - py[i])
            oz[m] = pz[i] + t * (pz[j] - pz[i])
            m += 1
    return m


@nb.njit(cache=True)
def _voxelize(verts, faces, x0, z0, y0, cs, ch, nx, nz, ny, walk_cos, out_key, out_h, out_walk, count_only):
    """For each triangle and each grid column it crosses, the voxel rows [ymin, ymax] it occupies there.
    count_only: return the number of entries; else fill out_* (key = column * ny + row)."""
    bx = np.empty(9)
    by = np.empty(9)
    bz = np.empty(9)
    cx = np.empty(9)
    cy = np.empty(9)
    cz = np.empty(9)
    k = 0
    eps = 1e-6
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ux, uy, uz = verts[b, 0] - verts[a, 0], verts[b, 1] - verts[a, 1], verts[b, 2] - verts[a, 2]
        vx, vy, vz = verts[c, 0] - verts[a, 0], verts[c, 1] - verts[a, 1], verts[c, 2] - verts[a, 2]
        nxn, nyn, nzn = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        norm = math.sqrt(nxn * nxn + nyn * nyn + nzn * nzn)
        if norm < 1e-12:
            continue
        walk = nyn / norm >= walk_cos
        xmin = min(verts[a, 0], verts[b, 0], verts[c, 0])
        xmax = max(verts[a, 0], verts[b, 0], verts[c, 0])
        zmin = min(verts[a, 2], verts[b, 2], verts[c, 2])
        zmax = max(verts[a, 2], verts[b, 2], verts[c, 2])
        ix0 = max(int(math.floor((xmin - x0) / cs)), 0)
        ix1 = min(int(math.floor((xmax - x0) / cs)), nx - 1)
        iz0 = max(int(math.floor((zmin - z0) / cs)), 0)
        iz1 = min(int(math.floor((zmax - z0) / cs)), nz - 1)
        for ix in range(ix0, ix1 + 1):
            for iz in range(iz0, iz1 + 1):
                for i in range(3):
                    v = faces[f, i]
                    bx[i], by[i], bz[i] = verts[v, 0], verts[v, 1], verts[v, 2]
                lo_x, lo_z = x0 + ix * cs - eps, z0 + iz * cs - eps
                n = _clip(bx, by, bz, 3, 0, lo_x, True, cx, cy, cz)
                if n == 0:
                    continue
                n = _clip(cx, cy, cz, n, 0, lo_x + cs + 2 * eps, False, bx, by, bz)
                if n == 0:
                    continue
                n = _clip(bx, by, bz, n, 1, lo_z, True, cx, cy, cz)
                if n == 0:
                    continue
                n = _clip(cx, cy, cz, n, 1, lo_z + cs + 2 * eps, False, bx, by, bz)
                if n == 0:
                    continue
                ylo, yhi = by[0], by[0]
                for i in range(1, n):
                    ylo = min(ylo, by[i])
                    yhi = max(yhi, by[i])
                r0 = max(int(math.floor((ylo - y0) / ch)), 0)
                r1 = min(int(math.floor((yhi - y0) / ch)), ny - 1)
                col = ix * nz + iz
                for r in range(r0, r1 + 1):
                    if not count_only:
                        out_key[k] = col * ny + r
                        out_h[k] = min(yhi, y0 + (r + 1) * ch)
                        out_walk[k] = walk
                    k += 1
    return k


@nb.njit(cache=True)
def _floor_nodes(keys, hs, walks, ny, y0, ch, agent_height):
    """Walk sorted unique voxel keys column by column; a walkable top voxel with agent_height of free space
    above is a floor node. Returns (column, height) per node, sorted by column then height."""
    m = keys.shape[0]
    cols = np.empty(m, np.int64)
    ys = np.empty(m, np.float64)
    n = 0
    for i in range(m):
        col, row = keys[i] // ny, keys[i] % ny
        top = True
        gap_bottom = _INF
        if i + 1 < m and keys[i + 1] // ny == col:
            nrow = keys[i + 1] % ny
            top = nrow != row + 1
            gap_bottom = y0 + nrow * ch
        if top and walks[i] and gap_bottom - hs[i] >= agent_height:
            cols[n] = col
            ys[n] = hs[i]
            n += 1
    return cols[:n], ys[:n]


@nb.njit(cache=True)
def _link(cols, ys, col_ptr, nx, nz, dirs, climb):
    """nbr[n, d]: the node in the column one step along dirs[d] whose floor is within `climb` (closest in
    height), or -1. Diagonals also need both axis neighbours (no corner cutting)."""
    N = cols.shape[0]
    nbr = -np.ones((N, 8), np.int32)
    for n in range(N):
        ix, iz = cols[n] // nz, cols[n] % nz
        for d in range(8):
            jx, jz = ix + dirs[d, 0], iz + dirs[d, 1]
            if jx < 0 or jz < 0 or jx >= nx or jz >= nz:
                continue
            c = jx * nz + jz
            best, bestdy = -1, climb + 1e-6
            for m in range(col_ptr[c], col_ptr[c + 1]):
                dy = abs(ys[m] - ys[n])
                if dy <= bestdy:
                    best, bestdy = m, dy
            nbr[n, d] = best
    for n in range(N):
        for d in range(4, 8):
            if nbr[n, d] < 0:
                continue
            ax = 0 if dirs[d, 0] > 0 else 1
            az = 2 if dirs[d, 1] > 0 else 3
            if nbr[n, ax] < 0 or nbr[n, az] < 0:
                nbr[n, d] = -1
    return nbr


@nb.njit(cache=True)
def _symmetrize(nbr):
    """Keep a link only if the reverse link exists (heights can pick different partners across layers)."""
    opp = np.array([1, 0, 3, 2, 7, 6, 5, 4])
    N = nbr.shape[0]
    out = nbr.copy()
    for n in range(N):
        for d in range(8):
            m = nbr[n, d]
            if m >= 0 and nbr[m, opp[d]] != n:
                out[n, d] = -1
    return out


@nb.njit(cache=True)
def _largest_component(nbr, alive):
    N = nbr.shape[0]
    comp = -np.ones(N, np.int64)
    stack = np.empty(N, np.int64)
    best, best_size, c = -1, 0, 0
    for s in range(N):
        if not alive[s] or comp[s] >= 0:
            continue
        top, size = 0, 0
        stack[0] = s
        top = 1
        comp[s] = c
        while top > 0:
            top -= 1
            u = stack[top]
            size += 1
            for d in range(8):
                v = nbr[u, d]
                if v >= 0 and alive[v] and comp[v] < 0:
                    comp[v] = c
                    stack[top] = v
                    top += 1
        if size > best_size:
            best, best_size = c, size
        c += 1
    return comp == best


@nb.njit(cache=True)
def _boundary_distance(nbr, cs):
    """Chamfer distance from each node to the region's edge (half a cell at a node with a missing neighbour)."""
    N = nbr.shape[0]
    dist = np.full(N, _INF)
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for n in range(N):
        for d in range(8):
            if nbr[n, d] < 0:
                dist[n] = 0.5 * cs
                heap.append((0.5 * cs, np.int64(n)))
                break
    heapq.heapify(heap)
    diag = cs * math.sqrt(2.0)
    while len(heap) > 0:
        du, u = heapq.heappop(heap)
        if du > dist[u]:
            continue
        for d in range(8):
            v = nbr[u, d]
            if v < 0:
                continue
            nd = du + (cs if d < 4 else diag)
            if nd < dist[v]:
                dist[v] = nd
                heapq.heappush(heap, (nd, np.int64(v)))
    return dist


# ------------------------------------------------------------------------------------------ line walks

@nb.njit(cache=True)
def _walk(nbr, x0, z0, cs, start, ax, az, bx, bz):
    """Follow the segment a->b (x, z) column by column from node `start` (the node under a) through
    neighbour links. Returns (node reached, fraction of the segment done, blocked axis: -1 none, 0 x, 1 z)."""
    dx, dz = bx - ax, bz - az
    ix = int(math.floor((ax - x0) / cs))
    iz = int(math.floor((az - z0) / cs))
    sx = 1 if dx > 0 else -1
    sz = 1 if dz > 0 else -1
    if abs(dx) > 1e-12:
        nxb = x0 + (ix + (1 if dx > 0 else 0)) * cs
        tmx, tdx = (nxb - ax) / dx, cs / abs(dx)
    else:
        tmx, tdx = _INF, _INF
    if abs(dz) > 1e-12:
        nzb = z0 + (iz + (1 if dz > 0 else 0)) * cs
        tmz, tdz = (nzb - az) / dz, cs / abs(dz)
    else:
        tmz, tdz = _INF, _INF
    cur = start
    while True:
        t = min(tmx, tmz)
        if t > 1.0:
            return cur, 1.0, -1
        if abs(tmx - tmz) < 1e-9:
            d = (4 if sz > 0 else 5) if sx > 0 else (6 if sz > 0 else 7)
            axis = 0
            tmx += tdx
            tmz += tdz
        elif tmx < tmz:
            d = 0 if sx > 0 else 1
            axis = 0
            tmx += tdx
        else:
            d = 2 if sz > 0 else 3
            axis = 1
            tmz += tdz
        nxt = nbr[cur, d]
        if nxt < 0:
            return cur, t, axis
        cur = nxt


@nb.njit(cache=True)
def _los(nbr, x0, z0, cs, a, ax, az, b, bx, bz):
    end, frac, axis = _walk(nbr, x0, z0, cs, a, ax, az, bx, bz)
    return axis < 0 and end == b


@nb.njit(cache=True)
def _dist(px, py, pz, a, b):
    return math.sqrt((px[a] - px[b]) ** 2 + (py[a] - py[b]) ** 2 + (pz[a] - pz[b]) ** 2)


@nb.njit(cache=True)
def _field(nbr, px, py, pz, x0, z0, cs, src, limit):
    """Lazy Theta* distance field from node `src` (px/py/pz[src] may be an exact off-centre point).
    Expansion stops past `limit` metres. Returns (g, parent): g[n] = any-angle path length, parent[n] =
    the last turning point of that path (src for nodes in sight of it)."""
    N = nbr.shape[0]
    g = np.full(N, _INF)
    parent = -np.ones(N, np.int32)
    closed = np.zeros(N, np.bool_)
    g[src] = 0.0
    parent[src] = src
    heap = [(0.0, np.int64(src))]
    while len(heap) > 0:
        gu, u = heapq.heappop(heap)
        if closed[u] or gu > g[u]:
            continue
        p = parent[u]
        if p != u and not _los(nbr, x0, z0, cs, p, px[p], pz[p], u, px[u], pz[u]):
            # Lazy Theta*: the assumed sight line is blocked, fall back to the best settled neighbour.
            best, bp = _INF, -1
            for d in range(8):
                v = nbr[u, d]
                if v >= 0 and closed[v]:
                    c = g[v] + _dist(px, py, pz, v, u)
                    if c < best:
                        best, bp = c, v
            g[u], parent[u] = best, bp
        closed[u] = True
        if g[u] > limit:
            break
        p = parent[u]
        for d in range(8):
            v = nbr[u, d]
            if v < 0 or closed[v]:
                continue
            c = g[p] + _dist(px, py, pz, p, v)
            if c < g[v]:
                g[v] = c
                parent[v] = p
                heapq.heappush(heap, (c, np.int64(v)))
    for n in range(N):
        if not closed[n]:
            g[n] = _INF
    return g, parent


@nb.njit(cache=True)
def _point_geodesic(nbr, px, py, pz, x0, z0, cs, g, parent, node, qx, qy, qz):
    """Path length from the continuous point q (over `node`) to a field's source."""
    if node < 0 or not np.isfinite(g[node]):
        return _INF
    a = parent[node]
    if a >= 0 and _los(nbr, x0, z0, cs, node, qx, qz, a, px[a], pz[a]):
        return math.sqrt((qx - px[a]) ** 2 + (qy - py[a]) ** 2 + (qz - pz[a]) ** 2) + g[a]
    return math.sqrt((qx - px[node]) ** 2 + (qy - py[node]) ** 2 + (qz - pz[node]) ** 2) + g[node]


# ------------------------------------------------------------------------------------------- the grid

class NavGrid:
    """Navigable nodes (one per walkable grid cell and floor), their links and obstacle clearance."""

    def __init__(self, origin, shape, settings: NavSettings, cols, ys, nbr, clearance):
        self.x0, self.z0 = float(origin[0]), float(origin[1])
        self.nx, self.nz = int(shape[0]), int(shape[1])
        self.settings = settings
        self.cs = float(settings.cell_size)
        self.cols = cols                      # (N,) int64 column = ix * nz + iz
        self.nbr = nbr                        # (N, 8) int32
        self.clearance = clearance            # (N,) metres to the navigable region's edge
        ix, iz = cols // self.nz, cols % self.nz
        self.px = self.x0 + (ix + 0.5) * self.cs
        self.pz = self.z0 + (iz + 0.5) * self.cs
        self.py = ys.astype(np.float64)
        self.col_ptr = np.searchsorted(cols, np.arange(self.nx * self.nz + 1)).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.cols.shape[0])

    @property
    def area(self) -> float:
        return self.size * self.cs * self.cs

    def position(self, node: int) -> np.ndarray:
        return np.array([self.px[node], self.py[node], self.pz[node]])

    def locate(self, p) -> int:
        """Node under point p (x, y, z): in p's column, the floor closest in height within the climb limit."""
        ix = int(math.floor((p[0] - self.x0) / self.cs))
        iz = int(math.floor((p[2] - self.z0) / self.cs))
        if not (0 <= ix < self.nx and 0 <= iz < self.nz):
            return -1
        c = ix * self.nz + iz
        lo, hi = self.col_ptr[c], self.col_ptr[c + 1]
        if lo == hi:
            return -1
        dy = np.abs(self.py[lo:hi] - p[1])
        k = int(np.argmin(dy))
        return int(lo + k) if dy[k] <= self.settings.max_climb + self.settings.cell_height else -1

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform over the navigable area: a uniform node, then a uniform point in its cell."""
        n = int(rng.integers(self.size))
        jx, jz = rng.uniform(-0.5, 0.5, size=2) * self.cs * 0.999
        return np.array([self.px[n] + jx, self.py[n], self.pz[n] + jz])

    def move(self, node: int, p: np.ndarray, q: np.ndarray, slide: bool = True) -> tuple[int, np.ndarray]:
        """Like habitat's pathfinder.try_step: go from p toward q (x, z) along the navigable region; stop
        at its edge and, with `slide`, spend the rest of the move along that edge. Returns (node, point)."""
        end, frac, axis = _walk(self.nbr, self.x0, self.z0, self.cs, node, p[0], p[2], q[0], q[2])
        if axis < 0:
            return end, np.array([q[0], self.py[end], q[2]])
        # Stop just short of the blocking cell edge, inside the last node's cell.
        t = max(frac - 1e-4 / max(np.hypot(q[0] - p[0], q[2] - p[2]), 1e-9), 0.0)
        stop = np.array([p[0] + t * (q[0] - p[0]), self.py[end], p[2] + t * (q[2] - p[2])])
        stop = self._clamp_to_cell(end, stop)
        if not slide:
            return end, stop
        rest = np.array([q[0] - stop[0], q[2] - stop[2]])
        rest[axis] = 0.0                       # the blocked axis; keep the component along the edge
        if abs(rest[0]) + abs(rest[1]) < 1e-9:
            return end, stop
        target = np.array([stop[0] + rest[0], stop[1], stop[2] + rest[1]])
        return self.move(end, stop, target, slide=False)

    def _clamp_to_cell(self, node: int, p: np.ndarray) -> np.ndarray:
        h = 0.5 * self.cs * (1 - 1e-6)
        return np.array([np.clip(p[0], self.px[node] - h, self.px[node] + h), p[1],
                         np.clip(p[2], self.pz[node] - h, self.pz[node] + h)])

    def field(self, source: np.ndarray, limit: float = _INF) -> "DistanceField":
        """Geodesic distances from the point `source` (must be navigable) to everywhere within `limit` m."""
        src = self.locate(source)
        if src < 0:
            raise ValueError(f"point {np.round(source, 3).tolist()} is not on the navigable grid")
        px, py, pz = self.px.copy(), self.py.copy(), self.pz.copy()
        px[src], py[src], pz[src] = source[0], self.py[src], source[2]
        g, parent = _field(self.nbr, px, py, pz, self.x0, self.z0, self.cs, src, float(limit))
        return DistanceField(self, px, py, pz, g, parent)


class DistanceField:
    def __init__(self, grid: NavGrid, px, py, pz, g, parent):
        self.grid, self.px, self.py, self.pz, self.g, self.parent = grid, px, py, pz, g, parent

    def at(self, p: np.ndarray, node: int | None = None) -> float:
        gr = self.grid
        node = gr.locate(p) if node is None else node
        return float(_point_geodesic(gr.nbr, self.px, self.py, self.pz, gr.x0, gr.z0, gr.cs, self.g, self.parent,
                                     node, float(p[0]), float(p[1]), float(p[2])))


def build_navgrid(verts: np.ndarray, faces: np.ndarray, settings: NavSettings) -> NavGrid:
    """verts (V, 3) float in habitat's frame (y up, metres), faces (F, 3) int. May return an empty grid."""
    verts = np.ascontiguousarray(verts, np.float64)
    faces = np.ascontiguousarray(faces, np.int64)
    cs, ch = settings.cell_size, settings.cell_height
    lo, hi = verts.min(0), verts.max(0)
    x0, y0, z0 = lo[0] - cs, lo[1] - ch, lo[2] - cs
    nx, nz = int(math.ceil((hi[0] - x0) / cs)) + 2, int(math.ceil((hi[2] - z0) / cs)) + 2
    ny = int(math.ceil((hi[1] - y0) / ch)) + 2
    walk_cos = math.cos(math.radians(settings.max_slope))
    e_key, e_h, e_w = np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_)
    m = _voxelize(verts, faces, x0, z0, y0, cs, ch, nx, nz, ny, walk_cos, e_key, e_h, e_w, True)
    e_key, e_h, e_w = np.empty(m, np.int64), np.empty(m), np.empty(m, np.bool_)
    _voxelize(verts, faces, x0, z0, y0, cs, ch, nx, nz, ny, walk_cos, e_key, e_h, e_w, False)
    order = np.argsort(e_key, kind="stable")
    e_key, e_h, e_w = e_key[order], e_h[order], e_w[order]
    starts = np.flatnonzero(np.r_[True, e_key[1:] != e_key[:-1]]) if m else np.empty(0, np.int64)
    keys = e_key[starts]
    hs = np.maximum.reduceat(e_h, starts) if m else e_h
    ws = np.maximum.reduceat(e_w.astype(np.uint8), starts).astype(np.bool_) if m else e_w
    del e_key, e_h, e_w, order
    cols, ys = _floor_nodes(keys, hs, ws, ny, y0, ch, settings.agent_height)
    cols, ys, nbr, clearance = _connect(cols, ys, nx, nz, settings)
    return NavGrid((x0, z0), (nx, nz), settings, cols, ys, nbr, clearance)


def _connect(cols, ys, nx, nz, settings: NavSettings):
    """Link, keep the largest region, erode by the radius (in whole cells, as Recast), keep the largest again."""
    def linked(cols, ys):
        col_ptr = np.searchsorted(cols, np.arange(nx * nz + 1)).astype(np.int64)
        return _symmetrize(_link(cols, ys, col_ptr, nx, nz, DIRS, settings.max_climb))

    def keep(cols, ys, mask):
        return cols[mask], ys[mask]

    nbr = linked(cols, ys)
    if len(cols):
        cols, ys = keep(cols, ys, _largest_component(nbr, np.ones(len(cols), np.bool_)))
        nbr = linked(cols, ys)
    rings = int(math.ceil(settings.agent_radius / settings.cell_size - 1e-9))
    for _ in range(rings):
        if not len(cols):
            break
        inner = (nbr >= 0).all(axis=1)
        cols, ys = keep(cols, ys, inner)
        nbr = linked(cols, ys)
    if len(cols):
        cols, ys = keep(cols, ys, _largest_component(nbr, np.ones(len(cols), np.bool_)))
        nbr = linked(cols, ys)
    clearance = _boundary_distance(nbr, settings.cell_size) if len(cols) else np.empty(0)
    return cols, ys, nbr, clearance
