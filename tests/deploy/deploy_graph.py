"""Test-side ROS endpoints for the deploy tests: a fake robot's sensors and command/state recorders.

They live on the ``ros_probe`` node (real rclpy, separate process from the node under test).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool, String

from pidog_description.kinematics import STAND_POSE
from pidog_description.messages import imu_msg, joint_positions_from_msg, joint_state_msg
from pidog_description.topics import (
    ESTOP_TOPIC,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    POLICY_STATE_TOPIC_NAME,
    STREAM_QOS,
)

LATCHED = LATCHED_QOS


def roll_quaternion(roll: float) -> np.ndarray:
    return np.array([math.cos(roll / 2), math.sin(roll / 2), 0.0, 0.0])


class FakeSensors:
    """Publishes /joint_states and /imu/data at 50 Hz from the probe; tests change what is sent."""

    def __init__(self, probe, pose: np.ndarray = STAND_POSE, rate_hz: float = 50.0) -> None:
        self.node = probe.node
        self.pose = np.asarray(pose, dtype=np.float64).copy()
        self.roll = 0.0
        self.enabled = True
        self.corrupt = False  # NaN positions and NaN orientation
        self.joints_instead: JointState | None = None  # sent in place of /joint_states (IMU stays good)
        self.joint_pub = self.node.create_publisher(JointState, JOINT_STATES_TOPIC, STREAM_QOS)
        self.imu_pub = self.node.create_publisher(Imu, IMU_TOPIC, STREAM_QOS)
        self.timer = self.node.create_timer(1.0 / rate_hz, self._publish)

    def _publish(self) -> None:
        if not self.enabled:
            return
        stamp = self.node.get_clock().now().to_msg()
        quat = roll_quaternion(self.roll)
        joints = joint_state_msg(stamp, self.pose)
        imu = imu_msg(stamp, quat, np.zeros(3), np.array([0.0, 0.0, 9.81]))
        if self.corrupt:
            joints.position = [float("nan")] * 8
            imu.orientation.w = float("nan")
        if self.joints_instead is not None:
            joints = self.joints_instead
        self.joint_pub.publish(joints)
        self.imu_pub.publish(imu)


@dataclass
class Recorder:
    """Everything the node under test published that the tests look at."""

    commands: list[tuple[float, np.ndarray]] = field(default_factory=list)
    raw_commands: list[JointState] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return self.states[-1] if self.states else None

    def commands_since(self, t: float) -> list[np.ndarray]:
        return [q for stamp, q in self.commands if stamp >= t]


def record(probe, state_topic: str = POLICY_STATE_TOPIC_NAME) -> Recorder:
    rec = Recorder()

    def on_command(msg: JointState) -> None:
        rec.raw_commands.append(msg)
        rec.commands.append((time.monotonic(), joint_positions_from_msg(msg)))

    probe.node.create_subscription(JointState, JOINT_COMMANDS_TOPIC, on_command, 50)
    probe.node.create_subscription(String, state_topic, lambda m: rec.states.append(m.data), LATCHED)
    return rec


def estop_publisher(probe):
    pub = probe.node.create_publisher(Bool, ESTOP_TOPIC, LATCHED)
    return lambda value: pub.publish(Bool(data=value))
