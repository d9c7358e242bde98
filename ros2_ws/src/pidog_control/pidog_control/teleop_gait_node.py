"""teleop_gait_node: ``/cmd_vel`` -> the IK trot -> ``/joint_commands`` at the control rate.

Deploy path (DESIGN.md §1): imports numpy, rclpy and ``pidog_description`` only.

Every control tick (``CONTROL_DT``) the node
- takes the latest ``/cmd_vel`` (linear.x m/s, angular.z rad/s), clipped to
  ``spec.COMMAND_LIMITS``, or zero when none arrived for ``cmd_timeout_s``;
- moves its ramped command toward it no faster than the acceleration limits;
- lifts the feet (step height ramps up) while there is something to do, and puts them down
  at the stand pose (step height ramps to 0) when there is not;
- publishes ``TrotGait.joint_targets`` on ``/joint_commands`` and the phase it used on
  ``/gait/phase`` (cycles, [0, 1)), so recorded bags carry the phase the demonstrations need.

The phase clock advances by ``CONTROL_DT / GAIT_PERIOD_S`` every tick, like ``PiDogEnv``'s,
and restarts at 0 when walking starts. ``/estop`` true: nothing is published, the gait
returns to standing, and walking resumes only on a ``/cmd_vel`` received after the release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32

from pidog_description.gait import TrotGait, TrotParams
from pidog_description.messages import MessageError, command_from_twist, joint_state_msg
from pidog_description.node_runner import refuse_start, spin_node
from pidog_description.spec import CMD_TIMEOUT_S, COMMAND_LIMITS, CONTROL_DT, GAIT_PERIOD_S
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    ESTOP_TOPIC,
    GAIT_PHASE_TOPIC,
    JOINT_COMMANDS_TOPIC,
    LATCHED_QOS,
    STREAM_QOS,
)

# Commands smaller than this are "stand still": a joystick at rest rarely reads exactly 0.
COMMAND_DEADBAND: np.ndarray = np.array([1e-3, 1e-3])  # m/s, rad/s

MAX_STEP_HEIGHT: float = 0.04  # m; higher lifts leave the trot's tested foot workspace


@dataclass(frozen=True)
class RampLimits:
    linear_accel: float = 0.5  # m/s^2: 0 -> 0.3 m/s in 0.6 s
    angular_accel: float = 2.0  # rad/s^2
    step_height_rate: float = 0.1  # m/s: feet lift to / settle from 20 mm in 0.2 s (half a cycle)


class TeleopGait:
    """The node's control law without ROS: ramps, stand/walk switching and the phase clock."""

    def __init__(self, step_height: float, limits: RampLimits, gait: TrotGait | None = None) -> None:
        self.gait = gait or TrotGait(TrotParams(step_height=step_height))
        self.step_height = step_height
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """Back to standing: zero command, feet down, phase at 0."""
        self.command = np.zeros(2)  # ramped (vx, wz) the gait follows
        self.height = 0.0
        self.phase = 0.0
        self.walking = False

    def tick(self, requested: np.ndarray) -> tuple[np.ndarray, float]:
        """Advance one control period toward ``requested`` (vx, wz); return (joint targets, phase)."""
        lim = self.limits
        max_delta = np.array([lim.linear_accel, lim.angular_accel]) * CONTROL_DT
        self.command = self.command + np.clip(requested - self.command, -max_delta, max_delta)
        moving = bool(
            np.any(np.abs(requested) > COMMAND_DEADBAND) or np.any(np.abs(self.command) > COMMAND_DEADBAND)
        )
        height_goal = self.step_height if moving else 0.0
        max_dh = lim.step_height_rate * CONTROL_DT
        self.height = float(self.height + np.clip(height_goal - self.height, -max_dh, max_dh))
        walking = moving or self.height > 0.0
        if walking and not self.walking:
            self.phase = 0.0  # every walk starts from the same point of the cycle
        self.walking = walking
        # With zero stroke and zero height every phase gives the stand pose, so standing is
        # just the gait at rest: no switch, no jump.
        vx, wz = (float(v) if walking else 0.0 for v in self.command)
        targets = self.gait.joint_targets(self.phase, vx, wz, step_height=self.height)
        phase = self.phase
        self.phase = (self.phase + CONTROL_DT / GAIT_PERIOD_S) % 1.0
        return targets, phase


class ParameterError(ValueError):
    """An invalid node parameter; the message names it."""


