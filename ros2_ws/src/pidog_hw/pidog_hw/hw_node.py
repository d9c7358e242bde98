"""hw_node: the physical PiDog on the ROS graph, with the same interface as sim_node (DESIGN.md §2).

Publishes /joint_states (the servo-model estimate from ``pidog_description.servo`` - the same
model the sim uses - or, on a Maestro, its Get Position feedback) at ``rate_hz`` and /imu/data
(SH3001 through a complementary filter) at ``imu_rate_hz``; applies /joint_commands by joint
name; /estop (LATCHED_QOS) holds the current pose or stops the pulses; faults go to /diagnostics.

Fail-safe behaviour (docs/DEPLOY.md, "What keeps the robot safe"): the node starts disarmed and
executes /joint_commands only after ``~/arm``, from one publisher at a time, clipped to the
geometric joint limits; a command stream that stops disarms it (stand, then lie or limp); an
/estop true latches (persisted to ``state_file``) until ``~/reset``; falls, pick-ups, a low
battery and a Robot HAT MCU reset latch too. State on ``~/state`` and ``~/armed`` (latched).

Fault policy, in one place: a driver error is never retried inside a cycle. The next cycle
writes fresh targets (that is the control loop, not a retry), every failure is counted and
logged (throttled) and shown on /diagnostics, joints whose write failed keep their previous
estimate, and a disconnected serial port is reopened only by the explicit reconnect policy.
Start-up faults (no device, wrong chip, bad parameter, bad calibration) exit non-zero.

``i2c_bus:=emulated`` and ``serial_port:=emulated`` run against the device emulators in
``pidog_hw.emulation``: a TEST/DEMO mode that drives no hardware. ``i2c_bus:=twin`` feeds those
emulators from the MuJoCo simulation (``emulation/twin.py``, docs/TWIN.md).
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Imu, JointState
from std_msgs.msg import Bool, Empty, String
from std_srvs.srv import SetBool, Trigger

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.limits import clip_joint_targets
from pidog_description.loop_timing import LoopMonitor, Stall
from pidog_description.messages import MessageError, imu_msg, joint_command_from_msg, joint_state_msg
from pidog_description.node_runner import refuse_start, spin_node
from pidog_description.orientation_filter import ComplementaryFilter
from pidog_description.robot import JOINT_NAMES, N_JOINTS
from pidog_description.rotations import tilt_from_up, up_in_body
from pidog_description.servo import ServoModel
from pidog_description.spec import FREEFALL_S, LIFT_WINDOW_S, picked_up
from pidog_description.topics import (
    BATTERY_TOPIC,
    DIAGNOSTICS_TOPIC,
    ESTOP_TOPIC,
    HW_ARM_SERVICE,
    HW_ARMED_TOPIC,
    HW_RESET_SERVICE,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    NODE_STATE_TOPIC,
    OPERATOR_HEARTBEAT_TOPIC,
    STREAM_QOS,
)

from .calibration import resolve_calibration
from .command_age import CommandLateness
from .dds_transport import keep_off_shared_memory
from .errors import (
    CalibrationError,
    ChannelWriteError,
    DisconnectedError,
    HardwareError,
    ImuCalibrationError,
    McuResetError,
)
from .i2c import EMULATED_BUS, TWIN_BUS, open_smbus
from .latch import DEFAULT_STATE_PATH, EstopLatch
from .parameters import EMULATED_SERIAL, STALL_PERIODS, HwParams, ParameterError, declare_and_read
from .sequences import SEQUENCE_SPEED, hold, lie_down, play, ramp, stand_up
from .servo_backend import ServoBackend, make_servo_backend
from .sh3001 import STANDARD_GRAVITY, Sh3001

if TYPE_CHECKING:
    from rclpy.subscription import MessageInfo  # not in every ROS 2 release's rclpy

    from .robot_hat import RobotHatServos

LOG_THROTTLE_S = 1.0
STAGGER_S = 0.06  # between switching on one servo and the next (8 within the lie pose's 0.5 s hold)
SLEW_DONE_RAD = float(np.deg2rad(1.0))  # within this of the commanded pose, full servo speed again
SETTLE_S = 0.3  # hold at the end of a stand-up: the servos trail the model estimate
ARM_POSE_TOLERANCE = float(np.deg2rad(5.0))  # arming farther than this from stand stands up first
BATTERY_PERIOD_S = 0.5
BATTERY_HYSTERESIS_V = 0.2  # ~reset needs the pack this far above battery_low_v (a rested pack)
FREEFALL_MIN_FILL = 0.8  # share of the IMU samples due in FREEFALL_S that must be there to judge


def _publisher_gid(info: Mapping[str, Any] | None) -> bytes | None:
    """The publishing endpoint's gid from rclpy's MessageInfo (None if the RMW gives none)."""
    gid = (info or {}).get("publisher_gid")
    if isinstance(gid, dict):
        gid = gid.get("data")
    return bytes(gid) if gid is not None else None


class HwNode(Node):
    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("hw_node", **node_kwargs)
        self.p: HwParams = declare_and_read(self)
        self.dt = 1.0 / self.p.rate_hz
        self.bus: Any = None
        self.emulator: Any = None
        self.servos: ServoBackend | None = None
        self.imu: Sh3001 | None = None
        # The clock the IMU's samples are timed by (filter steps, lift and free-fall windows): the
        # world's. On a robot that is the monotonic clock; on the twin it is the simulation's,
        # which slows under load: a wall-clock window over a slowed sim holds less motion than
        # on a robot (a trot's bounce averages out less), and the filter would integrate the
        # gyro over wall time the sim did not live.
        self.imu_clock: Callable[[], float] = time.monotonic
        try:
            self._open_hardware()
            self.latch = EstopLatch(self._state_path())
        except BaseException:
            self.close_hardware()
            raise

        self.model = ServoModel(LIE_POSE if self.p.startup_pose != "none" else STAND_POSE)
        # What the servos get each cycle: "drive" = the next model step is written; "hold" =
        # nothing is written (the device keeps sending the last pulses, so the legs stay where
        # they are and no new target can reach them); "limp" = the pulses are stopped.
        self.output = "drive"
        self.pose_known = True  # False once the legs went limp: the estimate then means nothing
        self.sequence: deque[np.ndarray] = deque()
        self.after_sequence: str | None = None  # "limp": stop the pulses when the sequence ends
        self.enable_at: np.ndarray | None = None  # per-joint time its pulse is switched on
        self.slewing = False  # moving onto a new command stream at sequence speed
        # While slewing: what is left of the jump onto the stream (rad per joint), shrinking at
        # sequence speed while the stream itself is followed at servo speed.
        self.slew_offset: np.ndarray | None = None
        self.armed = False
        self.disarm_reason = "not armed since start: call ~/arm"
        self.timeout_fault = ""
        self.faults: dict[str, str] = {}  # latched until ~/reset: fallen, lifted, low_battery, mcu_reset
        self.fault_time: dict[str, float] = {}
        self.target: np.ndarray | None = None  # last valid command while armed
        self.last_command_time: float | None = None
        self.lateness = CommandLateness()
        self.last_stale = ""
        self.stale_since_accepted = 0  # for the timeout's message: why the commands stopped counting
        self.last_heartbeat: float | None = None  # monotonic time of the operator's last heartbeat
        self.source_gid: bytes | None = None
        self.source_name = ""
        self.filter = ComplementaryFilter(gain=self.p.imu_filter_gain)
        self._last_imu_time: float | None = None
        self.tilt = 0.0
        self.motion: deque[tuple[float, float, float]] = deque()  # (time, |a|, upward a - g)
        self.battery_v = float("nan")
        self.battery_low_since: float | None = None
        self.counts = {
            "commands": 0,
            "rejected_commands": 0,
            "clipped_commands": 0,
            "ignored_during_estop": 0,
            "ignored_disarmed": 0,
            "ignored_second_source": 0,
            "stale_commands": 0,
            "feedback_failures": 0,
            "battery_read_failures": 0,
        }
        self.imu_counts = {"reads": 0, "failures": 0, "consecutive_failures": 0}
        # A tick later than five periods (0.1 s at 50 Hz) is a stall: logged with its cause
        # (short of CPU or blocked in a call), counted on /diagnostics, and named in a command
        # timeout it delayed. The watchdog can act no sooner than the loop runs.
        self.loop = LoopMonitor(stall_after_s=STALL_PERIODS * self.dt)
        self.stalls_reported = 0  # the safety status WARNs in the report after a stall
        self.servo_fault: str | None = None
        self.servo_failures_since_report = 0
        self.disconnected = False
        self.reconnect_attempts = 0
        self._next_reconnect = 0.0
        self.device_errors: list[str] = []
        self.imu_calibration_note = ""
        self.last_rejection = ""
        self.last_clip = ""
        self._published_state: tuple[str, bool] | None = None

        if self.latch.active:
            # Nobody knows where the legs are, and an e-stop means no motion: not one pulse.
            self.get_logger().error(f"{self.latch.load_note}; no pulse until ~/reset")
            self.output = "limp" if self.p.estop_behavior == "limp" else "hold"
            self.pose_known = False
        else:
            self._queue(self._startup_sequence(), stagger=True)
        if self.p.start_armed and not self.latch.active:
            self.armed = True
            self.slewing = True
            self.get_logger().warning("start_armed: executing /joint_commands without ~/arm (bench/demo use)")

        self.joint_pub = self.create_publisher(JointState, JOINT_STATES_TOPIC, STREAM_QOS)
        self.imu_pub = self.create_publisher(Imu, IMU_TOPIC, STREAM_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STREAM_QOS)
        self.state_pub = self.create_publisher(String, NODE_STATE_TOPIC, LATCHED_QOS)
        self.armed_pub = self.create_publisher(Bool, HW_ARMED_TOPIC, LATCHED_QOS)
        self.battery_pub = self.create_publisher(BatteryState, BATTERY_TOPIC, STREAM_QOS)
        self.create_subscription(JointState, JOINT_COMMANDS_TOPIC, self._on_command, STREAM_QOS)
        self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, LATCHED_QOS)
        if self.p.deadman_timeout_s > 0:
            self.create_subscription(Empty, OPERATOR_HEARTBEAT_TOPIC, self._on_heartbeat, STREAM_QOS)
        self.create_service(SetBool, HW_ARM_SERVICE, self._on_arm)
        self.create_service(Trigger, HW_RESET_SERVICE, self._on_reset)
        if self.imu is not None:
            self._calibrate_gyro()
            self.create_timer(1.0 / self.p.imu_rate_hz, self._imu_tick)
        self.create_timer(self.dt, self._control_tick)
        self.create_timer(1.0, self._diagnostics_tick)
        if hasattr(self.servos, "read_battery_voltage"):
            self.create_timer(BATTERY_PERIOD_S, self._battery_tick)
        self._publish_state()
        self.get_logger().info(
            # _open_hardware set self.servos (mypy still sees the None assigned above).
            f"driving {cast(ServoBackend, self.servos).description} at {self.p.rate_hz:g} Hz; IMU {self.p.imu_backend}"
            f"{f' at {self.p.imu_rate_hz:g} Hz' if self.imu else ''}; calibration {self.calibration.source}; "
            f"estop={self.p.estop_behavior}, startup={self.p.startup_pose}, shutdown={self.p.shutdown_pose}; "
            f"{'ARMED' if self.armed else 'disarmed (call ~/arm)'}"
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
                self.bus = emulated_pidog_bus(log_path, control_path=p.emulator_control or None)
            elif p.i2c_bus == TWIN_BUS:
                self.bus = self._open_twin(log_path)
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

    def _open_twin(self, log_path: str | None) -> Any:
        from .emulation.twin import twin_pidog_bus

        self.get_logger().warning(
            "i2c_bus is TWIN: the bus emulators are fed by the MuJoCo simulation; test/demo mode, "
            "no hardware is driven"
        )
        try:
            bus = twin_pidog_bus(log_path, control_path=self.p.emulator_control or None)
        except ImportError as exc:  # the robot installs no simulator (DESIGN.md §1)
            raise ParameterError(
                f"parameter 'i2c_bus': 'twin' needs the training-side simulator (pidog_sim, mujoco): {exc}"
            ) from exc
        self.imu_clock = bus.twin.clock
        return bus

    def _state_path(self) -> Path | None:
        if self.p.state_file:
            return Path(self.p.state_file).expanduser()
        if not self.p.drives_hardware:
            # An emulated or dry run must not leave an e-stop that the real robot would obey.
            self.get_logger().warning("no hardware driven and state_file empty: the e-stop is not persisted")
            return None
        return DEFAULT_STATE_PATH

    def _calibrate_gyro(self) -> None:
        samples = int(self.p.imu_calibration_s * self.p.imu_rate_hz)
        if samples < 2:
            self.imu_calibration_note = "gyro bias calibration skipped (imu_calibration_s)"
            return
        assert self.imu is not None  # only called with an IMU
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
            # A short hold at the end: the servos trail the model, and "disarmed" (the end of the
            # sequence) should mean the robot stands, not that the last target was sent.
            return [*stand_up(LIE_POSE, self.dt), *hold(STAND_POSE, SETTLE_S, self.dt)]
        if self.p.startup_pose == "lie":
            return lie_down(LIE_POSE, self.dt)
        return []

    # --- sequences and safe poses ----------------------------------------------------------
    def _queue(self, targets: list[np.ndarray], after: str | None = None, stagger: bool = False) -> None:
        """Replace whatever is queued with ``targets`` (never appended: nothing plays late).
        ``stagger``: the servos have no pulse yet, switch them on one at a time."""
        self.sequence = deque(targets)
        self.after_sequence = after
        self.output = "drive"
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        if stagger or not self.servos.last_pulse_us.any():
            # All 8 servos jumping from unknown positions at once is a current spike that can
            # brown the HAT out; one every STAGGER_S spreads it (inside the lie pose's hold).
            self.enable_at = time.monotonic() + STAGGER_S * np.arange(N_JOINTS)

    def _reconfigure(self) -> str:
        """Write the Robot HAT timer registers again before motion resumes after a stop (a reset
        of the MCU while nothing was written cannot be seen: its registers cannot be read).
        Returns an error text, '' on success."""
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        if not hasattr(self.servos, "configure_timers") or self.disconnected:
            return ""
        try:
            self.servos.configure_timers()
        except HardwareError as exc:
            self._servo_failed(exc)
            return f"re-initialising the servo timers failed: {exc}"
        return ""

    def _go_to_safe_pose(self, then: str = "stand") -> None:
        """Slowly to the stand pose (from wherever the legs are), then ``then``: stand, lie or limp.
        After a limp the estimate means nothing, so the legs fold first as at start-up."""
        if self.output == "limp" or not self.pose_known:
            self.model.reset(LIE_POSE)
            self.pose_known = True
            targets = [*stand_up(LIE_POSE, self.dt), *hold(STAND_POSE, SETTLE_S, self.dt)]
        else:
            targets = [
                *ramp(self.model.position, STAND_POSE, SEQUENCE_SPEED, self.dt),
                *hold(STAND_POSE, SETTLE_S, self.dt),
            ]
        if then == "lie":
            targets += lie_down(STAND_POSE, self.dt)
        self._queue(targets, after="limp" if then == "limp" else None)

    def _stop_commands(self) -> None:
        self.slew_offset = None
        self.armed = False
        self.target = None
        self.last_command_time = None
        self.lateness.reset()
        self.source_gid = None
        self.source_name = ""

    def _disarm(self, reason: str, then: str = "stand") -> None:
        was_armed = self.armed
        self._stop_commands()
        self.disarm_reason = reason
        if was_armed and self.output == "drive":
            self._go_to_safe_pose(then)

    # --- subscriptions and services ------------------------------------------------------------
    def _on_command(self, msg: JointState, info: MessageInfo) -> None:
        try:
            wanted = joint_command_from_msg(msg)
        except MessageError as exc:
            self.counts["rejected_commands"] += 1
            self.last_rejection = str(exc)
            self.get_logger().warning(
                f"rejected /joint_commands: {exc}; holding the last valid targets", throttle_duration_sec=2.0
            )
            return
        if self.latch.active:
            self.counts["ignored_during_estop"] += 1
            return
        if self.faults or not self.armed:
            self.counts["ignored_disarmed"] += 1
            self.get_logger().warning(
                f"/joint_commands ignored: {self._state()} ({self._why_not_armed()})",
                throttle_duration_sec=5.0,
            )
            return
        gid = _publisher_gid(info)
        if self.source_gid is None:
            self.source_gid = gid
            self.source_name = self._publisher_name(gid)
            self.get_logger().info(f"accepting /joint_commands from {self.source_name} only (until disarmed)")
        elif gid != self.source_gid:
            self.counts["ignored_second_source"] += 1
            self.get_logger().warning(
                f"a second /joint_commands publisher ({self._publisher_name(gid)}) is ignored: "
                f"commands come from {self.source_name} until hw_node is disarmed",
                throttle_duration_sec=2.0,
            )
            return
        late = self.lateness.lateness(
            msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
            self.get_clock().now().nanoseconds,
        )
        if late > self.p.command_timeout_s:
            # Held up in a queue longer than the watchdog allows: its sender may be gone.
            self.counts["stale_commands"] += 1
            self.stale_since_accepted += 1
            self.last_stale = f"one arrived {late:.2f} s later than the fastest from {self.source_name}"
            self.get_logger().warning(
                f"stale /joint_commands dropped: {self.last_stale} (command_timeout_s "
                f"{self.p.command_timeout_s:g})",
                throttle_duration_sec=2.0,
            )
            return
        target, clipped = clip_joint_targets(wanted)
        if clipped.any():
            self.counts["clipped_commands"] += 1
            names = [JOINT_NAMES[i] for i in np.flatnonzero(clipped)]
            self.last_clip = f"{', '.join(names)} clipped to the joint/leg collision limits"
            self.get_logger().warning(f"/joint_commands: {self.last_clip}", throttle_duration_sec=2.0)
        self.counts["commands"] += 1
        self.stale_since_accepted = 0
        self.target = target
        self.last_command_time = time.monotonic() - late  # the watchdog counts from when it was due

    def _publisher_name(self, gid: bytes | None) -> str:
        if gid is not None:
            for endpoint in self.get_publishers_info_by_topic(JOINT_COMMANDS_TOPIC):
                if bytes(endpoint.endpoint_gid)[: len(gid)] == gid[: len(bytes(endpoint.endpoint_gid))]:
                    return f"{endpoint.node_namespace.rstrip('/')}/{endpoint.node_name}"
        return "an unidentified publisher" if gid is None else f"publisher {gid.hex()[:16]}"

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            if not self.latch.active:
                self._estop("/estop true")
        elif self.latch.active:
            self.get_logger().warning(
                "/estop false does not release the latched e-stop: call ~/reset (std_srvs/Trigger)",
                throttle_duration_sec=2.0,
            )

    def _estop(self, reason: str) -> None:
        try:
            self.latch.set(reason)
        except OSError as exc:  # still latched in memory: the robot stops either way
            self.get_logger().error(f"could not persist the e-stop to {self.latch.path}: {exc}")
        self._stop_commands()
        self.sequence.clear()
        self.after_sequence = None
        if self.p.estop_behavior == "limp":
            self.output, self.pose_known = "limp", False
        else:
            self.output = "hold"
        self.get_logger().error(
            f"E-STOP latched ({reason}): servos {self.p.estop_behavior}; ~/reset releases it"
        )
        self._publish_state()

    def _why_not_armed(self) -> str:
        if self.latch.active:
            return f"e-stop latched ({self.latch.reason}): call ~/reset"
        if self.faults:
            return "; ".join(f"{k}: {v}" for k, v in self.faults.items()) + ": call ~/reset"
        return self.disarm_reason

    def _on_arm(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if not request.data:
            self._disarm("disarmed by ~/arm false")
            response.success, response.message = True, "disarmed; standing"
        elif self.latch.active or self.faults:
            response.success, response.message = False, f"not armed: {self._why_not_armed()}"
        elif self.disconnected:
            response.success, response.message = False, f"not armed: servos disconnected ({self.servo_fault})"
        elif not self._operator_present(time.monotonic()):
            response.success, response.message = (
                False,
                (
                    f"not armed: no operator heartbeat on {OPERATOR_HEARTBEAT_TOPIC} in the last "
                    f"{self.p.deadman_timeout_s:g} s (deadman_timeout_s)"
                ),
            )
        elif not self.armed and (error := self._reconfigure()):
            response.success, response.message = False, f"not armed: {error}"
        else:
            if (
                not self.armed
                and not self.sequence
                and (
                    self.output != "drive"
                    or np.abs(self.model.position - STAND_POSE).max() > ARM_POSE_TOLERANCE
                )
            ):
                self._go_to_safe_pose()  # from lying, limp or anywhere else: stand first, slowly
            self._stop_commands()
            self.armed, self.slewing, self.timeout_fault = True, True, ""
            self.disarm_reason = ""
            response.success, response.message = True, "armed: executing /joint_commands"
        self.get_logger().info(f"~/arm {request.data}: {response.message}")
        self._publish_state()
        return response

    def _on_heartbeat(self, _msg: Empty) -> None:
        self.last_heartbeat = time.monotonic()

    def _operator_present(self, now: float) -> bool:
        """True when the deadman is off or the operator's heartbeat is fresh."""
        if self.p.deadman_timeout_s <= 0:
            return True
        return self.last_heartbeat is not None and now - self.last_heartbeat <= self.p.deadman_timeout_s

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        problems = []
        if "fallen" in self.faults and self.tilt > self.p.fall_tilt_rad:
            problems.append(f"still tilted {np.degrees(self.tilt):.0f} deg")
        if "low_battery" in self.faults and not self.battery_v >= self.p.battery_low_v + BATTERY_HYSTERESIS_V:
            problems.append(
                f"battery {self.battery_v:.2f} V still below {self.p.battery_low_v + BATTERY_HYSTERESIS_V:.2f} V"
            )
        if self.disconnected:
            problems.append(f"servos disconnected ({self.servo_fault})")
        cleared = ([f"e-stop ({self.latch.reason})"] if self.latch.active else []) + list(self.faults)
        if not problems and cleared:
            problems = [p for p in [self._reconfigure()] if p]
        if problems:
            response.success, response.message = False, f"not reset: {'; '.join(problems)}"
        elif not cleared:
            response.success, response.message = True, "nothing latched"
        else:
            try:
                if self.latch.active:
                    self.latch.clear()
            except OSError as exc:
                response.success = False
                response.message = f"not reset: could not write {self.latch.path}: {exc}"
                return response
            self.faults.clear()
            self.fault_time.clear()
            self.motion.clear()
            self.timeout_fault = ""
            self._stop_commands()
            self.disarm_reason = "reset: call ~/arm to drive"
            self._go_to_safe_pose()
            response.success = True
            response.message = f"cleared {', '.join(cleared)}; standing up slowly, disarmed (call ~/arm)"
        self.get_logger().info(f"~/reset: {response.message}")
        self._publish_state()
        return response

    def _fault(self, name: str, reason: str) -> None:
        """Latch a fault until ~/reset: commands stop; the legs freeze (fallen, lifted), lie down
        and go limp (low battery) or are already without pulses (MCU reset)."""
        if name in self.faults:
            return
        self.faults[name] = reason
        self.fault_time[name] = time.monotonic()
        self._stop_commands()
        self.get_logger().error(f"{name.upper()}: {reason}; latched until ~/reset")
        if self.latch.active:
            return  # the e-stop already decides what the servos do
        if name in ("fallen", "lifted"):
            self.sequence.clear()
            self.after_sequence = None
            if self.output == "drive":
                self.output = "hold"  # freeze: no new target reaches the legs
        elif name == "low_battery":
            if self.output == "drive" and self.pose_known:
                self._queue(lie_down(self.model.position, self.dt), after="limp")
            else:
                self.output, self.pose_known = "limp", False
        else:  # mcu_reset
            self.sequence.clear()
            self.output, self.pose_known = "limp", False
        self._publish_state()

    # --- control loop ------------------------------------------------------------------------
    def _control_tick(self) -> None:
        now = time.monotonic()
        self._arm_stall_trace()
        stall = self.loop.tick(now)
        if stall is not None:
            traced = 0 < self.p.stall_trace_s <= stall.gap_s
            where = f"; where it was stuck: the stack printed above (stall_trace_s {self.p.stall_trace_s:g})"
            self.get_logger().warning(
                f"control loop {stall.describe()} (period {self.dt:g} s){where if traced else ''}",
                throttle_duration_sec=1.0,
            )
        if self.disconnected:
            self._try_reconnect()
        self._supervise(now, stall)
        if not self.disconnected:
            self._drive(now)
        self._publish_joint_states()
        self._publish_state()

    def _arm_stall_trace(self) -> None:
        """Unless the next tick comes within ``stall_trace_s``, print where every thread is.

        The kernel's accounting says *that* the loop was blocked in a call, not in which one;
        this says which. faulthandler's timer is a C thread that needs neither the executor nor
        Python's lock, so it also names a call that blocks holding the lock (rclpy's publish
        does not release it), where no Python thread could look. Re-armed every tick (~50 us).
        """
        if self.p.stall_trace_s > 0:
            faulthandler.dump_traceback_later(self.p.stall_trace_s, file=sys.stderr)

    def _supervise(self, now: float, stall: Stall | None) -> None:
        if (
            self.armed
            and self.last_command_time is not None
            and now - self.last_command_time > self.p.command_timeout_s
        ):
            n_stale = self.stale_since_accepted
            stale = f"; {n_stale} stale ones dropped since, last: {self.last_stale}" if n_stale else ""
            # A late check is the loop's fault, not the sender's: say so where it shows.
            late = f"; this check ran late, the control loop {stall.describe()}" if stall else ""
            self.timeout_fault = (
                f"command timeout: no valid /joint_commands for {self.p.command_timeout_s:g} s "
                f"(the last from {self.source_name} was due {now - self.last_command_time:.2f} s ago{stale}{late}); "
                f"disarmed, stand then {self.p.command_timeout_action}"
            )
            self.get_logger().error(self.timeout_fault)
            self._disarm(self.timeout_fault, then=self.p.command_timeout_action)
        if self.armed and not self._operator_present(now):
            # The operator's tool died or the link dropped: nobody can steer or stop the robot.
            self.timeout_fault = (
                f"deadman: no operator heartbeat on {OPERATOR_HEARTBEAT_TOPIC} for "
                f"{self.p.deadman_timeout_s:g} s; disarmed, stand then {self.p.command_timeout_action}"
            )
            self.get_logger().error(self.timeout_fault)
            self._disarm(self.timeout_fault, then=self.p.command_timeout_action)
        for name in ("fallen", "lifted"):
            since = self.fault_time.get(name)
            if (
                since is not None
                and self.p.fallen_limp_s > 0
                and now - since >= self.p.fallen_limp_s
                and self.output == "hold"
                and not self.latch.active
            ):
                self.get_logger().warning(f"{name} for {self.p.fallen_limp_s:g} s: servos limp")
                self.output, self.pose_known = "limp", False

    def _next_target(self) -> np.ndarray | None:
        if self.sequence:
            self.slew_offset = None  # the slew after a sequence starts from where it ends
            target = self.sequence.popleft()
            if not self.sequence:
                if self.after_sequence == "limp":
                    self.output, self.pose_known = "limp", False
                self.after_sequence = None
                self.slewing = True  # whatever comes next starts from here, at sequence speed
            return target
        if self.armed and self.target is not None:
            if not self.slewing:
                return self.target
            # A jump onto a command stream (after stand-up, arming, a reset) at sequence speed,
            # not at the servos' full speed. Only the jump is slowed: the offset between the legs
            # and the stream shrinks at sequence speed while the stream's own motion is followed,
            # so a gait that moves faster than the sequence speed is still joined (found by the
            # twin, issue 17: chasing a trotting policy at 60 deg/s never caught up with it).
            if self.slew_offset is None:
                self.slew_offset = self.model.position - self.target
            step = SEQUENCE_SPEED * self.dt
            self.slew_offset = self.slew_offset - np.clip(self.slew_offset, -step, step)
            if np.abs(self.slew_offset).max() < SLEW_DONE_RAD:
                self.slewing, self.slew_offset = False, None
                return self.target
            return self.target + self.slew_offset
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        if self.servos.last_pulse_us.any():
            # Re-send the pose each cycle: keeps the legs where they are, and a Robot HAT MCU
            # that reset shows up as a silent cycle (it cannot be read back; see robot_hat.py).
            return self.model.position.copy()
        return None  # startup_pose 'none': no pulse before the first command

    def _drive(self, now: float) -> None:
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        if self.output == "limp":
            self._guarded(self.servos.stop_pulses)
            return
        if self.output == "hold":
            return
        target = self._next_target()
        if target is None or self.output != "drive":
            if self.output == "limp":  # a sequence that ends limp just ended
                self._guarded(self.servos.stop_pulses)
            return
        enabled = None
        if self.enable_at is not None:
            enabled = now >= self.enable_at
            if enabled.all():
                self.enable_at, enabled = None, None
        previous = self.model.position.copy()
        q = self.model.step(target, self.dt)
        if enabled is not None:
            q[~enabled] = previous[~enabled]  # a servo without pulse has not moved (as far as we know)
        try:
            self.servos.write_targets(q, enabled)
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
        if isinstance(exc, McuResetError):
            self._on_mcu_reset(exc)
        elif isinstance(exc, DisconnectedError):
            self._on_disconnect(exc)
        else:
            self.get_logger().error(f"servo write failed: {exc}", throttle_duration_sec=LOG_THROTTLE_S)

    def _on_mcu_reset(self, exc: McuResetError) -> None:
        self.get_logger().error(f"{exc}; mcu_reset_action={self.p.mcu_reset_action}")
        try:
            # Only the Robot HAT backend raises McuResetError.
            cast("RobotHatServos", self.servos).configure_timers()
        except HardwareError as again:
            self.get_logger().error(f"re-initialising the Robot HAT timers failed: {again}")
            self._fault("mcu_reset", f"{exc}; re-initialising failed: {again}")
            return
        if self.p.mcu_reset_action == "fault" or self.latch.active:
            self._fault("mcu_reset", str(exc))
            return
        # recover: the legs sagged without pulses; fold and stand up as at start, disarmed.
        self._stop_commands()
        self.disarm_reason = "Robot HAT MCU reset: re-initialised, standing up; call ~/arm"
        self.output, self.pose_known = "limp", False
        self._go_to_safe_pose()

    def _on_disconnect(self, exc: DisconnectedError) -> None:
        if not self.disconnected:
            policy = (
                f"reconnecting every {self.p.reconnect_interval_s:g} s"
                if self.p.reconnect_interval_s > 0
                else "reconnect disabled (reconnect_interval_s = 0): restart the node"
            )
            self.get_logger().error(f"{exc}; {policy}")
            self._disarm(f"servos disconnected: {exc}")
        self.disconnected = True
        self._next_reconnect = time.monotonic() + self.p.reconnect_interval_s

    def _try_reconnect(self) -> None:
        if self.p.reconnect_interval_s <= 0 or time.monotonic() < self._next_reconnect:
            return
        self.reconnect_attempts += 1
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        try:
            self.servos.reconnect()
        except HardwareError as exc:
            self.get_logger().warning(f"reconnect attempt {self.reconnect_attempts} failed: {exc}")
            self._next_reconnect = time.monotonic() + self.p.reconnect_interval_s
            return
        self.get_logger().info(f"servo backend reconnected after {self.reconnect_attempts} attempt(s)")
        self.disconnected = False
        self.reconnect_attempts = 0
        if self.latch.active or self.faults:
            return  # a sequence never plays while stopped; ~/reset stands the robot up
        # The device may have power-cycled with the port: fold and stand up as at start.
        if self.p.startup_pose != "none":
            self.model.reset(LIE_POSE)
        self._queue(self._startup_sequence(), stagger=True)

    def _publish_joint_states(self) -> None:
        positions = self.model.position
        assert self.servos is not None  # opened in __init__ (_open_hardware)
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

    def _state(self) -> str:
        if self.latch.active:
            return "estop"
        if self.faults:
            return next(iter(self.faults))
        if self.disconnected:
            return "disconnected"
        if self.sequence:
            return "moving_to_pose"
        return "armed" if self.armed else "disarmed"

    def _publish_state(self) -> None:
        now = (self._state(), self.armed)
        if now == self._published_state:
            return
        self._published_state = now
        self.state_pub.publish(String(data=now[0]))
        self.armed_pub.publish(Bool(data=now[1]))

    # --- battery -------------------------------------------------------------------------------
    def _battery_tick(self) -> None:
        if self.disconnected:
            return
        try:
            # The timer runs only for a backend with read_battery_voltage: the Robot HAT's.
            volts = cast("RobotHatServos", self.servos).read_battery_voltage()
        except HardwareError as exc:
            self.counts["battery_read_failures"] += 1
            self.get_logger().error(f"battery read failed: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        self.battery_v = volts
        msg = BatteryState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.voltage = float(volts)
        msg.temperature = msg.current = msg.charge = msg.capacity = float("nan")
        msg.design_capacity = msg.percentage = float("nan")
        msg.power_supply_status = BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
        msg.power_supply_health = (
            BatteryState.POWER_SUPPLY_HEALTH_UNSPEC_FAILURE
            if "low_battery" in self.faults
            else BatteryState.POWER_SUPPLY_HEALTH_UNKNOWN
        )
        msg.power_supply_technology = BatteryState.POWER_SUPPLY_TECHNOLOGY_LION
        msg.present = True
        msg.location = "Robot HAT ADC A4 (3x divider)"
        self.battery_pub.publish(msg)
        if self.p.battery_low_v <= 0:
            return
        now = time.monotonic()
        if volts >= self.p.battery_low_v:
            self.battery_low_since = None
            return
        self.battery_low_since = self.battery_low_since or now
        if now - self.battery_low_since >= self.p.battery_low_s:
            self._fault(
                "low_battery",
                f"battery {volts:.2f} V below battery_low_v {self.p.battery_low_v:g} V for "
                f"{self.p.battery_low_s:g} s: lying down, then limp",
            )

    # --- IMU -----------------------------------------------------------------------------------
    def _imu_tick(self) -> None:
        now = self.imu_clock()
        dt = (
            min(max(now - self._last_imu_time, 1e-4), 0.1)
            if self._last_imu_time is not None
            else 1.0 / self.p.imu_rate_hz
        )
        self._last_imu_time = now
        assert self.imu is not None  # only called with an IMU
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
        self._check_motion(now, q, np.asarray(sample.accel, dtype=np.float64))

    def _check_motion(self, now: float, q: np.ndarray, accel: np.ndarray) -> None:
        """Fallen: tilt beyond ``fall_tilt_rad``. Lifted: free fall (|a| below
        ``freefall_accel_mps2`` in every sample of FREEFALL_S, with at most a fifth of the
        samples missing) or an upward acceleration above
        ``lift_accel_mps2`` sustained over LIFT_WINDOW_S (``pidog_description.spec.picked_up``)."""
        up = up_in_body(q)  # once per IMU sample: the tilt and the lift check both use it
        self.tilt = cast(float, tilt_from_up(up))  # one sample: a float
        if self.tilt > self.p.fall_tilt_rad:
            self._fault(
                "fallen",
                f"tilt {np.degrees(self.tilt):.0f} deg beyond fall_tilt_rad {self.p.fall_tilt_rad:g}",
            )
        if not self.p.lift_detection:
            return
        self.motion.append((now, float(np.linalg.norm(accel)), float(np.dot(accel, up)) - STANDARD_GRAVITY))
        while self.motion and now - self.motion[0][0] > LIFT_WINDOW_S:
            self.motion.popleft()
        recent = [m for m in self.motion if now - m[0] <= FREEFALL_S]
        # Free fall is judged on an unbroken run of samples: after the IMU timer stalled (a busy
        # Pi; on the twin, a GIL pause) the few samples left in the window may all fall inside
        # one of a bouncing gait's brief low-g spells, which is no drop.
        covered = now - recent[0][0] >= FREEFALL_S * 0.9
        dense = len(recent) >= FREEFALL_MIN_FILL * FREEFALL_S * self.p.imu_rate_hz
        if covered and dense and all(m[1] < self.p.freefall_accel_mps2 for m in recent):
            self._fault("lifted", f"free fall (specific force below {self.p.freefall_accel_mps2:g} m/s^2)")
        elif now - self.motion[0][0] >= LIFT_WINDOW_S * 0.9:
            # The test lives in pidog_description.spec (the tracking grid runs it in sim too).
            lifted, mean, quartile = picked_up(np.array([m[2] for m in self.motion]), self.p.lift_accel_mps2)
            if lifted:
                self._fault(
                    "lifted",
                    f"picked up: upward acceleration {mean:.1f} m/s^2 for {LIFT_WINDOW_S:g} s "
                    f"(lower quartile {quartile:.1f})",
                )

    # --- diagnostics ---------------------------------------------------------------------------
    def _diagnostics_tick(self) -> None:
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        if self.servos.kind == "maestro" and not self.disconnected:
            try:
                self.device_errors = self.servos.poll_device_errors()
            except HardwareError as exc:
                self._servo_failed(exc)
            if self.device_errors:
                self.get_logger().error(f"Maestro reports errors: {self.device_errors}")
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self._servo_status(), self._command_status(), self._safety_status()]
        if hasattr(self.servos, "read_battery_voltage"):
            array.status.append(self._battery_status())
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
        elif self.latch.active:
            level, message = DiagnosticStatus.WARN, f"e-stop active ({self.p.estop_behavior})"
        else:
            level, message = DiagnosticStatus.OK, "running sequence" if self.sequence else "ok"
        assert self.servos is not None  # opened in __init__ (_open_hardware)
        values = {
            **self.servos.status(),
            "estop": self.latch.active,
            "output": self.output,
            "sequence_ticks_left": len(self.sequence),
            "reconnect_attempts": self.reconnect_attempts,
            "feedback_failures": self.counts["feedback_failures"],
            "pulse_us": np.round(self.servos.last_pulse_us, 1).tolist(),
        }
        return _status("pidog_hw: servos", self.servos.description, level, message, values)

    def _command_status(self) -> DiagnosticStatus:
        rejected, clipped = self.counts["rejected_commands"], self.counts["clipped_commands"]
        second, stale = self.counts["ignored_second_source"], self.counts["stale_commands"]
        notes = []
        if rejected:
            notes.append(f"{rejected} /joint_commands rejected, last: {self.last_rejection}")
        if clipped:
            notes.append(f"{clipped} clipped, last: {self.last_clip}")
        if second:
            notes.append(f"{second} from a second publisher ignored (source: {self.source_name})")
        if stale:
            notes.append(f"{stale} stale ones dropped, last: {self.last_stale}")
        level = DiagnosticStatus.WARN if notes else DiagnosticStatus.OK
        values = {**self.counts, "source": self.source_name}
        return _status("pidog_hw: commands", "joint_commands", level, "; ".join(notes) or "ok", values)

    def _safety_status(self) -> DiagnosticStatus:
        state = self._state()
        if self.latch.active or self.faults or self.timeout_fault:
            level, message = DiagnosticStatus.ERROR, f"{state}: {self.timeout_fault or self._why_not_armed()}"
        elif not self.armed:
            level, message = DiagnosticStatus.WARN, f"{state}: {self.disarm_reason}"
        elif self.loop.stalls > self.stalls_reported and self.loop.last_stall is not None:
            level, message = DiagnosticStatus.WARN, f"{state}: control loop {self.loop.last_stall.describe()}"
        else:
            level, message = DiagnosticStatus.OK, state
        self.stalls_reported = self.loop.stalls
        values = {
            "state": state,
            "armed": self.armed,
            "estop": self.latch.reason or "",
            "faults": ", ".join(self.faults),
            "output": self.output,
            "tilt_rad": round(self.tilt, 3),
            **self.loop.status(),
        }
        return _status("pidog_hw: safety", "hw_node", level, message, values)

    def _battery_status(self) -> DiagnosticStatus:
        failures = self.counts["battery_read_failures"]
        if "low_battery" in self.faults:
            level, message = DiagnosticStatus.ERROR, self.faults["low_battery"]
        elif self.battery_low_since is not None:
            level, message = (
                DiagnosticStatus.WARN,
                f"battery {self.battery_v:.2f} V below {self.p.battery_low_v:g} V",
            )
        elif failures and not np.isfinite(self.battery_v):
            level, message = DiagnosticStatus.ERROR, f"{failures} battery reads failed"
        else:
            level, message = DiagnosticStatus.OK, f"{self.battery_v:.2f} V"
        values = {
            "voltage": round(self.battery_v, 3),
            "battery_low_v": self.p.battery_low_v,
            "read_failures": failures,
        }
        return _status("pidog_hw: battery", "Robot HAT ADC A4", level, message, values)

    def _imu_status(self) -> DiagnosticStatus:
        failing = self.imu_counts["consecutive_failures"]
        assert self.imu is not None  # only called with an IMU
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
        ROS may already be shut down when this runs. The pulses are stopped on every path
        (unless ``shutdown_pose`` is hold): a second Ctrl-C cuts the lie-down short, never the stop."""
        faulthandler.cancel_dump_traceback_later()  # no more ticks: the lie-down is no stall
        try:
            if self.servos is not None and not self.disconnected and self.p.shutdown_pose != "hold":
                try:
                    if (
                        self.p.shutdown_pose == "lie"
                        and self.servos.last_pulse_us.any()
                        and self.output == "drive"
                        and not self.latch.active  # e-stopped: no motion, not even lying down
                    ):
                        print(
                            "hw_node: lying down before stopping the pulses (Ctrl-C again: stop them now)",
                            file=sys.stderr,
                            flush=True,
                        )
                        play(
                            self.servos, lie_down(self.model.position, self.dt), self.model.position, self.dt
                        )
                except KeyboardInterrupt:
                    print(
                        "hw_node: interrupted during lie-down: stopping the pulses now",
                        file=sys.stderr,
                        flush=True,
                    )
                except HardwareError as exc:
                    print(f"hw_node: shutdown sequence failed: {exc}", file=sys.stderr, flush=True)
                finally:
                    # A further Ctrl-C must not skip this (the previous handler is put back after).
                    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                    try:
                        self.servos.stop_pulses()
                    finally:
                        signal.signal(signal.SIGINT, previous)
        except HardwareError as exc:
            print(f"hw_node: stopping the pulses failed: {exc}", file=sys.stderr, flush=True)
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
    transport = keep_off_shared_memory()  # before rclpy.init, which reads it
    rclpy.init(args=args)
    try:
        node = HwNode()
    except ParameterError as exc:
        refuse_start(f"hw_node: {exc}", exit_code=2)
    except (HardwareError, ValueError) as exc:
        refuse_start(f"hw_node: cannot start: {exc}", exit_code=1)
    (node.get_logger().warning if transport.warn else node.get_logger().info)(transport.message)
    spin_node(node, on_shutdown=node.shutdown_hardware)


if __name__ == "__main__":
    main()
