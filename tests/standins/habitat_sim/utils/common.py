"""habitat_sim.utils.common quaternion helpers; coeffs are [x, y, z, w] as in habitat."""
import numpy as np


class quaternion:
    """Stands for numpy-quaternion's np.quaternion (w, x, y, z attributes)."""

    def __init__(self, w, x, y, z):
        self.w, self.x, self.y, self.z = float(w), float(x), float(y), float(z)

    def norm(self):
        return self.w ** 2 + self.x ** 2 + self.y ** 2 + self.z ** 2


def quat_from_coeffs(coeffs) -> quaternion:
    c = np.asarray(coeffs, float)
    if c.shape != (4,):
        raise ValueError("coeffs must be [x, y, z, w]")
    return quaternion(c[3], c[0], c[1], c[2])


def quat_to_coeffs(q: quaternion) -> np.ndarray:
    return np.array([q.x, q.y, q.z, q.w])


def quat_from_angle_axis(theta: float, axis: np.ndarray) -> quaternion:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    s = np.sin(theta / 2)
    return quaternion(np.cos(theta / 2), *(a * s))
