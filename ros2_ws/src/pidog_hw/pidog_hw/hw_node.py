"""hw_node: the physical PiDog on the ROS graph, with the same interface as sim_node (DESIGN.md §2).

Publishes /joint_states (the servo-model estimate from ``pidog_description.servo`` - the same
model the sim uses - or, on a Maestro, its Get Position feedback) at ``rate_hz`` and /imu/data
(SH3001 through a complementary filter) at ``imu_rate_hz``; applies /joint_commands by joint
name; /estop (LATCHED_QOS) holds the current pose or stops the pulses; faults go to /diagnostics.

Fault policy, in one place: a driver error is never retried inside a cycle. The next cycle
writes fresh targets (that is the control loop, not a retry), every failure is counted and
logged (throttled) and shown on /diagnostics, joints whose write failed keep their previous
estimate, and a disconnected serial port is reopened only by the explicit reconnect policy.
Start-up faults (no device, wrong chip, bad parameter, bad calibration) exit non-zero.

``i2c_bus:=emulated`` and ``serial_port:=emulated`` run against the device emulators in
``pidog_hw.emulation``: a TEST/DEMO mode that drives no hardware.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.messages import MessageError, imu_msg, joint_command_from_msg, joint_state_msg
from pidog_description.node_runner import LATCHED_QOS, refuse_start, spin_node
from pidog_description.servo import ServoModel

from .calibration import resolve_calibration
from .errors import CalibrationError, ChannelWriteError, DisconnectedError, HardwareError, ImuCalibrationError
from .i2c import EMULATED_BUS, open_smbus
from .orientation_filter import ComplementaryFilter
from .parameters import EMULATED_SERIAL, HwParams, ParameterError, declare_and_read
from .sequences import lie_down, play, stand_up
from .servo_backend import ServoBackend, check_joint_targets, make_servo_backend
from .sh3001 import Sh3001

LOG_THROTTLE_S = 1.0


class HwNode(Node):
    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("hw_node", **node_kwargs)
        self.p: HwParams = declare_and_read(self)
        self.dt = 1.0 / self.p.rate_hz
        self.bus: Any = None
        self.emulator: Any = None
        self.servos: ServoBackend | None = None
        self.imu: Sh3001 | None = None
        try:
            self._open_hardware()
        except BaseException:
            self.close_hardware()
            raise

        self.model = ServoModel(LIE_POSE if self.p.startup_pose != "none" else STAND_POSE)
        self.sequence: deque[np.ndarray] = deque(self._startup_sequence())
        self.target: np.ndarray | None = None  # last valid command; None = none yet
        self.hold_target: np.ndarray | None = None
        self.estopped = False
        self.filter = ComplementaryFilter(gain=self.p.imu_filter_gain)
        self._last_imu_time: float | None = None
        self.counts = {
            "commands": 0,
            "rejected_commands": 0,
            "ignored_during_estop": 0,
            "feedback_failures": 0,
        }
        self.imu_counts = {"reads": 0, "failures": 0, "consecutive_failures": 0}
        self.servo_fault: str | None = None
        self.servo_failures_since_report = 0
        self.disconnected = False
        self.reconnect_attempts = 0
        self._next_reconnect = 0.0
        self.device_errors: list[str] = []
        self.imu_calibration_note = ""
        self.last_rejection = ""

        self.joint_pub = self.create_publisher(JointState, "/joint_states", 10)
        self.imu_pub = self.create_publisher(Imu, "/imu/data", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointState, "/joint_commands", self._on_command, 10)
        self.create_subscription(Bool, "/estop", self._on_estop, LATCHED_QOS)
        if self.imu is not None:
            self._calibrate_gyro()
            self.create_timer(1.0 / self.p.imu_rate_hz, self._imu_tick)
        self.create_timer(self.dt, self._control_tick)
        self.create_timer(1.0, self._diagnostics_tick)
        self.get_logger().info(
            f"driving {self.servos.description} at {self.p.rate_hz:g} Hz; IMU {self.p.imu_backend}"
            f"{f' at {self.p.imu_rate_hz:g} Hz' if self.imu else ''}; calibration {self.calibration.source}; "
            f"estop={self.p.estop_behavior}, startup={self.p.startup_pose}, shutdown={self.p.shutdown_pose}"
        )

    # --- start-up ----------------------------------------------------------------------------
    def _open_hardware(self) -> None:
        p = self.p
        try:
            self.calibration, warning = resolve_calibration(p.calibration_file)
        except CalibrationError as exc:
            raise ParameterError(f"parameter 'calibration_file': {exc}") from exc
        if warning:
            self.get_logger().warning(warning)
        log_path = p.emulator_log or None
        if p.needs_i2c:
            if p.i2c_bus == EMULATED_BUS:
                from .emulation import emulated_pidog_bus

                self.get_logger().warning("i2c_bus is EMULATED: test/demo mode, no hardware is driven")
                self.bus = emulated_pidog_bus(log_path)
            else:
                try:
                    self.bus = open_smbus(p.i2c_bus)
                except ValueError as exc:
                    raise ParameterError(f"parameter 'i2c_bus': {exc}") from exc
        port = p.serial_port
        if p.servo_backend == "maestro" and port == EMULATED_SERIAL:
            from .emulation import MaestroEmulator

            self.emulator = MaestroEmulator(log_path=log_path).start()
            port = self.emulator.port
            self.get_logger().warning(
                f"serial_port is EMULATED ({port}): test/demo mode, no hardware is driven"
            )
        self.servos = make_servo_backend(
            p.servo_backend,
            self.calibration,
            log=lambda text: self.get_logger().info(text, throttle_duration_sec=LOG_THROTTLE_S),
            bus=self.bus,
            bus_label=p.i2c_bus,
            i2c_address=p.i2c_address,
            serial_port=port,
            serial_baud=p.serial_baud,
            serial_timeout_s=p.serial_timeout_s,
            maestro_channels=p.maestro_channels,
        )
        self.servos.open()
        for name in getattr(self.servos, "startup_errors", []):
            self.get_logger().warning(f"Maestro reported '{name}' from before we connected (now cleared)")
        if p.imu_backend == "sh3001":
            self.imu = Sh3001(self.bus, axes=p.imu_axes, bus_label=p.i2c_bus)
            self.imu.open()

    def _calibrate_gyro(self) -> None:
        samples = int(self.p.imu_calibration_s * self.p.imu_rate_hz)
        if samples < 2:
            self.imu_calibration_note = "gyro bias calibration skipped (imu_calibration_s)"
            return
        try:
            bias = self.imu.calibrate_gyro_bias(samples, 1.0 / self.p.imu_rate_hz)
        except ImuCalibrationError as exc:
            self.imu_calibration_note = str(exc)
            self.get_logger().error(f"{exc}; publishing without gyro bias correction")
        except HardwareError as exc:
            self.imu_calibration_note = f"gyro bias calibration failed: {exc}"
            self.get_logger().error(self.imu_calibration_note)
        else:
            self.get_logger().info(f"gyro bias {np.round(bias, 4).tolist()} rad/s")

    def _startup_sequence(self) -> list[np.ndarray]:
        if self.p.startup_pose == "stand":
            return stand_up(LIE_POSE, self.dt)
        if self.p.startup_pose == "lie":
            return lie_down(LIE_POSE, self.dt)
        return []

    # --- subscriptions -----------------------------------------------------------------------
    def _on_command(self, msg: JointState) -> None:
        try:
            target = check_joint_targets(joint_command_from_msg(msg))
        except (MessageError, ValueError) as exc:
            self.counts["rejected_commands"] += 1
            self.last_rejection = str(exc)
            self.get_logger().warning(
                f"rejected /joint_commands: {exc}; holding the last valid targets", throttle_duration_sec=2.0
            )
            return
        if self.estopped:
            self.counts["ignored_during_estop"] += 1
            return
        self.counts["commands"] += 1
        self.target = target

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estopped:
            self.get_logger().warning(f"/estop: commands ignored, servos {self.p.estop_behavior}")
            self.hold_target = self.model.position.copy()
            self.sequence.clear()
        elif not msg.data and self.estopped:
            self.get_logger().info("/estop released")
            if self.p.estop_behavior == "limp":
                # The robot sagged while limp, so the estimate means nothing: start over as at boot.
                self.model.reset(LIE_POSE if self.p.startup_pose != "none" else self.model.position)
                self.sequence = deque(self._startup_sequence())
                self.target = None
            else:
                self.target = self.hold_target
        self.estopped = bool(msg.data)

    # --- control loop ------------------------------------------------------------------------
    def _control_tick(self) -> None:
        if self.disconnected:
            self._try_reconnect()
        if not self.disconnected:
            self._drive()
        self._publish_joint_states()

    def _current_target(self) -> np.ndarray | None:
        # The e-stop outranks everything, including a start-up sequence queued by a reconnect.
        if self.estopped:
            return self.hold_target
        if self.sequence:
            return self.sequence.popleft()
        return self.target

    def _drive(self) -> None:
        if self.estopped and self.p.estop_behavior == "limp":
            self._guarded(self.servos.stop_pulses)
            return
        target = self._current_target()
        if target is None:
            return  # startup_pose 'none': no pulse until the first command
        previous = self.model.position.copy()
        q = self.model.step(target, self.dt)
        try:
            self.servos.write_targets(q)
        except ChannelWriteError as exc:
            self.model.position[exc.failed] = previous[exc.failed]  # those servos never got the pulse
            self._servo_failed(exc)
        except HardwareError as exc:
            self.model.position = previous
            self._servo_failed(exc)
        else:
            self.servo_fault = None

    def _guarded(self, action: Any) -> bool:
        try:
            action()
        except HardwareError as exc:
            self._servo_failed(exc)
            return False
        self.servo_fault = None
        return True

    def _servo_failed(self, exc: HardwareError) -> None:
        self.servo_fault = str(exc)
        self.servo_failures_since_report += 1
        if isinstance(exc, DisconnectedError):
            self._on_disconnect(exc)
        else:
            self.get_logger().error(f"servo write failed: {exc}", throttle_duration_sec=LOG_THROTTLE_S)

    def _on_disconnect(self, exc: DisconnectedError) -> None:
        if not self.disconnected:
            policy = (
                f"reconnecting every {self.p.reconnect_interval_s:g} s"
                if self.p.reconnect_interval_s > 0
                else "reconnect disabled (reconnect_interval_s = 0): restart the node"
            )
            self.get_logger().error(f"{exc}; {policy}")
        self.disconnected = True
        self._next_reconnect = time.monotonic() + self.p.reconnect_interval_s

    def _try_reconnect(self) -> None:
        if self.p.reconnect_interval_s <= 0 or time.monotonic() < self._next_reconnect:
            return
        self.reconnect_attempts += 1
        try:
            self.servos.reconnect()
        except HardwareError as exc:
            self.get_logger().warning(f"reconnect attempt {self.reconnect_attempts} failed: {exc}")
            self._next_reconnect = time.monotonic() + self.p.reconnect_interval_s
            return
        self.get_logger().info(f"servo backend reconnected after {self.reconnect_attempts} attempt(s)")
        self.disconnected = False
        self.reconnect_attempts = 0
        # The device may have power-cycled with the port: re-run the start-up sequence.
        self.model.reset(LIE_POSE if self.p.startup_pose != "none" else self.model.position)
        self.sequence = deque(self._startup_sequence())

    def _publish_joint_states(self) -> None:
        positions = self.model.position
        if self.servos.has_feedback and self.p.maestro_feedback:
            if self.disconnected:
                return  # no device, no measurement: consumers see /joint_states stop
            try:
                measured = self.servos.read_positions()
            except HardwareError as exc:
                self.counts["feedback_failures"] += 1
                if isinstance(exc, DisconnectedError):
                    self.servo_fault = str(exc)
                    self._on_disconnect(exc)
                else:
                    self.get_logger().error(
                        f"joint feedback failed: {exc}", throttle_duration_sec=LOG_THROTTLE_S
                    )
                return
            # Channels without pulses (limp) have no position; report the model's for them.
            positions = np.where(np.isnan(measured), self.model.position, measured)
        self.joint_pub.publish(joint_state_msg(self.get_clock().now().to_msg(), positions))

    # --- IMU -----------------------------------------------------------------------------------
    def _imu_tick(self) -> None:
        now = time.monotonic()
        dt = (
            min(max(now - self._last_imu_time, 1e-4), 0.1)
            if self._last_imu_time
            else 1.0 / self.p.imu_rate_hz
        )
        self._last_imu_time = now
        try:
            sample = self.imu.read()
        except HardwareError as exc:
            self.imu_counts["failures"] += 1
            self.imu_counts["consecutive_failures"] += 1
            self.get_logger().error(f"IMU read failed: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            return  # no sample, no message: never republish stale data as new
        self.imu_counts["reads"] += 1
        self.imu_counts["consecutive_failures"] = 0
        q = self.filter.update(sample.gyro, sample.accel, dt)
        self.imu_pub.publish(imu_msg(self.get_clock().now().to_msg(), q, sample.gyro, sample.accel))

    # --- diagnostics ---------------------------------------------------------------------------
    def _diagnostics_tick(self) -> None:
        if self.servos.kind == "maestro" and not self.disconnected:
            try:
                self.device_errors = self.servos.poll_device_errors()
            except HardwareError as exc:
                self._servo_failed(exc)
            if self.device_errors:
                self.get_logger().error(f"Maestro reports errors: {self.device_errors}")
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self._servo_status(), self._command_status()]
        if self.imu is not None:
            array.status.append(self._imu_status())
        self.diag_pub.publish(array)
        self.servo_failures_since_report = 0

    def _servo_status(self) -> DiagnosticStatus:
        if self.disconnected:
            level, message = DiagnosticStatus.ERROR, f"disconnected: {self.servo_fault}"
        elif self.servo_fault:
            level, message = DiagnosticStatus.ERROR, self.servo_fault
        elif self.device_errors:
            level, message = DiagnosticStatus.ERROR, f"device errors: {', '.join(self.device_errors)}"
        elif self.servo_failures_since_report:
            level, message = (
                DiagnosticStatus.WARN,
                f"{self.servo_failures_since_report} failed cycles in the last second",
            )
        elif self.estopped:
            level, message = DiagnosticStatus.WARN, f"e-stop active ({self.p.estop_behavior})"
        else:
            level, message = DiagnosticStatus.OK, "running sequence" if self.sequence else "ok"
        values = {
            **self.servos.status(),
            "estop": self.estopped,
            "sequence_ticks_left": len(self.sequence),
            "reconnect_attempts": self.reconnect_attempts,
            "feedback_failures": self.counts["feedback_failures"],
            "pulse_us": np.round(self.servos.last_pulse_us, 1).tolist(),
        }
        return _status("pidog_hw: servos", self.servos.description, level, message, values)

    def _command_status(self) -> DiagnosticStatus:
        rejected = self.counts["rejected_commands"]
        level = DiagnosticStatus.WARN if rejected else DiagnosticStatus.OK
        message = f"{rejected} /joint_commands rejected, last: {self.last_rejection}" if rejected else "ok"
        return _status("pidog_hw: commands", "joint_commands", level, message, self.counts)

    def _imu_status(self) -> DiagnosticStatus:
        failing = self.imu_counts["consecutive_failures"]
        if failing:
            level, message = DiagnosticStatus.ERROR, f"{failing} consecutive read failures"
        elif not self.imu.bias_calibrated and self.p.imu_calibration_s > 0:
            level, message = DiagnosticStatus.WARN, self.imu_calibration_note or "gyro bias not calibrated"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        return _status(
            "pidog_hw: imu", "SH3001 at 0x36", level, message, {**self.imu_counts, **self.imu.status()}
        )

    # --- shutdown ------------------------------------------------------------------------------
    def shutdown_hardware(self) -> None:
        """Leave the robot as ``shutdown_pose`` says, then release the devices. Plain sleeps:
        ROS may already be shut down when this runs."""
        try:
            if self.servos is not None and not self.disconnected and self.p.shutdown_pose != "hold":
                if self.p.shutdown_pose == "lie" and self.servos.last_pulse_us.any():
                    play(self.servos, lie_down(self.model.position, self.dt), self.model.position, self.dt)
                self.servos.stop_pulses()
        except HardwareError as exc:
            print(f"hw_node: shutdown sequence failed: {exc}", file=sys.stderr, flush=True)
        finally:
            self.close_hardware()

    def close_hardware(self) -> None:
        if self.servos is not None:
            self.servos.close()
        if self.emulator is not None:
            self.emulator.close()
        if self.bus is not None:
            self.bus.close()


def _status(
    name: str, hardware_id: str, level: bytes, message: str, values: dict[str, Any]
) -> DiagnosticStatus:
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message[:500])
    status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    return status


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = HwNode()
    except ParameterError as exc:
        refuse_start(f"hw_node: {exc}", exit_code=2)
    except (HardwareError, ValueError) as exc:
        refuse_start(f"hw_node: cannot start: {exc}", exit_code=1)
    spin_node(node, on_shutdown=node.shutdown_hardware)


if __name__ == "__main__":
    main()
