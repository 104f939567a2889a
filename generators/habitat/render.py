"""Headless pinhole RGB rendering of a SceneMesh with moderngl (EGL; Mesa llvmpipe on CPU machines).

One vertex buffer and one index buffer per scene; faces are grouped in 4 m floor blocks x texture so each
frame draws only the blocks inside the view frustum. Shading is habitat-like: the texture (or vertex
colour) as is ("flat", the default: habitat-sim renders scans unlit, their lighting is baked into the
textures) or with a simple two-sided lambert term ("lambert", which gives untextured rooms depth cues).
"""
from __future__ import annotations

import math
import os

import numpy as np

from .scenes import SceneMesh

_VERT = """
#version 330
uniform mat4 mvp;
in vec3 in_pos; in vec3 in_nrm; in vec2 in_uv; in vec4 in_col;
out vec3 v_nrm; out vec2 v_uv; out vec4 v_col;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); v_nrm = in_nrm; v_uv = in_uv; v_col = in_col; }
"""
_FRAG = """
#version 330
uniform sampler2D tex; uniform vec3 light_dir; uniform float ambient;
in vec3 v_nrm; in vec2 v_uv; in vec4 v_col;
out vec4 f_color;
void main() {
    vec4 c = texture(tex, v_uv) * v_col;
    float s = ambient + (1.0 - ambient) * abs(dot(normalize(v_nrm), light_dir));
    f_color = vec4(c.rgb * s, 1.0);
}
"""
BLOCK = 4.0   # metres, side of the floor blocks used for frustum culling


