"""Procedural indoor scenes for `make-scenes`: a floor plan split into rooms and corridors, doors between
neighbouring rooms (a spanning tree plus a few loops), furniture-sized boxes against the walls, textured
floors, walls and ceiling. Written as .glb with the textures embedded, z-up like the Gibson/MP3D/HM3D scans
habitat reads (see scenes.load_scene_mesh), so both backends read them the same way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import trimesh
from PIL import Image

from ..seeds import episode_seed, rng as seeded_rng


@dataclass
class SceneGenConfig:
    min_size: tuple[float, float] = (8.0, 6.0)      # footprint metres (x, z)
    max_size: tuple[float, float] = (16.0, 12.0)
    wall_height: float = 2.7
    wall_thickness: float = 0.1
    min_room: float = 2.5
    corridor_width: tuple[float, float] = (1.2, 1.6)
    door_width: tuple[float, float] = (0.9, 1.2)
    door_height: float = 2.1
    extra_door_prob: float = 0.3                     # doors beyond the spanning tree make loops
    max_furniture: int = 4
    texture_px: int = 128


Rect = tuple[float, float, float, float]             # x0, z0, x1, z1


# ---------------------------------------------------------------------------------------------- textures

def _noise(rng, size, scale):
    """Smooth value noise in [0, 1]: random grid upsampled bilinearly (tileable by wrapping)."""
    g = rng.random((scale, scale))
    idx = np.arange(size) * scale / size
    i0 = np.floor(idx).astype(int)
    t = idx - i0
    i1 = (i0 + 1) % scale
    rows = g[i0] * (1 - t)[:, None] + g[i1] * t[:, None]
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i1] * t[None, :]


def _palette(rng, base, spread):
    return np.clip(np.asarray(base, float) + rng.uniform(-spread, spread, 3), 0, 255)


def make_texture(kind: str, rng: np.random.Generator, px: int) -> Image.Image:
    """A tileable RGB texture: planks, tiles, carpet, wallpaper, plaster or fabric."""
    n = _noise(rng, px, 8) * 0.6 + _noise(rng, px, 32) * 0.4
    if kind == "planks":
        c = _palette(rng, (150, 105, 65), 40)
        rows = 6
        shade = rng.uniform(0.75, 1.15, rows)[(np.arange(px) * rows // px)]
        grain = 0.85 + 0.3 * _noise(rng, px, 16)[:, :1].repeat(px, 1).T
        img = c * (shade[:, None] * grain * (0.9 + 0.2 * n))[..., None]
        img[(np.arange(px) % (px // rows)) == 0] *= 0.55
    elif kind == "tiles":
        a, b = _palette(rng, (200, 200, 190), 50), _palette(rng, (120, 130, 140), 60)
        k = px // 4
        check = ((np.arange(px)[:, None] // k + np.arange(px)[None, :] // k) % 2).astype(float)
        img = (a * check[..., None] + b * (1 - check[..., None])) * (0.92 + 0.16 * n)[..., None]
        grout = (np.arange(px) % k < 2)
        img[grout] = img[:, grout] = 70
    elif kind == "wallpaper":
        a, b = _palette(rng, (210, 200, 180), 40), _palette(rng, (150, 120, 110), 70)
        period = int(rng.integers(8, 24))
        stripes = (np.arange(px) % period < period // 3).astype(float)[None, :].repeat(px, 0)
        img = (a * (1 - stripes[..., None]) + b * stripes[..., None]) * (0.95 + 0.1 * n)[..., None]
    elif kind in ("carpet", "fabric"):
        c = _palette(rng, (120, 90, 90) if kind == "carpet" else (90, 110, 140), 70)
        fine = rng.random((px, px))
        img = c * (0.7 + 0.4 * n + 0.15 * fine)[..., None]
    elif kind == "plaster":
        c = _palette(rng, (225, 222, 215), 20)
        img = c * (0.93 + 0.1 * n)[..., None]
    else:
        raise ValueError(f"unknown texture kind '{kind}'")
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------------------------- geometry

def _quad_mesh(corners, uv, material) -> trimesh.Trimesh:
    """Two triangles over 4 corners given counter-clockwise as seen from the side the normal points to."""
    return trimesh.Trimesh(np.asarray(corners, float), [[0, 1, 2], [0, 2, 3]], process=False,
                           visual=trimesh.visual.TextureVisuals(uv=np.asarray(uv, float), material=material))


def _box_faces(lo, hi, tex_scale):
    """24 corners, 12 outward triangles and world-metre uvs of an axis-aligned box (y up)."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    quads = [  # each: 4 corners CCW seen from outside, and the two axes used for uv
        ([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)], (2, 1)),   # +x
        ([(x0, y0, z1), (x0, y1, z1), (x0, y1, z0), (x0, y0, z0)], (2, 1)),   # -x
        ([(x0, y1, z0), (x0, y1, z1), (x1, y1, z1), (x1, y1, z0)], (0, 2)),   # +y
        ([(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)], (0, 2)),   # -y
        ([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], (0, 1)),   # +z
        ([(x1, y0, z0), (x0, y0, z0), (x0, y1, z0), (x1, y1, z0)], (0, 1)),   # -z
    ]
    verts, faces, uvs = [], [], []
    for corners, (u, v) in quads:
        base = len(verts)
        verts += corners
        uvs += [(c[u] / tex_scale, c[v] / tex_scale) for c in corners]
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.array(verts), np.array(faces), np.array(uvs)


