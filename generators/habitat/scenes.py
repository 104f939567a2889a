"""Scene files: finding them (`--scenes`), checking them, choosing one per episode, loading a mesh for the
embedded backend, and the `make-scenes` console script (generation itself is in scenegen.py)."""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from ..seeds import rng as seeded_rng

SCENE_EXTS = (".glb", ".gltf", ".ply", ".obj")
DATASET_SUFFIX = ".scene_dataset_config.json"
MAKE_SCENES_RECORD = "make-scenes.json"   # the settings of a make-scenes folder (not a scene dataset config)
# habitat's frame is y-up; Gibson/MP3D/HM3D .glb and Replica .ply are stored z-up and habitat turns them
# (stage "up" +z, "front" +y); .obj and .gltf are taken as y-up.
DEFAULT_UP = {".glb": "z", ".ply": "z", ".obj": "y", ".gltf": "y"}


class SceneWarning(UserWarning):
    """A scene file was skipped; the message names it and says why."""


class SceneUnusable(RuntimeError):
    """A scene failed at load time in a worker (unreadable mesh, no navigable area): the episode moves on
    to another scene drawn from its seed."""


# -------------------------------------------------------------------------------------------- discovery

def discover_scenes(spec: str) -> tuple[list[str], str]:
    """`spec` is a folder (searched recursively), a glob, a text file listing scene files (one a line,
    relative to the list's folder, '#' comments), one scene file, or a habitat *.scene_dataset_config.json
    (its stages' paths). Returns (sorted unique absolute paths, dataset config path or "")."""
    spec = os.path.expanduser(str(spec))
    if any(ch in spec for ch in "*?["):
        found = [p for p in glob.glob(spec, recursive=True) if _is_scene_name(p)]
        return _norm(found), ""
    if os.path.isdir(spec):
        found = [os.path.join(root, f) for root, _, files in os.walk(spec) for f in files if _is_scene_name(f)]
        return _norm(found), ""
    if not os.path.exists(spec):
        raise FileNotFoundError(f"--scenes: no such folder, file or glob match: {spec}")
    if spec.endswith(DATASET_SUFFIX):
        return _norm(_dataset_stages(spec)), os.path.abspath(spec)
    if _is_scene_name(spec):
        return _norm([spec]), ""
    with open(spec, encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh]
    base = os.path.dirname(os.path.abspath(spec))
    entries = [os.path.join(base, os.path.expanduser(ln)) for ln in lines if ln and not ln.startswith("#")]
    return _norm(entries), ""


def _is_scene_name(path: str) -> bool:
    return path.lower().endswith(SCENE_EXTS)


def _norm(paths) -> list[str]:
    return sorted({os.path.abspath(p) for p in paths})


def _dataset_stages(config: str) -> list[str]:
    """Stage asset files named by a habitat scene dataset config: stages.paths = {".glb": [globs]}."""
    try:
        with open(config, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read scene dataset config {config}: {e}") from None
    base = os.path.dirname(os.path.abspath(config))
    paths = (cfg.get("stages") or {}).get("paths") or {}
    found = []
    for patterns in paths.values():
        for pat in patterns:
            found += [p for p in glob.glob(os.path.join(base, pat), recursive=True) if _is_scene_name(p)]
    return found


def check_scene_file(path: str) -> str | None:
    """Cheap checks (no mesh parsing): why the file is unusable, or None."""
    if not os.path.exists(path):
        return "missing"
    if not os.path.isfile(path):
        return "not a file"
    if not _is_scene_name(path):
        return f"not a scene file (expected {', '.join(SCENE_EXTS)})"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not head:
        return "empty"
    if path.lower().endswith(".glb") and head != b"glTF":
        return "not a binary glTF (bad magic)"
    if path.lower().endswith(".ply") and head[:3] != b"ply":
        return "not a PLY file (bad magic)"
    return None


def warn_skip(path: str, reason: str) -> None:
    warnings.warn(f"skipping scene {path}: {reason}", SceneWarning, stacklevel=2)


def usable_scene_files(paths: list[str]) -> list[str]:
    """The paths that pass check_scene_file, in sorted order; a warning for each one dropped."""
    keep = []
    for p in sorted(paths):
        reason = check_scene_file(p)
        if reason:
            warn_skip(p, reason)
        else:
            keep.append(p)
    return keep


def file_sha256(path: str, block: int = 1 << 22) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(paths: list[str], threads: int | None = None) -> list[str]:
    """sha256 of each file, in order. hashlib releases the GIL on large buffers, so threads use every core
    (a full HM3D scene set is ~100 GB)."""
    from concurrent.futures import ThreadPoolExecutor
    if len(paths) <= 1:
        return [file_sha256(p) for p in paths]
    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as ex:
        return list(ex.map(file_sha256, paths))


def scene_to_load(index: int, current: int | None, scenes: list[str], unusable: dict[int, str]) -> str | None:
    """The path a backend must load to make scene `index` current, or None if it already is.
    Both backends keep `unusable` (index -> reason) so a bad scene is diagnosed once."""
    if index == current:
        return None
    if not 0 <= index < len(scenes):
        raise ValueError(f"scene index {index} out of range (0..{len(scenes) - 1})")
    if index in unusable:
        raise SceneUnusable(unusable[index])
    return scenes[index]


def choose_scene(seed: int, n_scenes: int, draw: int = 0) -> int:
    """Scene index of an episode: the `draw`-th uniform draw of its own stream (draws > 0 replace scenes
    found unusable in a worker, so every worker moves the episode to the same scene)."""
    if n_scenes <= 0:
        raise ValueError("no usable scenes")
    return int(seeded_rng(seed, "scene").integers(n_scenes, size=draw + 1)[draw])


# ---------------------------------------------------------------------------------------------- meshes

@dataclass
class SceneMesh:
    """A scene flattened for rendering and navigation, in habitat's frame (y up, metres).
    Faces are grouped by texture; parts[i] = (first face, face count, texture index or -1 for none)."""
    positions: np.ndarray    # float32 (V, 3)
    normals: np.ndarray      # float32 (V, 3)
    uvs: np.ndarray          # float32 (V, 2), OpenGL convention (v up)
    colors: np.ndarray       # uint8 (V, 4), vertex colour times material factor
    faces: np.ndarray        # uint32 (F, 3)
    parts: list[tuple[int, int, int]]
    textures: list[np.ndarray]   # uint8 (h, w, 4), first row = top of the image

    @property
    def triangles(self) -> int:
        return int(self.faces.shape[0])

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.positions, self.normals, self.uvs, self.colors, self.faces))
                   + sum(t.nbytes for t in self.textures))


