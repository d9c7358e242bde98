"""pidog-excite: drive the robot through bounded motions for system identification (issue 14).

From the stand pose: slow and fast squats, pitch rocking, squat snaps, single-leg lifts and
swings, stepping in place and a short trot (``pidog_description.gait``), every target clipped to
the joint limits (``clip_joint_targets``, as hw_node clips) and every segment starting and ending
at the stand pose. About 31 s at ``duration_scale`` 1 (repeat it, or scale it up, for longer bags). Publishes ``/joint_commands`` at 50 Hz on ``hw_node``
or ``sim_node`` alike; record with ``bag_recorder`` (``launch/sysid_record.launch.xml`` starts
both) and fit with ``pidog-sysid`` on the desktop (docs/SYSID.md).

Safety:
- refuses to start (exit 3) unless ``/joint_states`` is within ``stand_tolerance_rad`` of the
  stand pose and the IMU is level (roll and pitch within ``level_tolerance_rad``), or while
  ``/estop`` is latched true;
- ``/estop`` true stops it at once (no further command; exit 4): the driver holds or goes limp;
- a body tilt beyond ``tip_tolerance_rad`` (IMU) while running stops it the same way (exit 5);
- ``arm_hw`` true calls ``/hw_node/arm`` (std_srvs/SetBool) after the checks and before the
  first command; otherwise arm hw_node yourself (``hw_node`` starts disarmed).

Robot side: numpy and rclpy only.
"""

from __future__ import annotations

import sys
from typing import Any, cast

import numpy as np
import rclpy
from rclpy.client import Client
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from pidog_description import STAND_FEET, STAND_POSE
from pidog_description.gait import TrotGait
from pidog_description.kinematics import feet_to_joints
from pidog_description.limits import clip_joint_targets
from pidog_description.messages import MessageError, imu_from_msg, joint_positions_from_msg, joint_state_msg
from pidog_description.node_runner import refuse_start
from pidog_description.rotations import tilt_from_quaternion
from pidog_description.spec import (
    CONTROL_DT,
    gravity_from_quaternion,
    roll_pitch_from_gravity,
    seconds_to_steps,
)
from pidog_description.topics import (
    ESTOP_TOPIC,
    HW_ARM_SERVICE_NAME,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    SENSOR_QOS,
    STREAM_QOS,
)

EXIT_REFUSED = 3
EXIT_ESTOP = 4
EXIT_TIPPED = 5


BURST_REST_S = 0.7  # stand still this long before each burst (it starts from rest)
FAST_SQUAT_DEPTHS_M = (0.008, 0.009, 0.010, 0.011)
ROCK_DEPTHS_M = (0.006, 0.008, 0.010)
# Squat snaps: the targets jump to the squat in one control step, hold, and jump back. The
# knees' jumps (0.17-0.26 rad in 20 ms) ask for 1.2-1.7x what a servo at the model's full speed
# covers in a step, so how fast the body follows shows the servo speed (pidog-sysid fits the
# speed on these windows alone). 9 mm keeps every jump within the stock trot's own largest
# step between two ticks (0.26 rad).
SNAP_DEPTHS_M = (0.006, 0.0075, 0.009)
SNAP_HOLD_S = 0.4