def perspective(hfov_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL projection for a horizontal field of view (habitat's CameraSensorSpec.hfov)."""
    tx = math.tan(math.radians(hfov_deg) / 2)
    ty = tx / aspect
    return np.array([[1 / tx, 0, 0, 0], [0, 1 / ty, 0, 0],
                     [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)], [0, 0, -1, 0]])


def view_matrix(eye: np.ndarray, yaw_deg: float) -> np.ndarray:
    """World -> camera for a level camera at `eye` facing yaw (habitat: 0 faces -z, positive turns left)."""
    a = math.radians(yaw_deg)
    f = np.array([-math.sin(a), 0.0, -math.cos(a)])
    r = np.array([math.cos(a), 0.0, -math.sin(a)])
    u = np.array([0.0, 1.0, 0.0])
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = r, u, -f
    m[:3, 3] = -m[:3, :3] @ np.asarray(eye, float)
    return m


def frustum_planes(mvp: np.ndarray) -> np.ndarray:
    """(6, 4) planes a.x + d >= 0 inside (Gribb-Hartmann)."""
    return np.stack([mvp[3] + mvp[0], mvp[3] - mvp[0], mvp[3] + mvp[1], mvp[3] - mvp[1], mvp[3] + mvp[2], mvp[3] - mvp[2]])


class Renderer:
    """Renders RGB uint8 (H, W, 3) frames of the loaded scene from (eye, yaw)."""

    def __init__(self, width: int, height: int, hfov: float, near: float = 0.01, far: float = 1000.0,
                 shading: str = "flat"):
        import moderngl

        if shading not in ("lambert", "flat"):
            raise ValueError(f"shading must be 'lambert' or 'flat', got '{shading}'")
        self.mgl = moderngl
        self.width, self.height = int(width), int(height)
        self.proj = perspective(hfov, width / height, near, far)
        # llvmpipe (the CPU GL of machines without a GPU) rasterises on one thread per core by default; at
        # 128x128 they render no faster than the calling thread alone and cost ~15% more CPU (same pixels),
        # CPU a gen worker's store writer or the next worker needs (bench/generate.py). Read when the first
        # context of the process is made; a user's own setting wins.
        os.environ.setdefault("LP_NUM_THREADS", "0")
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG)
        self.prog["light_dir"].value = tuple(np.array([0.4, 0.8, 0.3]) / np.linalg.norm([0.4, 0.8, 0.3]))
        self.prog["ambient"].value = 0.5 if shading == "lambert" else 1.0
        self.fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer((self.width, self.height), 4)],
                                        depth_attachment=self.ctx.depth_renderbuffer((self.width, self.height)))
        self.white = self.ctx.texture((1, 1), 4, b"\xff\xff\xff\xff")
        self._scene = []   # GL objects of the loaded scene

    def load(self, mesh: SceneMesh) -> None:
        """Upload a scene (replacing the previous one)."""
        self.unload()
        ctx = self.ctx
        faces, parts, self.part_lo, self.part_hi = self._blocks(mesh)
        vert = np.empty(len(mesh.positions), dtype=[("p", "f4", 3), ("n", "f4", 3), ("t", "f4", 2), ("c", "u1", 4)])
        vert["p"], vert["n"], vert["t"], vert["c"] = mesh.positions, mesh.normals, mesh.uvs, mesh.colors
        self.vbo = ctx.buffer(vert.tobytes())
        self.ibo = ctx.buffer(np.ascontiguousarray(faces, np.uint32).tobytes())
        self.vao = ctx.vertex_array(self.prog, [(self.vbo, "3f 3f 2f 4f1", "in_pos", "in_nrm", "in_uv", "in_col")],
                                    index_buffer=self.ibo, index_element_size=4)
        self.textures = []
        for img in mesh.textures:
            img = np.ascontiguousarray(np.flipud(img))          # GL rows start at v = 0 (bottom)
            tex = ctx.texture((img.shape[1], img.shape[0]), 4, img.tobytes())
            tex.build_mipmaps()
            tex.filter = (self.mgl.LINEAR_MIPMAP_LINEAR, self.mgl.LINEAR)
            self.textures.append(tex)
        self.parts = parts
        self._scene = [self.vbo, self.ibo, self.vao, *self.textures]

    @staticmethod
    def _blocks(mesh: SceneMesh):
        """Reorder faces by (floor block, texture): faces, parts [(first, count, texture)], their boxes lo, hi (P, 3)."""
        tex_of_face = np.empty(mesh.triangles, np.int64)
        for first, count, tex in mesh.parts:
            tex_of_face[first:first + count] = tex
        tri = mesh.positions[mesh.faces.astype(np.int64)]               # (F, 3, 3)
        cent = tri.mean(1)
        bx = np.floor(cent[:, 0] / BLOCK).astype(np.int64)
        bz = np.floor(cent[:, 2] / BLOCK).astype(np.int64)
        bx -= bx.min()
        bz -= bz.min()
        key = (bx * (bz.max() + 1) + bz) * (len(mesh.textures) + 1) + (tex_of_face + 1)
        order = np.argsort(key, kind="stable")
        key, tri = key[order], tri[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], len(key)]
        lo = np.minimum.reduceat(tri.min(1), starts)
        hi = np.maximum.reduceat(tri.max(1), starts)
        texs = tex_of_face[order][starts]
        parts = [(int(s), int(e - s), int(t)) for s, e, t in zip(starts, ends, texs)]
        return mesh.faces[order], parts, lo, hi

    def unload(self) -> None:
        for obj in self._scene:
            obj.release()
        self._scene, self.parts = [], []

    def render(self, eye: np.ndarray, yaw_deg: float) -> np.ndarray:
        mvp = self.proj @ view_matrix(eye, yaw_deg)
        self.prog["mvp"].write(mvp.T.astype("f4").tobytes())
        planes = frustum_planes(mvp)
        self.fbo.use()
        self.ctx.enable(self.mgl.DEPTH_TEST)
        self.fbo.clear(0.0, 0.0, 0.0, 1.0)
        # A block is drawn unless its box corner farthest along some plane's normal is outside that plane.
        pv = np.where(planes[None, :, :3] >= 0, self.part_hi[:, None, :], self.part_lo[:, None, :])   # (P, 6, 3)
        visible = ((pv * planes[None, :, :3]).sum(2) + planes[None, :, 3] >= 0).all(1)
        for k in np.flatnonzero(visible):
            first, count, tex = self.parts[k]
            (self.textures[tex] if tex >= 0 else self.white).use(0)
            self.vao.render(self.mgl.TRIANGLES, vertices=count * 3, first=first * 3)
        data = self.fbo.read(components=3, alignment=1)
        return np.flipud(np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)).copy()

    def close(self) -> None:
        self.unload()
        for obj in (self.white, self.fbo, self.prog):
            obj.release()
        self.ctx.release()