def up_rotation(up: str) -> np.ndarray:
    """File frame -> habitat frame. z-up files: (x, y, z) -> (x, z, -y)."""
    if up == "y":
        return np.eye(3)
    if up == "z":
        return np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    raise ValueError(f"up axis must be 'y' or 'z', got '{up}'")


def resolve_up(path: str, up: str = "auto") -> str:
    return DEFAULT_UP[os.path.splitext(path)[1].lower()] if up == "auto" else up


def _material_image_and_factor(visual):
    """(PIL image or None, RGBA factor uint8) of a trimesh TextureVisuals' material."""
    mat = getattr(visual, "material", None)
    image, factor = None, np.array([255, 255, 255, 255], np.uint8)
    if mat is None:
        return image, factor
    if hasattr(mat, "baseColorTexture"):
        image = mat.baseColorTexture
        if getattr(mat, "baseColorFactor", None) is not None:
            factor = np.asarray(mat.baseColorFactor, np.uint8)
    else:
        image = getattr(mat, "image", None)
        if getattr(mat, "diffuse", None) is not None:
            factor = np.asarray(mat.diffuse, np.uint8)
    return image, factor


def load_scene_mesh(path: str, up: str = "auto", max_texture: int = 1024) -> SceneMesh:
    """Read a scene with trimesh into one SceneMesh (textures downscaled to `max_texture` px).
    Raises SceneUnusable for files trimesh cannot read or without triangles."""
    import trimesh
    from PIL import Image

    rot = up_rotation(resolve_up(path, up))
    try:
        scene = trimesh.load(path, force="scene")
    except Exception as e:   # trimesh raises many types for malformed files
        raise SceneUnusable(f"cannot read {path}: {type(e).__name__}: {e}") from None
    groups: dict[int, list] = {}
    textures, tex_ids = [], {}
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        mesh = scene.geometry.get(geom_name)
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue
        m4 = np.asarray(transform, float)
        lin = rot @ m4[:3, :3]
        v = mesh.vertices @ lin.T + rot @ m4[:3, 3]
        nrm = mesh.vertex_normals @ np.linalg.inv(m4[:3, :3]) @ rot.T
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        nv = len(v)
        uv = np.zeros((nv, 2), np.float32)
        col = np.full((nv, 4), 255, np.uint8)
        tex = -1
        vis = mesh.visual
        if isinstance(vis, trimesh.visual.TextureVisuals):
            image, factor = _material_image_and_factor(vis)
            if image is not None and vis.uv is not None and len(vis.uv) == nv:
                key = id(image)
                if key not in tex_ids:
                    img = image.convert("RGBA")
                    if max(img.size) > max_texture:
                        s = max_texture / max(img.size)
                        img = img.resize((max(1, int(img.size[0] * s)), max(1, int(img.size[1] * s))), Image.BILINEAR)
                    tex_ids[key] = len(textures)
                    textures.append(np.asarray(img, np.uint8))
                tex = tex_ids[key]
                uv = np.asarray(vis.uv, np.float32)
            col[:] = factor
        elif isinstance(vis, trimesh.visual.ColorVisuals) and vis.kind is not None:
            col = np.asarray(vis.vertex_colors, np.uint8).reshape(nv, 4)
        groups.setdefault(tex, []).append((v, nrm, uv, col, np.asarray(mesh.faces, np.int64)))
    if not groups:
        raise SceneUnusable(f"{path} has no triangles")
    P, N, U, C, F, parts, off, first = [], [], [], [], [], [], 0, 0
    for tex in sorted(groups):
        count = 0
        for v, nrm, uv, col, f in groups[tex]:
            P.append(v), N.append(nrm), U.append(uv), C.append(col), F.append(f + off)
            off += len(v)
            count += len(f)
        parts.append((first, count, tex))
        first += count
    return SceneMesh(np.concatenate(P).astype(np.float32), np.concatenate(N).astype(np.float32),
                     np.concatenate(U).astype(np.float32), np.concatenate(C), np.concatenate(F).astype(np.uint32),
                     parts, textures)


