"""pidog-excite: bounded motions from the stand pose; refuses unless standing and level; /estop
stops it at once (the node as its own process, over DDS)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pidog_control.excitation import (
    BURST_REST_S,
    EXIT_ESTOP,
    EXIT_REFUSED,
    EXIT_TIPPED,
    FAST_SQUAT_DEPTHS_M,
    ROCK_DEPTHS_M,
    SNAP_DEPTHS_M,
    excitation_trajectory,
    standing_problems,
)
from pidog_description import STAND_POSE
from pidog_description.limits import clip_joint_targets
from pidog_description.robot import JOINT_LOWER, JOINT_UPPER
from pidog_description.spec import CONTROL_DT, seconds_to_steps
from pidog_description.topics import (
    ESTOP_TOPIC,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    STREAM_QOS,
)

LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
TILTED = np.array([np.cos(0.2), np.sin(0.2), 0.0, 0.0])  # 23° roll
TIPPED = np.array([np.cos(0.35), np.sin(0.35), 0.0, 0.0])  # 40° roll


def test_trajectory_is_bounded_and_starts_and_ends_standing() -> None:
    q, labels = excitation_trajectory()
    assert 20.0 < len(q) * CONTROL_DT < 40.0
    names = [name for _, name in labels]
    for part in ("slow_squat", "fast_squat_0", "pitch_rock_0", "lift_lf", "lift_rh", "step_in_place", "trot"):
        assert part in names
    # Every fast squat and pitch rock starts from rest: the targets held still (after the 0.2 s
    # blend into the rest) for longer than pidog-sysid's calm before a window, then moving.
    starts = {name: first for first, name in labels}
    still = seconds_to_steps(BURST_REST_S) - seconds_to_steps(0.2)
    bursts = [n for n in names if n.startswith(("fast_squat", "pitch_rock"))]
    assert len(bursts) == len(FAST_SQUAT_DEPTHS_M) + len(ROCK_DEPTHS_M)
    for name in bursts:
        s = starts[name]
        assert still > 20 and np.ptp(q[s - still : s + 1], axis=0).max() < 1e-12, name
        assert np.abs(q[s : s + 25] - q[s - 1]).max() > 0.01, name
    np.testing.assert_allclose(q[0], STAND_POSE)
    np.testing.assert_allclose(q[-1], STAND_POSE)
    assert np.all(q >= JOINT_LOWER - 1e-9) and np.all(q <= JOINT_UPPER + 1e-9)
    np.testing.assert_allclose(np.array([clip_joint_targets(x)[0] for x in q]), q, atol=1e-9)
    # Between two ticks the targets jump only where the squat snaps are meant to (into each
    # snap_down/snap_up), and no further than the stock gait's own steps; elsewhere, before the
    # gait, at most 0.1 rad.
    jump = np.abs(np.diff(q, axis=0)).max(axis=1)
    snaps = np.array([first for first, name in labels if name.startswith(("snap_down", "snap_up"))]) - 1
    gait = starts["step_in_place"]
    assert len(snaps) == 2 * len(SNAP_DEPTHS_M) and np.all(jump[snaps] > 0.15)
    assert jump[snaps].max() <= jump[gait:].max() + 1e-9 and jump.max() < 0.3
    assert np.delete(jump[:gait], snaps).max() < 0.1
    assert np.abs(q - STAND_POSE).max() < 0.8
    with pytest.raises(ValueError, match="duration_scale"):
        excitation_trajectory(0.0)


def test_readiness_checks() -> None:
    assert standing_problems(STAND_POSE, LEVEL, 0.15, 0.15) == []
    off = STAND_POSE.copy()
    off[3] += 0.5
    assert "not standing: joint 3" in standing_problems(off, LEVEL, 0.15, 0.15)[0]
    assert "IMU not level" in standing_problems(STAND_POSE, TILTED, 0.15, 0.15)[0]


def _sensors(probe, quat: np.ndarray, joints: np.ndarray):
    from sensor_msgs.msg import Imu, JointState

    from pidog_description.messages import imu_msg, joint_state_msg

    js = probe.node.create_publisher(JointState, JOINT_STATES_TOPIC, STREAM_QOS)
    imu = probe.node.create_publisher(Imu, IMU_TOPIC, STREAM_QOS)

    def publish() -> None:
        stamp = probe.node.get_clock().now().to_msg()
        js.publish(joint_state_msg(stamp, joints))
        imu.publish(imu_msg(stamp, quat, np.zeros(3), np.array([0.0, 0.0, 9.81])))

    probe.node.create_timer(CONTROL_DT, publish)


def _wait_exit(node, timeout: float, probe) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and node.alive():
        probe.spin_for(0.05)
    return node.proc.poll()


@pytest.mark.ros
@pytest.mark.parametrize(
    ("quat", "offset", "reason"), [(TILTED, 0.0, "IMU not level"), (LEVEL, 0.5, "not standing")]
)
def test_refuses_unless_standing_and_level(spawn_node, ros_probe, quat, offset, reason) -> None:
    from sensor_msgs.msg import JointState

    commands = []
    ros_probe.node.create_subscription(JointState, JOINT_COMMANDS_TOPIC, commands.append, STREAM_QOS)
    joints = STAND_POSE.copy()
    joints[0] += offset
    _sensors(ros_probe, quat, joints)
    node = spawn_node("pidog_control.excitation", {"duration_scale": 0.2})
    assert _wait_exit(node, 20.0, ros_probe) == EXIT_REFUSED, node.log()
    assert reason in node.log() and commands == []


@pytest.mark.ros
def test_estop_stops_it_at_once(spawn_node, ros_probe) -> None:
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    commands: list[float] = []
    ros_probe.node.create_subscription(
        JointState, JOINT_COMMANDS_TOPIC, lambda _m: commands.append(time.monotonic()), STREAM_QOS
    )
    estop = ros_probe.node.create_publisher(Bool, ESTOP_TOPIC, LATCHED_QOS)
    _sensors(ros_probe, LEVEL, STAND_POSE)
    node = spawn_node("pidog_control.excitation", {"duration_scale": 1.0})
    assert ros_probe.spin_until(lambda: len(commands) >= 10, 20.0), node.log()
    estop.publish(Bool(data=True))
    stopped_at = time.monotonic()
    assert _wait_exit(node, 5.0, ros_probe) == EXIT_ESTOP, node.log()
    ros_probe.spin_for(0.3)
    late = [t for t in commands if t > stopped_at + 0.2]  # delivery slack for messages in flight
    assert late == [], f"{len(late)} commands after /estop"
    assert "/estop: stopped" in node.log()


@pytest.mark.ros
def test_tipping_over_stops_it_but_the_routines_own_tilt_does_not(spawn_node, ros_probe) -> None:
    from sensor_msgs.msg import JointState

    commands: list[float] = []
    ros_probe.node.create_subscription(
        JointState, JOINT_COMMANDS_TOPIC, lambda _m: commands.append(time.monotonic()), STREAM_QOS
    )
    attitude = LEVEL.copy()  # what the IMU reports; changed in place below
    _sensors(ros_probe, attitude, STAND_POSE)
    node = spawn_node("pidog_control.excitation", {"duration_scale": 1.0})
    assert ros_probe.spin_until(lambda: len(commands) >= 10, 20.0), node.log()
    attitude[:] = TILTED  # 0.4 rad: inside tip_tolerance_rad (0.5)
    ros_probe.spin_for(1.0)
    assert node.alive(), node.log()
    attitude[:] = TIPPED
    tipped_at = time.monotonic()
    assert _wait_exit(node, 5.0, ros_probe) == EXIT_TIPPED, node.log()
    ros_probe.spin_for(0.3)
    late = [t for t in commands if t > tipped_at + 0.3]  # the IMU sample and commands in flight
    assert late == [], f"{len(late)} commands after tipping over"
    assert "tipping over: body tilted 0.70 rad" in node.log()