def _cosine_bump(n: int) -> np.ndarray:
    """0 -> 1 -> 0 over n samples (smooth at both ends)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / max(n - 1, 1))


def _feet_segment(offsets: np.ndarray) -> np.ndarray:
    """(T, 4, 2) foot offsets (y, z) from the stand feet, m -> (T, 8) clipped joint targets."""
    out = np.empty((len(offsets), 8))
    for k, off in enumerate(offsets):
        out[k] = clip_joint_targets(feet_to_joints(STAND_FEET + off))[0]
    return out


def excitation_trajectory(duration_scale: float = 1.0, dt: float = CONTROL_DT) -> tuple[np.ndarray, list]:
    """(T, 8) joint targets and [(first index, segment name)]; starts and ends at the stand pose."""
    if not duration_scale > 0:
        raise ValueError(f"duration_scale must be positive, got {duration_scale}")

    def steps(seconds: float) -> int:
        return max(2, int(round(seconds * duration_scale / dt)))

    segments: list[tuple[str, np.ndarray]] = []
    hold = np.tile(STAND_POSE, (steps(1.0), 1))
    segments.append(("hold", hold))

    def squat(name: str, period: float, cycles: int, depth: float) -> None:
        n = steps(period * cycles)
        t = np.arange(n) * dt
        z = -depth * (0.5 - 0.5 * np.cos(2 * np.pi * t / (period * duration_scale)))
        off = np.zeros((n, 4, 2))
        off[:, :, 1] = z[:, None]
        segments.append((name, _feet_segment(off)))

    squat("slow_squat", 2.0, 2, 0.020)
    # Fast squats and pitch rocking as single bursts, each started from rest: where the robot
    # stood still, the simulator can start exactly where the robot is (pidog-sysid fits those
    # windows without guessing the velocities a robot without encoders does not report).
    # Graded depths, meant to take the deeper bursts to the servos' torque limit (what tells
    # strength from mass; how much of each burst saturates is not measured, docs/SYSID.md).
    rest = _feet_segment(np.zeros((steps(BURST_REST_S), 4, 2)))  # where the bursts start and end
    for k, depth in enumerate(FAST_SQUAT_DEPTHS_M):
        n = steps(0.5)
        off = np.zeros((n, 4, 2))
        off[:, :, 1] = -depth * _cosine_bump(n)[:, None]
        segments += [(f"rest_squat_{k}", rest), (f"fast_squat_{k}", _feet_segment(off))]
    for k, depth in enumerate(ROCK_DEPTHS_M):  # front feet down while the hind feet go up, and back
        n = steps(1.0)
        s = np.sin(2 * np.pi * np.arange(n) / n) * _cosine_bump(n)
        off = np.zeros((n, 4, 2))
        off[:, :2, 1] = -depth * s[:, None]
        off[:, 2:, 1] = depth * s[:, None]
        segments += [(f"rest_rock_{k}", rest), (f"pitch_rock_{k}", _feet_segment(off))]
    jumps: set[str] = set()  # segments entered without a blend: the jump is the point
    for k, depth in enumerate(SNAP_DEPTHS_M):
        off = np.zeros((steps(SNAP_HOLD_S), 4, 2))
        off[:, :, 1] = -depth
        down, up = _feet_segment(off), _feet_segment(np.zeros_like(off))
        segments += [(f"rest_snap_{k}", rest), (f"snap_down_{k}", down), (f"snap_up_{k}", up)]
        jumps.update({f"snap_down_{k}", f"snap_up_{k}"})
    # Single-leg lift and swing, one leg at a time (three feet stay on the ground).
    for leg, name in enumerate(("lf", "rf", "lh", "rh")):
        n = steps(1.2)
        bump = _cosine_bump(n)
        off = np.zeros((n, 4, 2))
        off[:, leg, 1] = -0.02 * bump
        off[:, leg, 0] = 0.02 * np.sin(2 * np.pi * np.arange(n) / max(n - 1, 1)) * bump
        segments.append((f"lift_{name}", _feet_segment(off)))
    # Stepping in place, then a short trot forward: the stock gait.
    gait = TrotGait()
    period = gait.params.period_s
    for name, seconds, vx in (("step_in_place", 3.0, 0.0), ("trot", 3.0, 0.15)):
        n = steps(seconds)
        phase = (np.arange(n) * dt / period) % 1.0
        ramp = np.minimum(1.0, np.arange(n) / max(1, steps(0.5)))  # speed ramps up
        q = np.array([gait.joint_targets(p, vx * r, 0.0) for p, r in zip(phase, ramp, strict=True)])
        segments.append((name, np.array([clip_joint_targets(x)[0] for x in q])))
    segments.append(("hold_end", np.tile(STAND_POSE, (steps(1.0), 1))))

    # Blend every junction over 0.2 s so no target jumps, except into the snaps (they are jumps).
    blend = max(2, int(round(0.2 / dt)))
    parts, labels, index, last = [], [], 0, STAND_POSE.copy()
    for name, seg in segments:
        seg = seg.copy()
        w = np.linspace(0.0, 1.0, 0 if name in jumps else min(blend, len(seg)))[:, None]
        seg[: len(w)] = (1 - w) * last + w * seg[: len(w)]
        labels.append((index, name))
        parts.append(seg)
        index += len(seg)
        last = seg[-1]
    return np.concatenate(parts), labels


def standing_problems(
    joints: np.ndarray, quat_wxyz: np.ndarray, stand_tol: float, level_tol: float
) -> list[str]:
    """Why the robot is not ready to be excited (empty: standing and level)."""
    problems = []
    err = np.abs(np.asarray(joints) - STAND_POSE)
    if float(err.max()) > stand_tol:
        problems.append(
            f"not standing: joint {int(err.argmax())} is {np.degrees(err.max()):.1f}° from the stand pose "
            f"(tolerance {np.degrees(stand_tol):.1f}°)"
        )
    # One quaternion: floats.
    roll, pitch = cast(
        tuple[float, float], roll_pitch_from_gravity(gravity_from_quaternion(np.asarray(quat_wxyz)))
    )
    if max(abs(roll), abs(pitch)) > level_tol:
        problems.append(
            f"IMU not level: roll {np.degrees(roll):.1f}°, pitch {np.degrees(pitch):.1f}° "
            f"(tolerance {np.degrees(level_tol):.1f}°)"
        )
    return problems


class ExcitationNode(Node):
    def __init__(self) -> None:
        super().__init__("excitation")
        self.declare_parameter("duration_scale", 1.0)
        self.declare_parameter("stand_tolerance_rad", 0.15)
        self.declare_parameter("level_tolerance_rad", 0.15)
        # Stop if the body tilts this far while running (the routine itself tilts it up to ~0.26
        # rad in the simulator; a robot whose servos are too slow for the trot can tip over).
        self.declare_parameter("tip_tolerance_rad", 0.5)
        self.declare_parameter("wait_timeout_s", 10.0)
        self.declare_parameter("arm_hw", False)
        p = {name: self.get_parameter(name).value for name in self._parameters}
        positive = ("duration_scale", "stand_tolerance_rad", "level_tolerance_rad", "tip_tolerance_rad")
        for name in (*positive, "wait_timeout_s"):
            if not float(p[name]) > 0:
                raise ValueError(f"parameter '{name}' must be positive, got {p[name]!r}")
        self.targets, self.labels = excitation_trajectory(float(p["duration_scale"]))
        self.stand_tol = float(p["stand_tolerance_rad"])
        self.level_tol = float(p["level_tolerance_rad"])
        self.tip_tol = float(p["tip_tolerance_rad"])
        self.wait_ticks = seconds_to_steps(float(p["wait_timeout_s"]))
        self.arm_hw = bool(p["arm_hw"])
        self.joints: np.ndarray | None = None
        self.quat: np.ndarray | None = None
        self.estopped = False
        self.state = "waiting"  # waiting -> arming -> running -> done | refused | estopped | tipped
        self.exit_code: int | None = None
        self.k = 0
        self.ticks = 0
        self.pub = self.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
        self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joints, SENSOR_QOS)
        self.create_subscription(Imu, IMU_TOPIC, self._on_imu, SENSOR_QOS)
        self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, LATCHED_QOS)
        self.arm_client: Client[Any, Any] | None = (
            self.create_client(SetBool, HW_ARM_SERVICE_NAME) if self.arm_hw else None
        )
        self.create_timer(CONTROL_DT, self._tick)
        self.get_logger().info(
            f"excitation: {len(self.targets) * CONTROL_DT:.1f} s of motion "
            f"({', '.join(name for _, name in self.labels)}); waiting for /joint_states and /imu/data"
        )

    def _on_joints(self, msg: JointState) -> None:
        try:
            self.joints = joint_positions_from_msg(msg)
        except MessageError:
            pass

    def _on_imu(self, msg: Imu) -> None:
        try:
            self.quat = imu_from_msg(msg)[0]
        except MessageError:
            pass

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estopped:
            self.estopped = True
            if self.state in ("arming", "running"):
                self.get_logger().error(
                    f"/estop: stopped at {self.k * CONTROL_DT:.2f} s; no further commands"
                )
                self._finish("estopped", EXIT_ESTOP)

    def _finish(self, state: str, code: int) -> None:
        self.state = state
        self.exit_code = code

    def _tick(self) -> None:
        if self.state == "waiting":
            self.ticks += 1
            if self.estopped:
                self.get_logger().error("refusing to start: /estop is latched true")
                return self._finish("refused", EXIT_REFUSED)
            if self.joints is None or self.quat is None:
                if self.ticks > self.wait_ticks:
                    self.get_logger().error("refusing to start: no /joint_states or /imu/data received")
                    self._finish("refused", EXIT_REFUSED)
                return
            problems = standing_problems(self.joints, self.quat, self.stand_tol, self.level_tol)
            if problems:
                self.get_logger().error("refusing to start: " + "; ".join(problems))
                return self._finish("refused", EXIT_REFUSED)
            if self.arm_client is not None:
                if not self.arm_client.wait_for_service(timeout_sec=2.0):
                    self.get_logger().error(f"refusing to start: {HW_ARM_SERVICE_NAME} not available")
                    return self._finish("refused", EXIT_REFUSED)
                self.state = "arming"
                self.arm_client.call_async(SetBool.Request(data=True)).add_done_callback(self._armed)
                return
            self.state = "running"
            self.get_logger().info("standing and level: starting")
        if self.state != "running" or self.estopped:
            return
        if self.k >= len(self.targets):
            self.get_logger().info("excitation done")
            return self._finish("done", 0)
        assert self.quat is not None  # "waiting" is left only once an IMU sample arrived
        tilt = tilt_from_quaternion(self.quat)
        if tilt > self.tip_tol:
            segment = [name for start, name in self.labels if start <= self.k][-1]
            self.get_logger().error(
                f"tipping over: body tilted {tilt:.2f} rad (> tip_tolerance_rad {self.tip_tol:g}) in "
                f"segment {segment} at {self.k * CONTROL_DT:.2f} s; stopped, no further commands "
                "(the bag up to here is still usable)"
            )
            return self._finish("tipped", EXIT_TIPPED)
        for start, name in self.labels:
            if start == self.k:
                self.get_logger().info(f"segment {name}")
        self.pub.publish(joint_state_msg(self.get_clock().now().to_msg(), self.targets[self.k]))
        self.k += 1

    def _armed(self, future) -> None:
        result = future.result()
        if self.state != "arming":
            return
        if result is None or not result.success:
            self.get_logger().error(f"refusing to start: arming failed: {getattr(result, 'message', '')}")
            return self._finish("refused", EXIT_REFUSED)
        self.state = "running"
        self.get_logger().info("hw_node armed: starting")


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = ExcitationNode()
    except ValueError as exc:
        refuse_start(f"pidog-excite: {exc}")
    try:
        while rclpy.ok() and node.exit_code is None:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        node.exit_code = 130
    code = node.exit_code if node.exit_code is not None else 1
    node.destroy_node()
    rclpy.try_shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