class _Builder:
    """Collects boxes and quads per material, so the scene is one mesh per material."""

    def __init__(self):
        self.parts: dict[str, list] = {}
        self.materials: dict[str, object] = {}

    def material(self, name: str, image: Image.Image | None = None, color=None):
        if name not in self.materials:
            self.materials[name] = ("tex", image) if image is not None else ("rgb", color)
            self.parts[name] = []
        return name

    def box(self, name, lo, hi, tex_scale=1.0):
        self.parts[name].append(_box_faces(lo, hi, tex_scale))

    def quad(self, name, corners, tex_scale, axes):
        c = np.asarray(corners, float)
        self.parts[name].append((c, np.array([[0, 1, 2], [0, 2, 3]]), c[:, list(axes)] / tex_scale))

    def scene(self) -> trimesh.Scene:
        zup = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)      # habitat y-up -> file z-up
        out = trimesh.Scene()
        for name in sorted(self.parts):
            if not self.parts[name]:
                continue
            vs, fs, us, off = [], [], [], 0
            for v, f, u in self.parts[name]:
                vs.append(v)
                fs.append(f + off)
                us.append(u)
                off += len(v)
            v, f, u = np.concatenate(vs) @ zup.T, np.concatenate(fs), np.concatenate(us)
            kind, payload = self.materials[name]
            if kind == "tex":
                mat = trimesh.visual.material.PBRMaterial(name=name, baseColorTexture=payload,
                                                          metallicFactor=0.0, roughnessFactor=1.0)
                visual = trimesh.visual.TextureVisuals(uv=u, material=mat)
            else:
                rgba = np.tile(np.r_[payload, 255].astype(np.uint8), (len(v), 1))
                visual = trimesh.visual.ColorVisuals(vertex_colors=rgba)
            out.add_geometry(trimesh.Trimesh(v, f, visual=visual, process=False), geom_name=name, node_name=name)
        return out


# ------------------------------------------------------------------------------------------- floor plan

