"""Pololu Maestro serial servo backend (pyserial), compact protocol, DESIGN.md §6.

Commands (Pololu Maestro user's guide, "Serial Servo Commands", compact protocol):
Set Target ``0x84 ch lo hi``, Set Multiple Targets ``0x9F n first (lo hi)*n`` (Mini Maestro),
Set Speed ``0x87``, Set Acceleration ``0x89``, Get Position ``0x90 ch`` -> 2 bytes little-endian,
Get Errors ``0xA1`` -> 2 bytes (reading clears them). Targets and positions are in quarter
microseconds, sent as two 7-bit data bytes; 0 stops the pulses.

Faults are raised, never retried here: a short or missing reply is ``SerialTimeoutError``;
unsolicited bytes, impossible positions or undefined error bits are ``SerialProtocolError``;
an I/O error on the port (unplugged) is ``DisconnectedError``. After a timeout or protocol
error the input buffer is flushed, so the next query starts in step with the device. Whether
and when to reconnect is the node's explicit policy (``reconnect_interval_s``).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import serial

from pidog_description.robot import N_JOINTS, SERVO_MAX_SPEED, SERVO_PULSE_US, SERVO_RANGE_DEG
from pidog_description.servo import pulse_us_to_servo_deg, servo_deg_to_joint_rad

from .calibration import Calibration
from .errors import (
    DeviceNotFoundError,
    DisconnectedError,
    HardwareError,
    SerialProtocolError,
    SerialTimeoutError,
)
from .servo_backend import ServoBackend

CMD_SET_TARGET = 0x84
CMD_SET_SPEED = 0x87
CMD_SET_ACCELERATION = 0x89
CMD_GET_POSITION = 0x90
CMD_SET_MULTIPLE_TARGETS = 0x9F
CMD_GET_ERRORS = 0xA1
MAX_CHANNELS = 24  # Mini Maestro 24; smaller models reject higher channels with a protocol error

ERROR_BITS: tuple[str, ...] = (
    "serial_signal_error",
    "serial_overrun_error",
    "serial_rx_buffer_full",
    "serial_crc_error",
    "serial_protocol_error",
    "serial_timeout_error",
    "script_stack_error",
    "script_call_stack_error",
    "script_program_counter_error",
)

# Speed limit in (0.25 us)/(10 ms), rounded up so the device never lags the host's own
# rate limit (the same ServoModel speed the sim uses); it bounds jumps after a reconnect.
_US_PER_RAD = (SERVO_PULSE_US[1] - SERVO_PULSE_US[0]) / np.deg2rad(SERVO_RANGE_DEG[1] - SERVO_RANGE_DEG[0])
SPEED_LIMIT = math.ceil(SERVO_MAX_SPEED * _US_PER_RAD * 4 * 0.010)
_QUARTER_US_RANGE = (int(SERVO_PULSE_US[0] * 4), int(SERVO_PULSE_US[1] * 4))


def _u14(value: int) -> bytes:
    if not 0 <= value < 1 << 14:
        raise ValueError(f"Maestro value {value} does not fit 14 bits")
    return bytes([value & 0x7F, (value >> 7) & 0x7F])


def _channel(channel: int) -> int:
    if not 0 <= channel < MAX_CHANNELS:
        raise ValueError(f"Maestro channel {channel} outside 0..{MAX_CHANNELS - 1}")
    return channel


def set_target(channel: int, quarter_us: int) -> bytes:
    return bytes([CMD_SET_TARGET, _channel(channel)]) + _u14(quarter_us)


def set_multiple_targets(first_channel: int, quarter_us: list[int]) -> bytes:
    _channel(first_channel + len(quarter_us) - 1)
    return bytes([CMD_SET_MULTIPLE_TARGETS, len(quarter_us), _channel(first_channel)]) + b"".join(
        _u14(v) for v in quarter_us
    )


def set_speed(channel: int, speed: int) -> bytes:
    return bytes([CMD_SET_SPEED, _channel(channel)]) + _u14(speed)


def set_acceleration(channel: int, acceleration: int) -> bytes:
    return bytes([CMD_SET_ACCELERATION, _channel(channel)]) + _u14(acceleration)


def get_position(channel: int) -> bytes:
    return bytes([CMD_GET_POSITION, _channel(channel)])


def decode_errors(word: int) -> list[str]:
    return [name for bit, name in enumerate(ERROR_BITS) if word >> bit & 1]


class MaestroServos(ServoBackend):
    """The 8 leg servos on Maestro channels ``channels`` (JOINT_NAMES order)."""

    kind = "maestro"
    has_feedback = True

    def __init__(
        self,
        port: str,
        calibration: Calibration,
        channels: tuple[int, ...] = tuple(range(N_JOINTS)),
        baud: int = 115200,
        timeout_s: float = 0.05,
    ) -> None:
        super().__init__(calibration)
        channels = tuple(int(c) for c in channels)
        if len(channels) != N_JOINTS or len(set(channels)) != N_JOINTS:
            raise ValueError(
                f"Maestro channels must be {N_JOINTS} distinct channel numbers, got {list(channels)}"
            )
        for c in channels:
            _channel(c)
        if not port:
            raise ValueError("the maestro backend needs a serial port (e.g. /dev/ttyACM0)")
        if not timeout_s > 0:
            raise ValueError(f"serial timeout must be positive, got {timeout_s}")
        self.port = port
        self.channels = channels
        self.baud = int(baud)
        self.timeout_s = float(timeout_s)
        # Set Multiple Targets needs consecutive channels in joint order; otherwise one Set
        # Target per joint (a configuration choice, logged in the description, not a fall-back).
        self.multi_target = channels == tuple(range(channels[0], channels[0] + N_JOINTS))
        self.serial: serial.Serial | None = None
        self.counters.update({"timeouts": 0, "protocol_errors": 0, "disconnects": 0, "unsolicited_bytes": 0})
        self.device_errors_seen: dict[str, int] = {}
        self.startup_errors: list[str] = []

    @property
    def description(self) -> str:
        mode = "Set Multiple Targets" if self.multi_target else "Set Target per channel"
        return f"Pololu Maestro on {self.port} channels {list(self.channels)} ({mode})"

    # --- connection ------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.serial = serial.Serial(
                self.port, self.baud, timeout=self.timeout_s, write_timeout=self.timeout_s, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceNotFoundError(f"cannot open Maestro serial port {self.port}: {exc}") from exc
        try:
            self.serial.reset_input_buffer()
            # Get Errors proves a Maestro is on the other end; what it had logged before we
            # connected is kept for the caller to report, and cleared on the device.
            self.startup_errors = self.poll_device_errors()
        except HardwareError as exc:
            self.close()
            raise DeviceNotFoundError(f"no Maestro answered on {self.port}: {exc}") from exc
        setup = b"".join(set_speed(c, SPEED_LIMIT) + set_acceleration(c, 0) for c in self.channels)
        self._write(setup, "speed/acceleration set-up")

    def close(self) -> None:
        if self.serial is not None:
            try:
                self.serial.close()
            except (serial.SerialException, OSError):
                pass  # the port is already gone; the disconnect was reported when it happened
            self.serial = None

    def _port(self) -> serial.Serial:
        if self.serial is None:
            raise DisconnectedError(f"Maestro port {self.port} is not open")
        return self.serial

    def _disconnected(self, what: str, exc: Exception) -> DisconnectedError:
        self.counters["disconnects"] += 1
        self.close()
        return DisconnectedError(f"Maestro on {self.port} disconnected during {what}: {exc}")

    def _write(self, data: bytes, what: str) -> None:
        port = self._port()
        try:
            port.write(data)
        except serial.SerialTimeoutException as exc:
            self.counters["timeouts"] += 1
            raise SerialTimeoutError(
                f"Maestro on {self.port}: {what} not written within {self.timeout_s} s"
            ) from exc
        except (serial.SerialException, OSError) as exc:
            raise self._disconnected(what, exc) from exc

    def _read_exact(self, length: int, what: str) -> bytes:
        port = self._port()
        try:
            data = port.read(length)
        except (serial.SerialException, OSError) as exc:
            raise self._disconnected(what, exc) from exc
        if len(data) != length:
            self.counters["timeouts"] += 1
            self._flush()
            raise SerialTimeoutError(
                f"Maestro on {self.port}: {what} answered {len(data)} of {length} bytes within {self.timeout_s} s"
            )
        return data

    def _flush(self) -> None:
        try:
            self._port().reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._disconnected("input flush", exc) from exc

    def _expect_silence(self, what: str) -> None:
        """Bytes waiting before a query are not an answer to it: report and discard them."""
        port = self._port()
        try:
            waiting = port.in_waiting
            junk = port.read(waiting) if waiting else b""
        except (serial.SerialException, OSError) as exc:
            raise self._disconnected(what, exc) from exc
        if junk:
            self.counters["unsolicited_bytes"] += len(junk)
            self.counters["protocol_errors"] += 1
            raise SerialProtocolError(
                f"Maestro on {self.port}: {len(junk)} unexpected bytes before {what} ({junk[:8].hex(' ')}); discarded"
            )

    # --- commands ------------------------------------------------------------------------
    def _send_pulses(self, pulse_us: np.ndarray) -> None:
        quarter = [int(v) for v in np.rint(np.asarray(pulse_us) * 4.0)]
        if self.multi_target:
            data = set_multiple_targets(self.channels[0], quarter)
        else:
            data = b"".join(set_target(c, q) for c, q in zip(self.channels, quarter, strict=True))
        self._write(data, "set targets")

    def read_positions(self) -> np.ndarray:
        """Joint angles (rad) from Get Position; NaN where the channel sends no pulse (limp)."""
        self._expect_silence("Get Position")
        self._write(b"".join(get_position(c) for c in self.channels), "Get Position")
        values = np.array(struct.unpack(f"<{N_JOINTS}H", self._read_exact(2 * N_JOINTS, "Get Position")))
        lo, hi = _QUARTER_US_RANGE
        bad = (values != 0) & ((values < lo) | (values > hi))
        if bad.any():
            self.counters["protocol_errors"] += 1
            self._flush()
            raise SerialProtocolError(
                f"Maestro on {self.port}: Get Position returned impossible pulse widths "
                f"{[v / 4 for v in values[bad]]} us (expected 0 or {lo / 4:g}..{hi / 4:g})"
            )
        pulse_us = values / 4.0
        joints = servo_deg_to_joint_rad(pulse_us_to_servo_deg(pulse_us), self.calibration.offsets_deg)
        return np.where(values == 0, np.nan, joints)

    def poll_device_errors(self) -> list[str]:
        """Get Errors: the names of the error bits the Maestro had set (it clears them)."""
        self._expect_silence("Get Errors")
        self._write(bytes([CMD_GET_ERRORS]), "Get Errors")
        word = struct.unpack("<H", self._read_exact(2, "Get Errors"))[0]
        if word >> len(ERROR_BITS):
            self.counters["protocol_errors"] += 1
            self._flush()
            raise SerialProtocolError(
                f"Maestro on {self.port}: Get Errors returned undefined bits 0x{word:04X}"
            )
        errors = decode_errors(word)
        for name in errors:
            self.device_errors_seen[name] = self.device_errors_seen.get(name, 0) + 1
        return errors

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "device_errors_seen": dict(self.device_errors_seen),
            "connected": self.serial is not None,
        }
