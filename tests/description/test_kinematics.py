"""pidog_description: IK/FK, stand and lie poses against SunFounder's conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pidog_description import (
    LIE_POSE,
    MAX_REACH,
    MIN_REACH,
    STAND_FEET,
    STAND_POSE,
    UnreachableFootError,
    feet_to_joints,
    joints_to_feet,
    leg_fk,
    leg_ik,
)
from pidog_description.robot import SERVO_SIGNS
from pidog_description.servo import joint_rad_to_servo_deg, servo_deg_to_joint_rad


def sunfounder_servo_angles(coords_mm: list[tuple[float, float]]) -> list[float]:
    """SunFounder's legs_angle_calculation, transcribed from DESIGN.md §6 (degrees, mirrored)."""
    leg_len, foot_len = 42.0, 76.0
    out: list[float] = []
    for i, (y, z) in enumerate(coords_mm):
        u = math.sqrt(y * y + z * z)
        beta = math.degrees(math.acos((foot_len**2 + leg_len**2 - u * u) / (2 * foot_len * leg_len)))
        alpha = math.degrees(
            math.atan2(y, z) + math.acos((leg_len**2 + u * u - foot_len**2) / (2 * leg_len * u))
        )
        foot = beta - 90.0
        if i % 2:
            alpha, foot = -alpha, -foot
        out += [alpha, foot]
    return out


def test_fk_inverts_ik_across_the_reachable_workspace() -> None:
    rng = np.random.default_rng(0)
    radii, angles = [], []
    for _ in range(2000):
        radius = rng.uniform(MIN_REACH + 1e-4, MAX_REACH - 1e-4)
        angle = rng.uniform(-np.pi / 2, np.pi / 2)  # below the hip, any fore/aft angle
        y, z = radius * np.sin(angle), radius * np.cos(angle)
        hip, knee = leg_ik(y, z)
        assert leg_fk(hip, knee) == pytest.approx((y, z), abs=1e-9)
        # And the IK is SunFounder's (an independent transcription), not just FK's inverse.
        ours = joint_rad_to_servo_deg(np.array([hip, knee] * 4))[:2]
        theirs = sunfounder_servo_angles([(y * 1000.0, z * 1000.0)] * 4)[:2]
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
        radii.append(radius)
        angles.append(angle)
    # The samples did cover the workspace: both reach limits and both fore/aft extremes.
    assert min(radii) - MIN_REACH < 1e-3 and MAX_REACH - max(radii) < 1e-3
    assert min(angles) < -1.4 and max(angles) > 1.4


def test_stand_pose_reproduces_sunfounder_stand_angles() -> None:
    expected = sunfounder_servo_angles([(-15, 95), (-15, 95), (5, 90), (5, 90)])
    np.testing.assert_allclose(joint_rad_to_servo_deg(STAND_POSE), expected, atol=1e-9)
    # Spot values so a change to the shared formula itself is caught too.
    np.testing.assert_allclose(
        joint_rad_to_servo_deg(STAND_POSE)[:4], [40.61, 15.54, -40.61, -15.54], atol=0.01
    )


def test_stand_feet_round_trip() -> None:
    feet = joints_to_feet(STAND_POSE) * 1000.0
    np.testing.assert_allclose(feet, [[-15, 95], [-15, 95], [5, 90], [5, 90]], atol=1e-6)


@pytest.mark.parametrize("target", [(0.0, 0.2), (0.0, 0.01), (0.15, 0.0), (float("nan"), 0.05)])
def test_unreachable_foot_target_raises_a_clear_error(target: tuple[float, float]) -> None:
    with pytest.raises(UnreachableFootError, match="reaches only"):
        leg_ik(*target)
    with pytest.raises(UnreachableFootError):
        feet_to_joints([target] * 4)


def test_a_batch_of_feet_solves_each_robot_and_names_the_one_unreachable_target() -> None:
    rng = np.random.default_rng(1)
    feet = STAND_FEET + rng.uniform(-0.02, 0.02, size=(16, 4, 2))  # 16 robots' four feet
    q = feet_to_joints(feet)
    assert q.shape == (16, 8)
    for k in range(16):
        np.testing.assert_array_equal(q[k], feet_to_joints(feet[k]))
    feet[9, 2] = (0.0, 0.2)  # one robot's left hind foot out of reach
    with pytest.raises(UnreachableFootError, match=r"y=0.0000 m, z=0.2000 m"):
        feet_to_joints(feet)


def test_lie_pose_maps_to_sunfounder_lie_degrees() -> None:
    lie_deg = [45, -45, -45, 45, 45, -45, -45, 45]
    np.testing.assert_allclose(joint_rad_to_servo_deg(LIE_POSE), lie_deg, atol=1e-12)
    # In our unmirrored convention every leg has the same shape when lying.
    np.testing.assert_allclose(LIE_POSE.reshape(4, 2), [[np.pi / 4, -np.pi / 4]] * 4)


def test_ruler_pose_is_all_zero_servo_degrees() -> None:
    # SunFounder's calibration ruler: upper leg straight down, lower leg at 90 deg = all zeros.
    np.testing.assert_allclose(joint_rad_to_servo_deg(np.zeros(8)), np.zeros(8), atol=1e-12)
    y, z = leg_fk(0.0, 0.0)
    assert (y, z) == pytest.approx((-0.076, 0.042), abs=1e-12)


def test_right_side_servos_are_mirrored() -> None:
    q = np.deg2rad([10, 20, 10, 20, 30, -5, 30, -5])
    deg = joint_rad_to_servo_deg(q)
    np.testing.assert_allclose(deg, [10, 20, -10, -20, 30, -5, -30, 5])
    np.testing.assert_array_equal(SERVO_SIGNS, [1, 1, -1, -1, 1, 1, -1, -1])


def test_degrees_radians_round_trip_with_calibration_offsets() -> None:
    offsets = np.array([3, -2, 0, 1.5, -7, 0, 4, -1.0])
    q = np.deg2rad(np.linspace(-60, 60, 8))
    np.testing.assert_allclose(
        servo_deg_to_joint_rad(joint_rad_to_servo_deg(q, offsets), offsets), q, atol=1e-12
    )
