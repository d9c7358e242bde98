"""Quaternion helpers (w, x, y, z; body -> world, REP-103) shared by the sim and the IMU filter.

Every function works on one quaternion (shape (4,)) or a batch (shape (..., 4)): the batched
simulator calls them once per control step for all its robots.
"""

from __future__ import annotations

import numpy as np


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """Quaternion of a rotation vector (axis * angle, rad)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    tiny = angle < 1e-12
    # sin(a/2)/a -> 1/2 as a -> 0; the guard avoids 0/0 without changing larger angles.
    scale = np.where(tiny, 0.5, np.sin(angle / 2) / np.where(tiny, 1.0, angle))
    return np.concatenate([np.cos(angle / 2), scale * rotvec], axis=-1)


def quat_from_roll_pitch(roll: float | np.ndarray, pitch: float | np.ndarray) -> np.ndarray:
    """Body -> world quaternion for yaw 0: R = Ry(pitch) Rx(roll) (shape (..., 4) for arrays)."""
    roll, pitch = np.asarray(roll, dtype=np.float64), np.asarray(pitch, dtype=np.float64)
    zero = np.zeros_like(roll + pitch)
    qx = np.stack([np.cos(roll / 2) + zero, np.sin(roll / 2) + zero, zero, zero], axis=-1)
    qy = np.stack([np.cos(pitch / 2) + zero, zero, np.sin(pitch / 2) + zero, zero], axis=-1)
    return quat_multiply(qy, qx)


def up_in_body(q: np.ndarray) -> np.ndarray:
    """World +z expressed in body axes (third row of R(q))."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)


def tilt_from_up(up: np.ndarray) -> float | np.ndarray:
    """Angle (rad) between the body's up axis and the vertical, from ``up_in_body``'s result:
    0 level, pi upside down (a float, or an array for a batch)."""
    tilt = np.arccos(np.clip(np.asarray(up)[..., 2], -1.0, 1.0))
    return float(tilt) if np.ndim(tilt) == 0 else tilt


def tilt_from_quaternion(q: np.ndarray) -> float | np.ndarray:
    """``tilt_from_up`` of a body -> world quaternion (w, x, y, z)."""
    return tilt_from_up(up_in_body(q))


def yaw_from_quaternion(q: np.ndarray) -> float | np.ndarray:
    """Heading (rad) of a body -> world quaternion (a float, or an array for a batch)."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return float(yaw) if np.ndim(yaw) == 0 else yaw
