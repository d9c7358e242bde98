"""Planar leg kinematics with SunFounder's geometry (DESIGN.md §6), in metres and radians.

Leg plane coordinates follow SunFounder: ``y`` points toward the tail and ``z`` points down
from the hip. Joint angles follow the convention in ``robot.py`` (hip = alpha,
knee = beta - pi/2, not mirrored).
"""

from __future__ import annotations

import numpy as np

from .robot import (
    LIE_POSE_SERVO_DEG,
    LOWER_LEG_LENGTH,
    N_JOINTS,
    SERVO_SIGNS,
    STAND_FOOT_FRONT_MM,
    STAND_FOOT_HIND_MM,
    UPPER_LEG_LENGTH,
)

_L = UPPER_LEG_LENGTH
_F = LOWER_LEG_LENGTH
MIN_REACH: float = abs(_F - _L)
MAX_REACH: float = _F + _L


class UnreachableFootError(ValueError):
    """A foot target lies outside the annulus the two-link leg can reach."""


def legs_ik(y: np.ndarray | float, z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(hip, knee) in radians that put feet at (y, z) metres in the leg plane, for arrays of
    targets (broadcast together; a batch of robots' legs in one call)."""
    y, z = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64))
    u = np.hypot(y, z)
    bad = ~np.isfinite(u) | (u > MAX_REACH + 1e-9) | (u < MIN_REACH - 1e-9)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        yi, zi, ui = y.flat[i], z.flat[i], u.flat[i]
        raise UnreachableFootError(
            f"foot target (y={yi:.4f} m, z={zi:.4f} m) is {ui:.4f} m from the hip; "
            f"the leg reaches only {MIN_REACH:.3f}..{MAX_REACH:.3f} m"
        )
    cos_beta = np.clip((_F**2 + _L**2 - u**2) / (2 * _F * _L), -1.0, 1.0)
    beta = np.arccos(cos_beta)
    cos_a2 = np.clip((_L**2 + u**2 - _F**2) / (2 * _L * u), -1.0, 1.0)
    alpha = np.arctan2(y, z) + np.arccos(cos_a2)
    return alpha, beta - np.pi / 2


def leg_ik(y: float, z: float) -> tuple[float, float]:
    """Return (hip, knee) in radians that put the foot at (y, z) metres in the leg plane."""
    hip, knee = legs_ik(y, z)
    return float(hip), float(knee)


def leg_fk(hip: float, knee: float) -> tuple[float, float]:
    """Return the foot (y, z) in metres for joint angles (hip, knee) in radians."""
    # The upper leg points `hip` from straight down toward the tail; the lower leg sits at
    # interior angle beta = knee + pi/2 to it, bent so the knee is behind the hip-foot line.
    lower = hip + knee - np.pi / 2
    y = _L * np.sin(hip) + _F * np.sin(lower)
    z = _L * np.cos(hip) + _F * np.cos(lower)
    return float(y), float(z)


def feet_to_joints(feet: np.ndarray) -> np.ndarray:
    """Four (y, z) foot targets in LEG_NAMES order -> 8 joint angles in JOINT_NAMES order.

    ``feet`` is (4, 2) (or its 8 values flat) for one robot, or (..., 4, 2) for a batch ->
    (..., 8).
    """
    feet = np.asarray(feet, dtype=np.float64)
    if feet.ndim < 3:
        feet = feet.reshape(4, 2)
    hip, knee = legs_ik(feet[..., 0], feet[..., 1])
    return np.stack([hip, knee], axis=-1).reshape(*feet.shape[:-2], N_JOINTS)


def joints_to_feet(q: np.ndarray) -> np.ndarray:
    """8 joint angles -> four (y, z) foot positions in metres."""
    q = np.asarray(q, dtype=np.float64).reshape(4, 2)
    return np.array([leg_fk(hip, knee) for hip, knee in q])


def _mm(p: tuple[float, float]) -> tuple[float, float]:
    return p[0] / 1000.0, p[1] / 1000.0


STAND_FEET: np.ndarray = np.array(
    [_mm(STAND_FOOT_FRONT_MM), _mm(STAND_FOOT_FRONT_MM), _mm(STAND_FOOT_HIND_MM), _mm(STAND_FOOT_HIND_MM)]
)
"""Stand foot positions (y, z) in metres per leg (SunFounder's barycenter -15 mm, height 95 mm)."""

STAND_POSE: np.ndarray = feet_to_joints(STAND_FEET)
"""Stand pose in joint radians (JOINT_NAMES order): the action origin of the policy."""

LIE_POSE: np.ndarray = np.deg2rad(np.asarray(LIE_POSE_SERVO_DEG, dtype=np.float64)) * SERVO_SIGNS
"""SunFounder's lie pose in our joint radians."""
