"""The steering trot's geometry: opposite strides to turn in place, backward strides, arcs that
keep their curvature, and every target inside the joint limits and the policy's action range."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description import JOINT_LOWER, JOINT_UPPER, STAND_POSE
from pidog_description.gait import HIP_MARGIN_RAD, LEG_SIDES, TrotGait, TrotParams
from pidog_description.kinematics import STAND_FEET
from pidog_description.limits import clip_joint_targets
from pidog_description.spec import ACTION_SCALE, COMMAND_LIMITS

LEFT, RIGHT = LEG_SIDES > 0, LEG_SIDES < 0


@pytest.mark.parametrize("wz", [0.1, 0.3, 1.0, -0.2, -1.0])
def test_turning_in_place_strides_the_two_sides_in_opposite_directions(wz: float) -> None:
    stroke = TrotGait().step_lengths(vx=0.0, wz=wz)
    assert np.all(stroke[LEFT] == stroke[LEFT][0]) and np.all(stroke[RIGHT] == stroke[RIGHT][0])
    assert stroke[LEFT][0] == pytest.approx(-stroke[RIGHT][0])
    # Turning left (+wz): the left feet push the body backward, the right feet forward.
    assert np.sign(stroke[RIGHT][0]) == np.sign(wz) and abs(stroke[0]) > 0.005


def test_a_batch_of_commands_gives_each_robot_its_own_targets() -> None:
    """Demonstrations and evaluations run the trot for a batch of robots in one call: no row
    may borrow another's stroke (e.g. a cap shared across the batch)."""
    gait = TrotGait()
    rng = np.random.default_rng(3)
    phase, vx, wz = rng.uniform(0, 1, 64), rng.uniform(-0.15, 0.3, 64), rng.uniform(-1, 1, 64)
    vx[:4] = wz[:4] = 0.0  # robots standing in the same batch
    batch = gait.joint_targets(phase, vx, wz)
    assert batch.shape == (64, 8)
    for k in range(64):
        one = gait.joint_targets(float(phase[k]), float(vx[k]), float(wz[k]))
        np.testing.assert_array_equal(batch[k], one)


@pytest.mark.parametrize("vx", [-0.05, -0.1, -0.15])
def test_backward_commands_give_backward_strides(vx: float) -> None:
    stroke = TrotGait().step_lengths(vx=vx, wz=0.0)
    assert np.all(stroke < 0) and np.allclose(stroke, stroke[0])


def test_forward_arcs_stride_further_outside_and_keep_their_curvature_when_capped() -> None:
    gait = TrotGait()
    for vx, wz in [(0.1, 0.2), (0.3, 0.3), (0.3, -1.0), (-0.15, 0.5)]:
        stroke = gait.step_lengths(vx=vx, wz=wz)
        outside = RIGHT if wz > 0 else LEFT
        assert np.all(stroke[outside] > stroke[~outside])
        # Uncapped, the turn part is a fixed fraction of the forward part; a cap scales both.
        p = gait.params
        forward = vx * (p.speed_gain if vx >= 0 else p.back_speed_gain)
        turn = np.clip(
            p.turn_gain * wz * 0.049, -p.max_turn_step_length / 0.24, p.max_turn_step_length / 0.24
        )
        mean, half_diff = stroke.mean(), (stroke[RIGHT][0] - stroke[LEFT][0]) / 2
        assert half_diff / mean == pytest.approx(turn / forward, rel=1e-6)
        assert np.all(stroke <= p.max_step_length + 1e-12) and np.all(
            stroke >= -p.max_back_step_length - 1e-12
        )


@pytest.mark.parametrize("step_height", [None, 0.0, 0.04])  # default, standing, the teleop node's maximum
def test_every_command_and_phase_stays_inside_the_joint_limits(
    step_height: float | None,
) -> None:
    gait = TrotGait()
    vxs = np.linspace(*COMMAND_LIMITS["vx"], 10)
    wzs = np.linspace(*COMMAND_LIMITS["wz"], 9)
    worst_hind_hip = 0.0
    for vx in [*vxs, 2.0, -2.0]:  # far outside the limits too: the caps still hold
        for wz in [*wzs, 5.0]:
            for phase in np.linspace(0.0, 1.0, 41):
                q = gait.joint_targets(phase, float(vx), float(wz), step_height=step_height)
                assert np.all((q >= JOINT_LOWER) & (q <= JOINT_UPPER)), (vx, wz, phase, np.rad2deg(q))
                # ... and inside the geometric limits hw_node and sim_node clip to: the robot
                # walks the pose the gait asked for, at every step height up to the maximum.
                assert not clip_joint_targets(q)[1].any(), (vx, wz, phase, np.rad2deg(q))
                if step_height is None:  # the demonstrations' gait: representable without clipping
                    action = (q - STAND_POSE) / ACTION_SCALE
                    assert np.all(np.abs(action) <= 1.0), (vx, wz, phase, action)
                worst_hind_hip = max(worst_hind_hip, float(np.max(q[[4, 6]])))
    # Lifting a hind foot swings its hip toward the servo's end: the gait keeps the margin.
    assert worst_hind_hip <= JOINT_UPPER[4] - HIP_MARGIN_RAD + np.deg2rad(0.1), np.rad2deg(worst_hind_hip)


def test_zero_command_without_lift_is_the_stand_pose() -> None:
    gait = TrotGait()
    for phase in np.linspace(0, 1, 9):
        np.testing.assert_allclose(gait.foot_targets(phase, 0.0, 0.0, step_height=0.0), STAND_FEET)
        np.testing.assert_allclose(gait.joint_targets(phase, 0.0, 0.0, step_height=0.0), STAND_POSE)


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="max_turn_step_length"):
        TrotGait(TrotParams(max_turn_step_length=0.0))
    with pytest.raises(ValueError, match="swing_fraction"):
        TrotGait(TrotParams(swing_fraction=1.0))