def _split(rect: Rect, rng, cfg: SceneGenConfig, rooms: list, walls: list, depth=0):
    """Binary space partition; every split line becomes a wall segment (x or z = const)."""
    x0, z0, x1, z1 = rect
    w, d = x1 - x0, z1 - z0
    area_stop = rng.uniform(8.0, 20.0)
    can_x, can_z = w >= 2 * cfg.min_room, d >= 2 * cfg.min_room
    if (not can_x and not can_z) or (w * d < area_stop and depth > 0):
        rooms.append(rect)
        return
    axis = 0 if (can_x and (not can_z or rng.random() < w / (w + d))) else 1
    lo, hi = (x0, x1) if axis == 0 else (z0, z1)
    cw = rng.uniform(*cfg.corridor_width)
    if hi - lo >= 2 * cfg.min_room + cw and rng.random() < 0.25:
        s = rng.uniform(lo + cfg.min_room, hi - cfg.min_room - cw)
        cuts = [s, s + cw]
    else:
        cuts = [rng.uniform(lo + cfg.min_room, hi - cfg.min_room)]
    bounds = [lo, *cuts, hi]
    for c in cuts:
        walls.append((axis, c, (z0, z1) if axis == 0 else (x0, x1)))
    for a, b in zip(bounds[:-1], bounds[1:]):
        sub = (a, z0, b, z1) if axis == 0 else (x0, a, x1, b)
        if len(cuts) == 2 and a == cuts[0]:
            rooms.append(sub)                            # the corridor strip is not split further
        else:
            _split(sub, rng, cfg, rooms, walls, depth + 1)


def _shared(a: Rect, b: Rect):
    """The boundary segment two rooms share: (axis, coordinate, (lo, hi)) or None."""
    for axis, (a0, a1, b0, b1) in ((0, (a[2], a[0], b[0], b[2])), (1, (a[3], a[1], b[1], b[3]))):
        for c_a, c_b in ((a0, b0), (a1, b1)):
            if abs(c_a - c_b) < 1e-9:
                o = (1, 3) if axis == 0 else (0, 2)
                lo, hi = max(a[o[0]], b[o[0]]), min(a[o[1]], b[o[1]])
                if hi > lo:
                    return axis, c_a, (lo, hi)
    return None


