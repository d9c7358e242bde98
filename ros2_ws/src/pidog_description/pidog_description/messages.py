"""ROS 2 message conversions shared by sim_node, hw_node, policy_node and the bag importer.

Kept out of ``__init__`` so ``pidog_description`` itself still imports with numpy alone; this
module needs the message packages (sensor_msgs), which the Pi has with ROS 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sensor_msgs.msg import Imu, JointState

from .robot import JOINT_NAMES, N_JOINTS
from .spec import clip_command
from .topics import IMU_FRAME_ID

_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Diagonal covariances (REP-145 asks that they be filled). Values are per-axis variances for
# the SH3001 at our ranges, also used by the sim so consumers see the same message shape.
ORIENTATION_VARIANCE: float = 0.01**2  # rad^2 (roll/pitch from the filter)
GYRO_VARIANCE: float = 0.005**2  # (rad/s)^2
ACCEL_VARIANCE: float = 0.05**2  # (m/s^2)^2


class MessageError(ValueError):
    """A message that cannot be used: the text says what is wrong with it."""


def joint_state_msg(
    stamp,
    positions: Iterable[float],
    velocities: Iterable[float] | None = None,
    efforts: Iterable[float] | None = None,
    names: Sequence[str] = JOINT_NAMES,
) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = [float(v) for v in positions]
    if velocities is not None:
        msg.velocity = [float(v) for v in velocities]
    if efforts is not None:
        msg.effort = [float(v) for v in efforts]
    return msg


def imu_msg(stamp, orientation_wxyz, gyro, accel, frame_id: str = IMU_FRAME_ID) -> Imu:
    msg = Imu()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    w, x, y, z = (float(v) for v in orientation_wxyz)
    msg.orientation.w, msg.orientation.x, msg.orientation.y, msg.orientation.z = w, x, y, z
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (float(v) for v in gyro)
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (
        float(v) for v in accel
    )
    msg.orientation_covariance = _diag(ORIENTATION_VARIANCE)
    msg.angular_velocity_covariance = _diag(GYRO_VARIANCE)
    msg.linear_acceleration_covariance = _diag(ACCEL_VARIANCE)
    return msg


def _diag(variance: float) -> list[float]:
    return [variance, 0.0, 0.0, 0.0, variance, 0.0, 0.0, 0.0, variance]


def joint_positions_from_msg(msg: JointState) -> np.ndarray:
    """The 8 leg joint positions (JOINT_NAMES order) from a JointState, matched by name.

    Extra joints (head, tail) are ignored; a missing leg joint, a length mismatch, a
    duplicated name or a non-finite value raises ``MessageError`` naming the problem.
    """
    names = list(msg.name)
    positions = list(msg.position)
    if len(names) != len(positions):
        raise MessageError(f"JointState has {len(names)} names but {len(positions)} positions")
    if len(set(names)) != len(names):
        raise MessageError(f"JointState repeats joint names: {names}")
    out = np.full(N_JOINTS, np.nan)
    for name, value in zip(names, positions, strict=True):
        idx = _INDEX.get(name)
        if idx is not None:
            out[idx] = value
    missing = [JOINT_NAMES[i] for i in range(N_JOINTS) if np.isnan(out[i]) and JOINT_NAMES[i] not in names]
    if missing:
        unknown = [n for n in names if n not in _INDEX]
        extra = f"; unknown names {unknown}" if unknown else ""
        raise MessageError(f"JointState lacks joints {missing}{extra}")
    if not np.all(np.isfinite(out)):
        bad = [JOINT_NAMES[i] for i in range(N_JOINTS) if not np.isfinite(out[i])]
        raise MessageError(f"JointState has non-finite positions for {bad}")
    return out


def joint_command_from_msg(msg: JointState) -> np.ndarray:
    """Joint targets from a ``/joint_commands`` message: all 8 leg joints, known names only."""
    unknown = [n for n in msg.name if n not in _INDEX]
    if unknown:
        raise MessageError(f"/joint_commands names unknown joints {unknown}; expected {list(JOINT_NAMES)}")
    return joint_positions_from_msg(msg)


def imu_from_msg(msg: Imu) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(orientation wxyz, gyro rad/s, accel m/s^2) from an Imu message; rejects non-finite values."""
    q = np.array([msg.orientation.w, msg.orientation.x, msg.orientation.y, msg.orientation.z])
    gyro = np.array([msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z])
    accel = np.array([msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z])
    for label, value in (("orientation", q), ("angular_velocity", gyro), ("linear_acceleration", accel)):
        if not np.all(np.isfinite(value)):
            raise MessageError(f"Imu {label} is not finite: {value.tolist()}")
    norm = float(np.linalg.norm(q))
    if not 0.9 < norm < 1.1:
        raise MessageError(f"Imu orientation is not a unit quaternion (norm {norm:.3f})")
    return q / norm, gyro, accel


def command_from_twist(msg) -> np.ndarray:
    """(vx m/s, wz rad/s) from a Twist, clipped to the command limits; non-finite -> MessageError.

    Duck-typed on ``linear.x`` / ``angular.z`` so it reads rclpy and rosbags messages alike.
    ``linear.y`` is ignored: PiDog has no hip abduction, so it cannot walk sideways.
    """
    raw = np.array([msg.linear.x, msg.angular.z], dtype=np.float64)
    if not np.all(np.isfinite(raw)):
        raise MessageError(f"Twist linear.x/angular.z are not finite: {raw.tolist()}")
    return clip_command(raw)
