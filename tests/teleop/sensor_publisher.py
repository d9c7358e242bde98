"""A robot-side publisher process for recorder tests: /joint_states and /imu/data at 50 Hz and a
constant /cmd_vel at 10 Hz, built with the shared message conversions (real rclpy, real DDS).

Usage: python sensor_publisher.py VX WZ
"""

from __future__ import annotations

import sys

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Imu, JointState

from pidog_description.kinematics import STAND_POSE
from pidog_description.messages import imu_msg, joint_state_msg
from pidog_description.topics import CMD_VEL_TOPIC, IMU_TOPIC, JOINT_STATES_TOPIC


def main() -> None:
    vx, wz = float(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("sensor_publisher")
    joints = node.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
    imu = node.create_publisher(Imu, IMU_TOPIC, 10)
    cmd = node.create_publisher(Twist, CMD_VEL_TOPIC, 10)
    ticks = [0]

    def tick() -> None:
        stamp = node.get_clock().now().to_msg()
        t = ticks[0] * 0.02
        joints.publish(joint_state_msg(stamp, STAND_POSE + 0.05 * np.sin(2 * np.pi * 2.5 * t)))
        roll = 0.03 * np.sin(2 * np.pi * 2.5 * t)
        q = [np.cos(roll / 2), np.sin(roll / 2), 0.0, 0.0]
        imu.publish(
            imu_msg(stamp, q, [0.03 * 2 * np.pi * 2.5 * np.cos(2 * np.pi * 2.5 * t), 0.0, 0.0], [0, 0, 9.81])
        )
        if ticks[0] % 5 == 0:
            msg = Twist()
            msg.linear.x, msg.angular.z = vx, wz
            cmd.publish(msg)
        ticks[0] += 1

    node.create_timer(0.02, tick)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException, RuntimeError):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