def _doors(rooms, rng, cfg):
    """Doors between adjacent rooms: a random spanning tree (all rooms reachable) plus extra loops."""
    edges = []
    for i in range(len(rooms)):
        for j in range(i + 1, len(rooms)):
            s = _shared(rooms[i], rooms[j])
            if s and s[2][1] - s[2][0] >= cfg.door_width[1] + 0.5:
                edges.append((i, j, s))
    order = rng.permutation(len(edges))
    parent = list(range(len(rooms)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    doors = []
    for k in order:
        i, j, (axis, c, (lo, hi)) = edges[k]
        joined = find(i) != find(j)
        if joined or rng.random() < cfg.extra_door_prob:
            parent[find(i)] = find(j)
            w = rng.uniform(*cfg.door_width)
            mid = rng.uniform(lo + 0.25 + w / 2, hi - 0.25 - w / 2)
            doors.append((axis, c, (mid - w / 2, mid + w / 2)))
    return doors


def _wall_pieces(axis, c, span, doors, cfg):
    """Solid intervals of a wall line after cutting its doors, plus the door intervals (for lintels)."""
    cuts = sorted(d[2] for d in doors if d[0] == axis and abs(d[1] - c) < 1e-9 and span[0] < d[2][0] < span[1])
    pieces, at = [], span[0]
    for lo, hi in cuts:
        pieces.append((at, lo))
        at = hi
    pieces.append((at, span[1]))
    return [p for p in pieces if p[1] - p[0] > 1e-6], cuts


def _wall_box(axis, c, lo, hi, y0, y1, t):
    if axis == 0:     # wall on the line x = c, running along z
        return (c - t / 2, y0, lo), (c + t / 2, y1, hi)
    return (lo, y0, c - t / 2), (hi, y1, c + t / 2)


def _furnish(b: _Builder, room: Rect, doors, mats, rng, cfg):
    """Boxes against the walls, kept out of door swings and off each other; tables mid-room in big rooms."""
    x0, z0, x1, z1 = room
    w, d = x1 - x0, z1 - z0
    if min(w, d) < cfg.min_room - 1e-6:
        return                                        # corridors stay clear
    keep_out = []
    for axis, c, (lo, hi) in doors:
        if axis == 0 and x0 - 1e-6 <= c <= x1 + 1e-6 and hi > z0 and lo < z1:
            keep_out.append((c - 1.0, lo - 0.2, c + 1.0, hi + 0.2))
        if axis == 1 and z0 - 1e-6 <= c <= z1 + 1e-6 and hi > x0 and lo < x1:
            keep_out.append((lo - 0.2, c - 1.0, hi + 0.2, c + 1.0))
    placed = []
    kinds = [("cabinet", (0.6, 1.6), (0.4, 0.6), (0.8, 2.0)), ("bed", (1.4, 1.9), (1.9, 2.1), (0.45, 0.6)),
             ("sofa", (1.6, 2.2), (0.8, 0.95), (0.75, 0.9)), ("shelf", (0.8, 1.2), (0.3, 0.4), (1.6, 2.2)),
             ("table", (0.8, 1.6), (0.6, 1.0), (0.72, 0.78))]
    t = cfg.wall_thickness / 2
    for _ in range(int(rng.integers(0, cfg.max_furniture + 1))):
        kind, wr, dr, hr = kinds[int(rng.integers(len(kinds)))]
        fw, fd, fh = rng.uniform(*wr), rng.uniform(*dr), rng.uniform(*hr)
        if kind == "table":
            if min(w, d) < 3.5 or w < 2.4 + fw or d < 2.4 + fd:     # 1.2 m clear on every side
                continue
            cx, cz = rng.uniform(x0 + 1.2 + fw / 2, x1 - 1.2 - fw / 2), rng.uniform(z0 + 1.2 + fd / 2, z1 - 1.2 - fd / 2)
            rect = (cx - fw / 2, cz - fd / 2, cx + fw / 2, cz + fd / 2)
        else:
            side = int(rng.integers(4))                  # against x0, x1, z0, z1
            along, across = (d, w) if side < 2 else (w, d)
            if fw > along - 0.4 or fd > min(across / 2.5, across - 1.2):
                continue
            s = rng.uniform(0.1, along - fw - 0.1)
            if side == 0:
                rect = (x0 + t, z0 + s, x0 + t + fd, z0 + s + fw)
            elif side == 1:
                rect = (x1 - t - fd, z0 + s, x1 - t, z0 + s + fw)
            elif side == 2:
                rect = (x0 + s, z0 + t, x0 + s + fw, z0 + t + fd)
            else:
                rect = (x0 + s, z1 - t - fd, x0 + s + fw, z1 - t)
        grown = (rect[0] - 0.1, rect[1] - 0.1, rect[2] + 0.1, rect[3] + 0.1)
        if any(grown[0] < o[2] and o[0] < grown[2] and grown[1] < o[3] and o[1] < grown[3] for o in keep_out + placed):
            continue
        placed.append(rect)
        mat = mats[int(rng.integers(len(mats)))]
        b.box(mat, (rect[0], 0.0, rect[1]), (rect[2], fh, rect[3]), tex_scale=1.0)


def generate_scene(seed: int, cfg: SceneGenConfig | None = None) -> trimesh.Scene:
    """One indoor scene, fully determined by `seed`."""
    cfg = cfg or SceneGenConfig()
    r_plan, r_tex, r_furn = (seeded_rng(seed, s) for s in ("plan", "textures", "furniture"))
    W = r_plan.uniform(cfg.min_size[0], cfg.max_size[0])
    D = r_plan.uniform(cfg.min_size[1], cfg.max_size[1])
    rooms, walls = [], []
    _split((0.0, 0.0, W, D), r_plan, cfg, rooms, walls)
    doors = _doors(rooms, r_plan, cfg)

    b = _Builder()
    px = cfg.texture_px
    floors = [b.material(f"floor{i}", make_texture(k, r_tex, px))
              for i, k in enumerate(r_tex.permutation(["planks", "tiles", "carpet"]))]
    wallm = [b.material(f"wall{i}", make_texture(k, r_tex, px)) for i, k in enumerate(["wallpaper", "plaster"])]
    ceil = b.material("ceiling", make_texture("plaster", r_tex, px))
    furn = [b.material("furniture_wood", make_texture("planks", r_tex, px)),
            b.material("furniture_fabric", make_texture("fabric", r_tex, px)),
            b.material("furniture_painted", color=_palette(r_tex, (140, 140, 140), 100))]

    H, T = cfg.wall_height, cfg.wall_thickness
    for room in rooms:
        x0, z0, x1, z1 = room
        # Floors face up, the ceiling faces down: single-sided like a scan, so no walkable roof.
        b.quad(floors[int(r_tex.integers(len(floors)))], [(x0, 0, z0), (x0, 0, z1), (x1, 0, z1), (x1, 0, z0)], 1.5, (0, 2))
    b.quad(ceil, [(0, H, 0), (W, H, 0), (W, H, D), (0, H, D)], 2.0, (0, 2))
    outer = [(0, 0.0, (-T, D + T)), (0, W, (-T, D + T)), (1, 0.0, (0.0, W)), (1, D, (0.0, W))]
    for axis, c, span in outer + walls:
        pieces, cuts = _wall_pieces(axis, c, span, doors, cfg)
        mat = wallm[int(r_tex.integers(len(wallm)))]
        for lo, hi in pieces:
            b.box(mat, *_wall_box(axis, c, lo, hi, 0.0, H, T), tex_scale=2.0)
        for lo, hi in cuts:
            b.box(mat, *_wall_box(axis, c, lo, hi, cfg.door_height, H, T), tex_scale=2.0)
    for room in rooms:
        _furnish(b, room, doors, furn, r_furn, cfg)
    return b.scene()


def subdivide_scene(scene: trimesh.Scene, levels: int) -> trimesh.Scene:
    """Split every triangle into 4, `levels` times (uvs interpolated): a scan-sized mesh for benchmarks."""
    out = trimesh.Scene()
    for name, g in scene.geometry.items():
        v, f = g.vertices, g.faces
        uv = g.visual.uv if isinstance(g.visual, trimesh.visual.TextureVisuals) else None
        col = None if uv is not None else g.visual.vertex_colors
        for _ in range(levels):
            attrs = np.hstack([v, uv]) if uv is not None else np.hstack([v, col.astype(float)])
            attrs, f = trimesh.remesh.subdivide(attrs, f)
            v = attrs[:, :3]
            if uv is not None:
                uv = attrs[:, 3:5]
            else:
                col = np.round(attrs[:, 3:7]).astype(np.uint8)
        visual = (trimesh.visual.TextureVisuals(uv=uv, material=g.visual.material) if uv is not None
                  else trimesh.visual.ColorVisuals(vertex_colors=col))
        out.add_geometry(trimesh.Trimesh(v, f, visual=visual, process=False), geom_name=name, node_name=name)
    return out


def scene_seed(base_seed: int, index: int) -> int:
    """Scene `index` of `make-scenes --seed base_seed` depends on both only."""
    return episode_seed(base_seed, index)


def write_scene(path: str, seed: int, cfg: SceneGenConfig | None = None, subdivide: int = 0) -> int:
    """Generate and write one .glb; returns its triangle count."""
    scene = generate_scene(seed, cfg)
    if subdivide:
        scene = subdivide_scene(scene, subdivide)
    data = scene.export(file_type="glb")
    tmp = f"{path}.{os.getpid()}.partial"   # renamed when whole: an interrupted run leaves no cut .glb
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return int(sum(len(g.faces) for g in scene.geometry.values()))
