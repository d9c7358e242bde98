"""sim_node in its own process: topics, rates, commands by name, estop, reset, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from pidog_description import JOINT_NAMES, STAND_POSE
from pidog_description.messages import joint_state_msg
from pidog_description.node_runner import LATCHED_QOS

pytestmark = pytest.mark.ros


class Topics:
    def __init__(self, probe) -> None:
        self.joint_states: list[tuple[float, JointState]] = []
        self.imu: list[tuple[float, Imu]] = []
        self.odom: list[Odometry] = []
        self.clock: list[Clock] = []
        node = probe.node
        node.create_subscription(
            JointState, "/joint_states", lambda m: self.joint_states.append((time.monotonic(), m)), 50
        )
        node.create_subscription(Imu, "/imu/data", lambda m: self.imu.append((time.monotonic(), m)), 50)
        node.create_subscription(Odometry, "/sim/ground_truth/odom", self.odom.append, 50)
        node.create_subscription(Clock, "/clock", self.clock.append, 50)


def reset_sim(probe) -> None:
    """Call /sim/reset and wait for its success."""
    client = probe.node.create_client(Trigger, "/sim/reset")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert probe.spin_until(future.done, 10) and future.result().success


def rate(samples: list[tuple[float, object]], window: float) -> float:
    end = samples[-1][0]
    return sum(1 for t, _ in samples if t > end - window) / window


def test_sim_node_publishes_robot_topics_and_obeys_commands(spawn_node, ros_probe) -> None:
    node = spawn_node("pidog_sim.sim_node", {"randomize": False})
    topics = Topics(ros_probe)
    assert ros_probe.spin_until(lambda: len(topics.imu) > 20, 30), node.log()
    ros_probe.spin_for(2.0)
    assert rate(topics.joint_states, 1.5) == pytest.approx(50, rel=0.2)
    assert rate(topics.imu, 1.5) == pytest.approx(50, rel=0.2)
    js = topics.joint_states[-1][1]
    assert list(js.name) == list(JOINT_NAMES)
    imu = topics.imu[-1][1]
    assert imu.header.frame_id == "imu_link"
    assert imu.linear_acceleration.z == pytest.approx(9.81, abs=0.3)  # level robot, REP-103 z up
    assert imu.orientation_covariance[0] > 0 and len(topics.clock) > 10

    # Another process (this test) commands the knees down: the joints move by name.
    pub = ros_probe.node.create_publisher(JointState, "/joint_commands", 10)
    assert ros_probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)  # discovered
    target = STAND_POSE.copy()
    target[1::2] -= 0.4
    shuffled = [7, 6, 5, 4, 3, 2, 1, 0]  # order must not matter, names do
    msg = joint_state_msg(
        ros_probe.node.get_clock().now().to_msg(), target[shuffled], names=[JOINT_NAMES[i] for i in shuffled]
    )
    for _ in range(25):
        pub.publish(msg)
        ros_probe.spin_for(0.02)
    ros_probe.spin_for(0.5)
    moved = np.array(topics.joint_states[-1][1].position)
    np.testing.assert_allclose(moved, target, atol=1e-6)  # servo-model estimate reached the target

    # Bad commands are rejected and the last valid target is held.
    bad = joint_state_msg(ros_probe.node.get_clock().now().to_msg(), [np.nan] * 8)
    unknown = joint_state_msg(
        ros_probe.node.get_clock().now().to_msg(), [0.0] * 8, names=[f"j{i}" for i in range(8)]
    )
    short = JointState(name=list(JOINT_NAMES[:4]), position=[0.0] * 4)
    for m in (bad, unknown, short):
        pub.publish(m)
    ros_probe.spin_for(0.5)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), target, atol=1e-6)
    assert "rejected /joint_commands" in node.log()

    # The reset service puts the robot back at the stand pose.
    reset_sim(ros_probe)
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), STAND_POSE, atol=1e-6)


def test_estop_makes_sim_ignore_commands(spawn_node, ros_probe) -> None:
    node = spawn_node("pidog_sim.sim_node", {"randomize": False})
    topics = Topics(ros_probe)
    assert ros_probe.spin_until(lambda: len(topics.joint_states) > 5, 30), node.log()
    latched = LATCHED_QOS
    ros_probe.node.create_publisher(Bool, "/estop", latched).publish(Bool(data=True))
    ros_probe.spin_for(0.5)
    pub = ros_probe.node.create_publisher(JointState, "/joint_commands", 10)
    assert ros_probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)  # so the test can fail
    for _ in range(20):
        pub.publish(joint_state_msg(ros_probe.node.get_clock().now().to_msg(), STAND_POSE + 0.3))
        ros_probe.spin_for(0.02)
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), STAND_POSE, atol=1e-3)
    assert "/estop" in node.log()

    # A reset does not release the latched e-stop: commands are still ignored afterwards.
    reset_sim(ros_probe)
    for _ in range(20):
        pub.publish(joint_state_msg(ros_probe.node.get_clock().now().to_msg(), STAND_POSE + 0.3))
        ros_probe.spin_for(0.02)
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), STAND_POSE, atol=1e-3)


def test_invalid_parameter_is_refused_with_its_name(spawn_node) -> None:
    node = spawn_node("pidog_sim.sim_node", {"rate_hz": 33.0})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0
    assert "rate_hz" in node.log()
    node = spawn_node("pidog_sim.sim_node", {"model_path": "/nonexistent/pidog.xml"})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0 and "/nonexistent/pidog.xml" in node.log()
