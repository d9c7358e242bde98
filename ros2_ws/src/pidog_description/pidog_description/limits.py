"""Joint limits from the PiDog's geometry, and the one function that clips joint targets to them.

``JOINT_LOWER``/``JOINT_UPPER`` (robot.py) are the servos' travel (+-90 degrees). Inside it the
legs can still hit themselves or each other, so commanded targets are clipped further:

- knee: a fully folded knee (-90 degrees: lower leg lying on the upper leg) would put the foot
  through the upper leg. The fold stops where the foot sphere touches the upper leg:
  ``asin((upper leg radius + foot radius) / lower leg length)`` = 10.6 degrees short of -90.
- hip: each leg swings in a plane outboard of the torso (hips 49 mm off the centre line, torso
  35 mm, upper leg 6 mm), so no hip angle puts a leg through the body; the servo travel is the
  hip limit (checked at import below, so a geometry change that breaks this fails loudly).
- the other leg: front and hind legs of one side share a plane and can reach each other
  (118 mm of leg each, hips 117 mm apart). That is a limit on a pair of legs, not on one joint:
  ``clip_joint_targets`` moves such a pair back toward the stand pose until every link of one
  clears every link of the other by the links' radii plus ``LEG_CLEARANCE``.

sim_node and hw_node both pass every /joint_commands message through ``clip_joint_targets``, so
an out-of-range command gives the same clipped pose in sim and on the robot (clip, never
reject-and-freeze: a robot frozen mid-swing falls over).
"""

from __future__ import annotations

import numpy as np

from .kinematics import STAND_POSE
from .robot import (
    BODY_LENGTH,
    BODY_WIDTH,
    FOOT_RADIUS,
    JOINT_LOWER,
    JOINT_UPPER,
    KNEE_INDICES,
    LOWER_LEG_LENGTH,
    LOWER_LEG_RADIUS,
    N_JOINTS,
    TORSO_HALF_WIDTH,
    UPPER_LEG_LENGTH,
    UPPER_LEG_RADIUS,
)

KNEE_FOLD_MIN: float = float(-np.pi / 2 + np.arcsin((UPPER_LEG_RADIUS + FOOT_RADIUS) / LOWER_LEG_LENGTH))
"""Most folded knee angle (rad, about -79.4 degrees): the foot touches the upper leg there."""

LEG_CLEARANCE: float = 0.003
"""Extra gap (m) kept between the links of the front and hind leg of one side."""

if BODY_WIDTH / 2 - UPPER_LEG_RADIUS <= TORSO_HALF_WIDTH:
    raise ImportError("pidog_description geometry: the legs no longer clear the torso; hip limits needed")

SAFE_JOINT_LOWER: np.ndarray = JOINT_LOWER.copy()
SAFE_JOINT_LOWER[KNEE_INDICES] = np.maximum(JOINT_LOWER[KNEE_INDICES], KNEE_FOLD_MIN)
SAFE_JOINT_UPPER: np.ndarray = JOINT_UPPER.copy()
"""Per-joint limits (rad, JOINT_NAMES order) every commanded target is clipped to."""

_HIP_X = np.array([BODY_LENGTH / 2, -BODY_LENGTH / 2])  # front, hind hip along the body x axis
_BISECTION_STEPS = 12  # 1/4096 of the way: far below a servo tick


def _leg_links(hip_x: float, hip: float, knee: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hip, knee and foot points (body x forward, z up; metres) of one leg in its plane."""
    lower = hip + knee - np.pi / 2
    # Leg-plane y points toward the tail (-x) and z down (-z): see kinematics.leg_fk.
    knee_pt = np.array([hip_x - UPPER_LEG_LENGTH * np.sin(hip), -UPPER_LEG_LENGTH * np.cos(hip)])
    foot_pt = knee_pt + np.array([-LOWER_LEG_LENGTH * np.sin(lower), -LOWER_LEG_LENGTH * np.cos(lower)])
    return np.array([hip_x, 0.0]), knee_pt, foot_pt


def _point_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def _segments_distance(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> float:
    def cross(u: np.ndarray, v: np.ndarray) -> float:
        return float(u[0] * v[1] - u[1] * v[0])

    d1, d2 = cross(b1 - b0, a0 - b0), cross(b1 - b0, a1 - b0)
    d3, d4 = cross(a1 - a0, b0 - a0), cross(a1 - a0, b1 - a0)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return 0.0  # the segments cross
    return min(
        _point_segment(a0, b0, b1),
        _point_segment(a1, b0, b1),
        _point_segment(b0, a0, a1),
        _point_segment(b1, a0, a1),
    )


def side_clearance(front: np.ndarray, hind: np.ndarray) -> float:
    """Smallest gap (m) between any link of a front leg and any link of the hind leg on the
    same side, radii subtracted; negative means they intersect. ``front``/``hind`` = (hip, knee)."""
    fh, fk, ff = _leg_links(_HIP_X[0], *front)
    hh, hk, hf = _leg_links(_HIP_X[1], *hind)
    upper, lower = UPPER_LEG_RADIUS, max(LOWER_LEG_RADIUS, FOOT_RADIUS)  # the foot ends the lower leg
    gaps = [
        _segments_distance(fh, fk, hh, hk) - 2 * upper,
        _segments_distance(fh, fk, hk, hf) - upper - lower,
        _segments_distance(fk, ff, hh, hk) - lower - upper,
        _segments_distance(fk, ff, hk, hf) - 2 * lower,
    ]
    return min(gaps)


# Joint indices (front hip, front knee, hind hip, hind knee) of the left and right side.
_SIDES = ((0, 1, 4, 5), (2, 3, 6, 7))


def clip_joint_targets(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip 8 finite joint targets (rad) to what the PiDog can take without hitting itself.

    Returns the clipped targets and a boolean mask of the joints that were changed. Each joint
    is clipped to ``SAFE_JOINT_LOWER``/``SAFE_JOINT_UPPER``; then, if the front and hind leg of
    one side would touch, both legs of that side move back along the straight line toward the
    stand pose (which is clear) to the last point that keeps ``LEG_CLEARANCE``. Non-finite
    values are the caller's to refuse (``messages.joint_command_from_msg`` does).
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (N_JOINTS,):
        raise ValueError(f"joint targets must have shape ({N_JOINTS},), got {q.shape}")
    out = np.clip(q, SAFE_JOINT_LOWER, SAFE_JOINT_UPPER)
    for side in _SIDES:
        idx = list(side)
        wanted = out[idx].copy()

        def clear(s: float, idx: list[int] = idx, wanted: np.ndarray = wanted) -> bool:
            pose = STAND_POSE[idx] + s * (wanted - STAND_POSE[idx])
            return side_clearance(pose[:2], pose[2:]) >= LEG_CLEARANCE

        if clear(1.0):
            continue
        lo, hi = 0.0, 1.0  # clear at lo (the stand pose), touching at hi
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if clear(mid) else (lo, mid)
        out[idx] = STAND_POSE[idx] + lo * (wanted - STAND_POSE[idx])
    return out, ~np.isclose(out, q, rtol=0.0, atol=1e-12)
