"""Quaternion helpers (w, x, y, z; body -> world, REP-103) shared by the sim and the IMU filter."""

from __future__ import annotations

import numpy as np


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """Quaternion of a rotation vector (axis * angle, rad)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * np.asarray(rotvec) / angle])


def quat_from_roll_pitch(roll: float, pitch: float) -> np.ndarray:
    """Body -> world quaternion for yaw 0: R = Ry(pitch) Rx(roll)."""
    qx = np.array([np.cos(roll / 2), np.sin(roll / 2), 0.0, 0.0])
    qy = np.array([np.cos(pitch / 2), 0.0, np.sin(pitch / 2), 0.0])
    return quat_multiply(qy, qx)


def up_in_body(q: np.ndarray) -> np.ndarray:
    """World +z expressed in body axes (third row of R(q))."""
    w, x, y, z = (float(v) for v in q)
    return np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])


def yaw_from_quaternion(q: np.ndarray) -> float:
    """Heading (rad) of a body -> world quaternion."""
    w, x, y, z = (float(v) for v in q)
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