def simplify_mesh(mesh: SceneMesh, cell: float) -> SceneMesh:
    """Vertex clustering for rendering dense scans on a CPU rasterizer: vertices of one texture falling in
    the same `cell`-metre voxel (and uv neighbourhood, so texture seams stay apart) merge into their mean;
    collapsed triangles are dropped. At 128 px a 5 cm cell is about a pixel 3 m away."""
    if cell <= 0:
        return mesh
    vtex = np.full(len(mesh.positions), -1, np.int64)
    for first, count, tex in mesh.parts:
        vtex[mesh.faces[first:first + count].ravel().astype(np.int64)] = tex
    key = np.concatenate([np.floor(mesh.positions / cell), vtex[:, None], np.floor(mesh.uvs * 32)], 1).astype(np.int64)
    _, rep, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    counts = np.bincount(inv).astype(np.float64)[:, None]
    pos = np.zeros((len(rep), 3))
    np.add.at(pos, inv, mesh.positions)
    faces = inv[mesh.faces.astype(np.int64)]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    parts, first = [], 0
    for f0, count, tex in mesh.parts:
        k = int(keep[f0:f0 + count].sum())
        if k:
            parts.append((first, k, tex))
            first += k
    return SceneMesh((pos / counts).astype(np.float32), mesh.normals[rep], mesh.uvs[rep], mesh.colors[rep],
                     faces[keep].astype(np.uint32), parts, mesh.textures)


# ----------------------------------------------------------------------------------------- make-scenes

def _make_scenes(argv) -> int:
    from tqdm import tqdm

    from cli_common import HelpFormatter, plural

    from ..seeds import check_seed
    from .scenegen import SceneGenConfig, scene_seed, write_scene

    ap = argparse.ArgumentParser(prog="make-scenes", formatter_class=HelpFormatter,
                                 description="Write procedurally generated indoor scenes (rooms, doors, corridors, "
                                             "furniture, textured walls and floors) as .glb files.")
    ap.add_argument("--out", required=True, help="output folder (created; make-scenes.json records its settings, "
                                                 "and a rerun must use the same ones)")
    ap.add_argument("--count", type=int, required=True, help="number of scenes")
    ap.add_argument("--seed", type=int, default=0, help="scene i depends on (seed, i) only")
    ap.add_argument("--subdivide", type=int, default=0, help="split each triangle in 4 this many times (benchmarks)")
    ap.add_argument("--texture-px", type=int, default=128, help="texture side in pixels")
    args = ap.parse_args(argv)
    if args.count <= 0:
        raise ValueError(f"--count must be positive, got {args.count}")
    if not 0 <= args.subdivide <= 6:
        raise ValueError(f"--subdivide must be in 0..6, got {args.subdivide}")
    if args.texture_px < 8:
        raise ValueError(f"--texture-px must be >= 8, got {args.texture_px}")
    check_seed(args.seed)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a file, not a folder")
    settings = {"seed": args.seed, "texture_px": args.texture_px, "subdivide": args.subdivide}
    record = os.path.join(args.out, MAKE_SCENES_RECORD)
    try:
        with open(record) as fh:
            made = json.load(fh)
    except (OSError, ValueError):
        made = None
    recorded = {k: made.get(k) for k in settings} if made is not None else settings
    if recorded != settings:
        raise ValueError(f"{args.out} holds scenes made with {json.dumps(recorded)}: "
                         "use the same settings (more --count adds scenes) or another --out")
    if made is None and glob.glob(os.path.join(args.out, "scene_*.glb")):
        print(f"make-scenes: warning: {args.out} holds scene_*.glb files of unknown settings; "
              f"scenes 0..{args.count - 1} are overwritten", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    with open(record, "w") as fh:   # what the folder's scenes are, so a rerun with other settings cannot mix them
        json.dump({**settings, "count": max(args.count, int((made or {}).get("count") or 0))}, fh)
    cfg = SceneGenConfig(texture_px=args.texture_px)
    total = 0
    for i in tqdm(range(args.count), desc="make-scenes", unit="scene"):
        total += write_scene(os.path.join(args.out, f"scene_{i:05d}.glb"), scene_seed(args.seed, i), cfg, args.subdivide)
    print(f"wrote {plural(args.count, 'scene')} ({total} triangles) to {args.out}")
    return 0


def main(argv=None) -> int:
    from cli_common import run_main
    return run_main(lambda: _make_scenes(argv), "make-scenes")
