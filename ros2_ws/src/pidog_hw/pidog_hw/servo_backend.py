"""The servo interface every backend implements, the radians->pulse conversion they share,
and the dry-run backend.

Backends take joint targets in radians (JOINT_NAMES order) and turn them into pulse widths with
``pidog_description.servo`` plus the calibration offsets; degrees and microseconds never leave
this package. A backend raises ``HardwareError`` subclasses and never retries on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from pidog_description.robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, N_JOINTS, SERVO_RANGE_DEG
from pidog_description.servo import joint_rad_to_servo_deg, servo_deg_to_pulse_us

from .calibration import Calibration

BACKENDS = ("robot_hat", "maestro", "dry_run")
_LIMIT_TOLERANCE = 1e-9  # rad: float round-off at a limit is not a violation


def check_joint_targets(q: np.ndarray) -> np.ndarray:
    """Refuse targets that are not 8 finite values within the joint limits (ValueError)."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (N_JOINTS,):
        raise ValueError(f"joint targets must have shape ({N_JOINTS},), got {q.shape}")
    bad = [JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(q))]
    if bad:
        raise ValueError(f"joint targets are not finite for {bad}")
    low = q < JOINT_LOWER - _LIMIT_TOLERANCE
    high = q > JOINT_UPPER + _LIMIT_TOLERANCE
    if low.any() or high.any():
        names = [
            f"{JOINT_NAMES[i]}={q[i]:.3f} rad (limits {JOINT_LOWER[i]:.3f}..{JOINT_UPPER[i]:.3f})"
            for i in np.flatnonzero(low | high)
        ]
        raise ValueError(f"joint targets outside the joint limits: {', '.join(names)}")
    return q


def joint_targets_to_pulse_us(q: np.ndarray, calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """Checked joint radians -> calibrated servo pulse widths (us), and which ones saturated.

    A joint at its limit plus a calibration offset can ask for more than the servo's +-90
    degrees; the pulse is clipped to 500..2500 us and the channel reported as saturated.
    """
    deg = joint_rad_to_servo_deg(check_joint_targets(q), calibration.offsets_deg)
    lo, hi = SERVO_RANGE_DEG
    saturated = (deg < lo) | (deg > hi)
    return servo_deg_to_pulse_us(deg), saturated


class ServoBackend(ABC):
    """Eight leg servos behind some transport. ``open()`` before use, ``close()`` after."""

    kind: str = "abstract"
    has_feedback: bool = False

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration
        self.last_pulse_us = np.zeros(N_JOINTS)  # 0 = no pulse sent yet / pulses stopped
        self.counters: dict[str, int] = {"cycles": 0, "failed_cycles": 0, "saturated": 0}

    @property
    @abstractmethod
    def description(self) -> str:
        """Human-readable device and address, for logs and /diagnostics."""

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _send_pulses(self, pulse_us: np.ndarray) -> None:
        """Send one pulse width per joint (us; 0 = stop pulses). Raise on any failure."""

    def write_targets(self, q: np.ndarray, enabled: np.ndarray | None = None) -> np.ndarray:
        """Command all 8 joints (radians); joints where ``enabled`` is False get no pulse (used
        to switch servos on one at a time). Returns the pulse widths sent, in us."""
        pulse_us, saturated = joint_targets_to_pulse_us(q, self.calibration)
        if enabled is not None:
            pulse_us = np.where(enabled, pulse_us, 0.0)
            saturated = saturated & enabled
        self.counters["saturated"] += int(saturated.sum())
        self._count(self._send_pulses, pulse_us)
        self.last_pulse_us = pulse_us
        return pulse_us

    def stop_pulses(self) -> None:
        """Stop the PWM on all 8 leg channels: the servos go limp."""
        self._count(self._send_pulses, np.zeros(N_JOINTS))
        self.last_pulse_us = np.zeros(N_JOINTS)

    def _count(self, send: Callable[[np.ndarray], None], pulse_us: np.ndarray) -> None:
        self.counters["cycles"] += 1
        try:
            send(pulse_us)
        except Exception:
            self.counters["failed_cycles"] += 1
            raise

    def read_positions(self) -> np.ndarray:
        """Joint positions (rad) measured by the device; only where ``has_feedback``."""
        raise NotImplementedError(f"the {self.kind} backend has no position feedback")

    def poll_device_errors(self) -> list[str]:
        """Errors the device itself reports (names of set error bits); [] if it has none."""
        return []

    def reconnect(self) -> None:
        """Close and open again. Only called by the node's explicit reconnect policy."""
        self.close()
        self.open()

    def status(self) -> dict[str, Any]:
        """Key/values for /diagnostics."""
        return {"backend": self.kind, "device": self.description, **self.counters}


class DryRunBackend(ServoBackend):
    """No device: logs the pulse widths it would send (test benches, checking a config)."""

    kind = "dry_run"

    def __init__(self, calibration: Calibration, log: Callable[[str], object]) -> None:
        super().__init__(calibration)
        self._log = log

    @property
    def description(self) -> str:
        return "dry run (no device)"

    def open(self) -> None:
        self._log("dry_run: no servo device; pulse widths are logged, not sent")

    def close(self) -> None:
        pass

    def _send_pulses(self, pulse_us: np.ndarray) -> None:
        if not pulse_us.any():
            self._log("dry_run: would stop pulses on all leg channels")
            return
        body = " ".join(f"{n}={p:.1f}us" for n, p in zip(JOINT_NAMES, pulse_us, strict=True))
        self._log(f"dry_run: would send {body}")


def make_servo_backend(
    kind: str,
    calibration: Calibration,
    *,
    log: Callable[[str], object],
    bus: Any = None,
    bus_label: str = "",
    i2c_address: int = 0,
    serial_port: str = "",
    serial_baud: int = 115200,
    serial_timeout_s: float = 0.05,
    maestro_channels: tuple[int, ...] = tuple(range(N_JOINTS)),
) -> ServoBackend:
    """Build (not open) the backend named ``kind``."""
    if kind == "dry_run":
        return DryRunBackend(calibration, log)
    if kind == "robot_hat":
        from .robot_hat import RobotHatServos

        if bus is None:
            raise ValueError("the robot_hat backend needs an I2C bus")
        return RobotHatServos(bus, calibration, bus_label=bus_label, address=i2c_address)
    if kind == "maestro":
        from .maestro import MaestroServos

        return MaestroServos(
            serial_port, calibration, channels=maestro_channels, baud=serial_baud, timeout_s=serial_timeout_s
        )
    raise ValueError(f"servo backend must be one of {BACKENDS}, got {kind!r}")
