"""Geometric joint limits (pidog_description.limits): what they allow and what they clip."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description.gait import TrotGait
from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.limits import KNEE_FOLD_MIN, LEG_CLEARANCE, clip_joint_targets, side_clearance


def test_knee_fold_limit_is_where_the_foot_touches_the_upper_leg() -> None:
    # asin((6 mm upper-leg radius + 8 mm foot radius) / 76 mm lower leg) short of -90 degrees.
    assert np.degrees(KNEE_FOLD_MIN) == pytest.approx(-90.0 + np.degrees(np.arcsin(0.014 / 0.076)))


@pytest.mark.parametrize("pose", [STAND_POSE, LIE_POSE], ids=["stand", "lie"])
def test_the_robots_own_poses_are_untouched(pose: np.ndarray) -> None:
    clipped, changed = clip_joint_targets(pose)
    assert not changed.any()
    np.testing.assert_array_equal(clipped, pose)


def test_the_trot_is_untouched_at_its_normal_step_height() -> None:
    gait = TrotGait()
    for phase in np.linspace(0.0, 1.0, 50, endpoint=False):
        for vx in (-0.1, 0.0, 0.3):
            q = gait.joint_targets(phase, vx, 0.0)
            assert not clip_joint_targets(q)[1].any(), (phase, vx)


def test_colliding_legs_are_moved_back_until_they_clear() -> None:
    # Left front leg swung back, left hind leg swung forward, knees straight: they would cross.
    q = np.radians([85.0, 80.0, 0.0, 0.0, -85.0, 80.0, 0.0, 0.0])
    assert side_clearance(q[0:2], q[4:6]) < 0
    clipped, changed = clip_joint_targets(q)
    assert changed[[0, 1, 4, 5]].all() and not changed[[2, 3, 6, 7]].any()
    assert side_clearance(clipped[0:2], clipped[4:6]) == pytest.approx(LEG_CLEARANCE, abs=1e-3)
    # Clipped toward the stand pose, not somewhere else.
    direction = (q - STAND_POSE)[[0, 1, 4, 5]]
    moved = (clipped - STAND_POSE)[[0, 1, 4, 5]]
    np.testing.assert_allclose(moved / direction, (moved / direction)[0])
