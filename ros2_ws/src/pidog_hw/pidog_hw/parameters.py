"""hw_node parameters: declared with working defaults, validated once, refused by name.

Everything is declared with dynamic typing so ``rate_hz:=50`` (an integer on the command line)
works like ``50.0``; the checks below turn any wrong value into a ``ParameterError`` that names
the parameter, and the node exits non-zero with that message.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from pidog_description.orientation_filter import DEFAULT_GAIN
from pidog_description.robot import N_JOINTS
from pidog_description.spec import (
    FREEFALL_ACCEL_MPS2,
    FREEFALL_S,
    IMU_READ_HZ,
    LIFT_ACCEL_MPS2,
    LIFT_WINDOW_S,
)

from .i2c import EMULATED_BUS, TWIN_BUS
from .servo_backend import BACKENDS
from .sh3001 import DEFAULT_AXES, parse_axes

IMU_BACKENDS = ("sh3001", "none")
ESTOP_BEHAVIORS = ("hold", "limp")
STARTUP_POSES = ("stand", "lie", "none")
SHUTDOWN_POSES = ("lie", "limp", "hold")
TIMEOUT_ACTIONS = ("lie", "limp", "stand")
MCU_RESET_ACTIONS = ("fault", "recover")
EMULATED_SERIAL = "emulated"
STALL_PERIODS = 5  # a control tick this many periods late is a stall (hw_node's LoopMonitor)

DEFAULTS: dict[str, tuple[Any, str]] = {
    "servo_backend": ("robot_hat", f"one of {BACKENDS}"),
    "i2c_bus": (
        "1",
        "I2C bus number or /dev/i2c-N; 'emulated' = register-level emulator, 'twin' = emulators fed by "
        "the MuJoCo simulation (TEST/DEMO ONLY)",
    ),
    "i2c_address": (0, "Robot HAT MCU address; 0 = probe 0x14, 0x15, 0x16"),
    "serial_port": (
        "/dev/ttyACM0",
        "Maestro command port; 'emulated' = in-process emulator on a pty (TEST/DEMO ONLY)",
    ),
    "serial_baud": (115200, "Maestro baud rate (ignored on the USB command port)"),
    "serial_timeout_s": (0.05, "Maestro reply timeout, seconds"),
    "maestro_channels": (list(range(N_JOINTS)), "Maestro channel of each joint, JOINT_NAMES order"),
    "maestro_feedback": (True, "publish Maestro Get Position as /joint_states (else the servo model)"),
    "reconnect_interval_s": (1.0, "seconds between serial reconnect attempts; 0 = never reconnect"),
    "imu_backend": ("sh3001", f"one of {IMU_BACKENDS}"),
    "imu_rate_hz": (IMU_READ_HZ, "IMU read and /imu/data publish rate"),
    "imu_axes": (DEFAULT_AXES, "body x,y,z as signed SH3001 chip axes"),
    "imu_calibration_s": (1.0, "gyro bias calibration time at start (robot still); 0 = skip"),
    "imu_filter_gain": (DEFAULT_GAIN, "complementary filter accelerometer gain, 1/s"),
    "calibration_file": ("", "servo offsets YAML; '' = ~/.config/pidog_hw/calibration.yaml if present"),
    "rate_hz": (50.0, "servo command and /joint_states rate"),
    "estop_behavior": ("hold", f"one of {ESTOP_BEHAVIORS}"),
    "startup_pose": ("stand", f"one of {STARTUP_POSES}; 'none' sends no pulse before the first command"),
    "shutdown_pose": ("lie", f"one of {SHUTDOWN_POSES}"),
    "emulator_log": ("", "JSON-lines transaction log of the emulated devices (TEST/DEMO ONLY)"),
    "emulator_control": (
        "",
        "JSON file another process writes to change the emulated world (TEST/DEMO ONLY)",
    ),
    # --- fail-safe behaviour (docs/DEPLOY.md "What keeps the robot safe") ---
    "start_armed": (False, "execute /joint_commands from the start without ~/arm (benches and demos only)"),
    "command_timeout_s": (
        0.3,
        "armed and no valid /joint_commands for this long: disarm, stand, then lie/limp",
    ),
    "command_timeout_action": (
        "lie",
        f"after a command timeout, from the stand pose: one of {TIMEOUT_ACTIONS}",
    ),
    "deadman_timeout_s": (
        0.0,
        "armed and no operator heartbeat (/operator/heartbeat) for this long: disarm as on a "
        "command timeout; arming needs a fresh heartbeat; 0 = off",
    ),
    "state_file": (
        "",
        "where a latched e-stop is persisted; '' = ~/.local/state/pidog_hw/latch.json (none when emulated)",
    ),
    "fall_tilt_rad": (0.8, "roll/pitch tilt (rad) that latches 'fallen' (until ~/reset)"),
    "fallen_limp_s": (2.0, "seconds fallen or lifted before the servos go limp; 0 = keep holding"),
    "lift_detection": (True, "latch 'lifted' on free fall or a sustained upward acceleration (IMU)"),
    "freefall_accel_mps2": (
        FREEFALL_ACCEL_MPS2,
        f"specific force below this for {FREEFALL_S:g} s = free fall, m/s^2",
    ),
    "lift_accel_mps2": (
        LIFT_ACCEL_MPS2,
        f"upward acceleration sustained for {LIFT_WINDOW_S:g} s = picked up, m/s^2",
    ),
    "battery_low_v": (6.4, "pack voltage (V) below which the robot lies down and stops; 0 = not monitored"),
    "battery_low_s": (2.0, "seconds below battery_low_v before acting (servo current dips are brief)"),
    "mcu_reset_action": ("fault", f"after a Robot HAT MCU reset: one of {MCU_RESET_ACTIONS}"),
    "stall_trace_s": (
        0.5,
        "control loop held up this long: print every thread's Python stack to stderr (where it is "
        "stuck); 0 = off, else at least 5 control periods",
    ),
}


class ParameterError(ValueError):
    """An invalid parameter value; the message names the parameter."""


@dataclass(frozen=True)
class HwParams:
    servo_backend: str
    i2c_bus: str
    i2c_address: int
    serial_port: str
    serial_baud: int
    serial_timeout_s: float
    maestro_channels: tuple[int, ...]
    maestro_feedback: bool
    reconnect_interval_s: float
    imu_backend: str
    imu_rate_hz: float
    imu_axes: str
    imu_calibration_s: float
    imu_filter_gain: float
    calibration_file: str
    rate_hz: float
    estop_behavior: str
    startup_pose: str
    shutdown_pose: str
    emulator_log: str
    emulator_control: str
    start_armed: bool
    command_timeout_s: float
    command_timeout_action: str
    deadman_timeout_s: float
    state_file: str
    fall_tilt_rad: float
    fallen_limp_s: float
    lift_detection: bool
    freefall_accel_mps2: float
    lift_accel_mps2: float
    battery_low_v: float
    battery_low_s: float
    mcu_reset_action: str
    stall_trace_s: float

    @property
    def needs_i2c(self) -> bool:
        return self.servo_backend == "robot_hat" or self.imu_backend == "sh3001"

    @property
    def drives_hardware(self) -> bool:
        """True when real servos are driven (not dry_run, not an emulated bus or port)."""
        if self.servo_backend == "robot_hat":
            return self.i2c_bus not in (EMULATED_BUS, TWIN_BUS)
        return self.servo_backend == "maestro" and self.serial_port != EMULATED_SERIAL


def _choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ParameterError(f"parameter '{name}' must be one of {list(options)}, got {value!r}")
    return str(value)


def _number(name: str, value: Any, low: float, high: float, integer: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        kind = "an integer" if integer else "a number"
        raise ParameterError(f"parameter '{name}' must be {kind}, got {value!r}")
    if not low <= value <= high:
        raise ParameterError(f"parameter '{name}' must be in [{low:g}, {high:g}], got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"parameter '{name}' must be true or false, got {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParameterError(f"parameter '{name}' must be a string, got {value!r}")
    return str(value).strip()


def declare_and_read(node: Node) -> HwParams:
    raw = {
        name: node.declare_parameter(
            name, default, ParameterDescriptor(description=text, dynamic_typing=True)
        ).value
        for name, (default, text) in DEFAULTS.items()
    }
    rate = float(_number("rate_hz", raw["rate_hz"], 10.0, 200.0))
    channels = raw["maestro_channels"]
    if isinstance(channels, array.array):  # rclpy hands integer arrays over as array('q')
        channels = list(channels)
    if not isinstance(channels, list | tuple) or len(channels) != N_JOINTS or len(set(channels)) != N_JOINTS:
        raise ParameterError(
            f"parameter 'maestro_channels' must list {N_JOINTS} distinct channels, got {channels!r}"
        )
    channels = tuple(int(_number("maestro_channels", c, 0, 23, integer=True)) for c in channels)
    axes = _text("imu_axes", raw["imu_axes"])
    try:
        parse_axes(axes)
    except ValueError as exc:
        raise ParameterError(f"parameter 'imu_axes': {exc}") from exc
    address = int(_number("i2c_address", raw["i2c_address"], 0, 0x77, integer=True))
    if 0 < address < 0x03:
        raise ParameterError(
            f"parameter 'i2c_address' must be 0 (probe) or a 7-bit address 0x03..0x77, got {address}"
        )
    params = HwParams(
        servo_backend=_choice("servo_backend", raw["servo_backend"], BACKENDS),
        i2c_bus=_text("i2c_bus", raw["i2c_bus"]),
        i2c_address=address,
        serial_port=_text("serial_port", raw["serial_port"]),
        serial_baud=int(_number("serial_baud", raw["serial_baud"], 1200, 4_000_000, integer=True)),
        serial_timeout_s=float(_number("serial_timeout_s", raw["serial_timeout_s"], 0.001, 1.0)),
        maestro_channels=channels,
        maestro_feedback=_bool("maestro_feedback", raw["maestro_feedback"]),
        reconnect_interval_s=float(_number("reconnect_interval_s", raw["reconnect_interval_s"], 0.0, 3600.0)),
        imu_backend=_choice("imu_backend", raw["imu_backend"], IMU_BACKENDS),
        imu_rate_hz=float(_number("imu_rate_hz", raw["imu_rate_hz"], rate, 500.0)),
        imu_axes=axes,
        imu_calibration_s=float(_number("imu_calibration_s", raw["imu_calibration_s"], 0.0, 10.0)),
        imu_filter_gain=float(_number("imu_filter_gain", raw["imu_filter_gain"], 0.0, 50.0)),
        calibration_file=_text("calibration_file", raw["calibration_file"]),
        rate_hz=rate,
        estop_behavior=_choice("estop_behavior", raw["estop_behavior"], ESTOP_BEHAVIORS),
        startup_pose=_choice("startup_pose", raw["startup_pose"], STARTUP_POSES),
        shutdown_pose=_choice("shutdown_pose", raw["shutdown_pose"], SHUTDOWN_POSES),
        emulator_log=_text("emulator_log", raw["emulator_log"]),
        emulator_control=_text("emulator_control", raw["emulator_control"]),
        start_armed=_bool("start_armed", raw["start_armed"]),
        command_timeout_s=float(_number("command_timeout_s", raw["command_timeout_s"], 0.05, 5.0)),
        command_timeout_action=_choice(
            "command_timeout_action", raw["command_timeout_action"], TIMEOUT_ACTIONS
        ),
        deadman_timeout_s=float(_number("deadman_timeout_s", raw["deadman_timeout_s"], 0.0, 10.0)),
        state_file=_text("state_file", raw["state_file"]),
        fall_tilt_rad=float(_number("fall_tilt_rad", raw["fall_tilt_rad"], 0.2, 1.5)),
        fallen_limp_s=float(_number("fallen_limp_s", raw["fallen_limp_s"], 0.0, 600.0)),
        lift_detection=_bool("lift_detection", raw["lift_detection"]),
        freefall_accel_mps2=float(_number("freefall_accel_mps2", raw["freefall_accel_mps2"], 0.5, 8.0)),
        lift_accel_mps2=float(_number("lift_accel_mps2", raw["lift_accel_mps2"], 0.5, 20.0)),
        battery_low_v=float(_number("battery_low_v", raw["battery_low_v"], 0.0, 8.4)),
        battery_low_s=float(_number("battery_low_s", raw["battery_low_s"], 0.0, 600.0)),
        mcu_reset_action=_choice("mcu_reset_action", raw["mcu_reset_action"], MCU_RESET_ACTIONS),
        stall_trace_s=float(_number("stall_trace_s", raw["stall_trace_s"], 0.0, 60.0)),
    )
    if 0 < params.stall_trace_s < STALL_PERIODS / rate:
        # Shorter than what counts as a stall, it would print stacks of a loop on time.
        raise ParameterError(
            f"parameter 'stall_trace_s' must be 0 (off) or at least {STALL_PERIODS} control periods "
            f"({STALL_PERIODS / rate:g} s at rate_hz {rate:g}), got {params.stall_trace_s:g}"
        )
    if params.needs_i2c and not params.i2c_bus:
        raise ParameterError(
            "parameter 'i2c_bus' must name a bus (e.g. '1') for the robot_hat backend or the sh3001 IMU"
        )
    if params.servo_backend == "maestro" and not params.serial_port:
        raise ParameterError(
            "parameter 'serial_port' must name the Maestro's port for servo_backend 'maestro'"
        )
    emulated = (params.needs_i2c and params.i2c_bus in (EMULATED_BUS, TWIN_BUS)) or (
        params.servo_backend == "maestro" and params.serial_port == EMULATED_SERIAL
    )
    for name in ("emulator_log", "emulator_control"):
        if getattr(params, name) and not emulated:
            raise ParameterError(
                f"parameter '{name}' only applies with i2c_bus:=emulated, i2c_bus:=twin or serial_port:=emulated"
            )
    return params