def _positive(name: str, value: float, upper: float = float("inf")) -> float:
    value = float(value)
    if not (np.isfinite(value) and 0.0 < value <= upper):
        bound = f" and at most {upper:g}" if np.isfinite(upper) else ""
        raise ParameterError(f"parameter '{name}' must be positive{bound}, got {value}")
    return value


class TeleopGaitNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_gait_node")
        defaults = RampLimits()
        # Dynamic typing so "-p cmd_timeout_s:=1" (an integer) is accepted; checked below.
        number = ParameterDescriptor(dynamic_typing=True)
        self.declare_parameter("cmd_timeout_s", CMD_TIMEOUT_S, number)
        self.declare_parameter("max_linear_accel", defaults.linear_accel, number)
        self.declare_parameter("max_angular_accel", defaults.angular_accel, number)
        self.declare_parameter("step_height", TrotParams().step_height, number)
        self.declare_parameter("step_height_rate", defaults.step_height_rate, number)
        get = self._float_parameter
        self.cmd_timeout_s = _positive("cmd_timeout_s", get("cmd_timeout_s"), 60.0)
        limits = RampLimits(
            linear_accel=_positive("max_linear_accel", get("max_linear_accel")),
            angular_accel=_positive("max_angular_accel", get("max_angular_accel")),
            step_height_rate=_positive("step_height_rate", get("step_height_rate")),
        )
        step_height = _positive("step_height", get("step_height"), MAX_STEP_HEIGHT)
        self.control = TeleopGait(step_height, limits)

        self.requested: np.ndarray | None = None
        self.requested_at: Time | None = None  # rclpy Time of the last valid /cmd_vel
        self.estopped = False
        self._warned_lateral = False

        self.command_pub = self.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
        self.phase_pub = self.create_publisher(Float32, GAIT_PHASE_TOPIC, STREAM_QOS)
        self.create_subscription(Twist, CMD_VEL_TOPIC, self._on_cmd_vel, STREAM_QOS)
        self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, LATCHED_QOS)
        self.create_timer(CONTROL_DT, self._tick)
        self.get_logger().info(
            f"trotting from {CMD_VEL_TOPIC} at {1.0 / CONTROL_DT:g} Hz; vx {COMMAND_LIMITS['vx']} m/s, "
            f"wz {COMMAND_LIMITS['wz']} rad/s, stop after {self.cmd_timeout_s:g} s without a command"
        )

    def _float_parameter(self, name: str) -> float:
        value = self.get_parameter(name).value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterError(f"parameter '{name}' must be a number, got {value!r}")
        return float(value)

    def _on_cmd_vel(self, msg: Twist) -> None:
        try:
            command = command_from_twist(msg)
        except MessageError as exc:
            self.get_logger().warning(f"ignored {CMD_VEL_TOPIC}: {exc}", throttle_duration_sec=2.0)
            return
        if msg.linear.y != 0.0 and not self._warned_lateral:
            # PiDog has no hip abduction: it cannot step sideways.
            self.get_logger().warning(f"{CMD_VEL_TOPIC} linear.y is not supported by PiDog and is ignored")
            self._warned_lateral = True
        if self.estopped:
            return
        self.requested = command
        self.requested_at = self.get_clock().now()

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estopped:
            self.get_logger().warning(f"{ESTOP_TOPIC}: stopped commanding the joints")
            self.control.reset()
            self.requested = None  # a command from before the stop must not restart walking
        elif not msg.data and self.estopped:
            self.get_logger().info(f"{ESTOP_TOPIC} released: standing, waiting for {CMD_VEL_TOPIC}")
        self.estopped = bool(msg.data)

    def _requested_command(self) -> np.ndarray:
        if self.requested is None or self.requested_at is None:
            return np.zeros(2)
        age_s = (self.get_clock().now() - self.requested_at).nanoseconds * 1e-9
        return self.requested if age_s <= self.cmd_timeout_s else np.zeros(2)

    def _tick(self) -> None:
        if self.estopped:
            return
        targets, phase = self.control.tick(self._requested_command())
        stamp = self.get_clock().now().to_msg()
        # Phase first: a recorder sees the phase of a tick no later than its command.
        self.phase_pub.publish(Float32(data=float(phase)))
        self.command_pub.publish(joint_state_msg(stamp, targets))


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = TeleopGaitNode()
    except ParameterError as exc:
        refuse_start(f"teleop_gait_node: {exc}")
    spin_node(node)


if __name__ == "__main__":
    main()
