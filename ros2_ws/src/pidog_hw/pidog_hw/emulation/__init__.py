"""Device emulators for tests and demos (DESIGN.md §7). NOT a hardware path.

``EmulatedI2CBus`` with ``RobotHatMcu`` and ``Sh3001Emulator`` stands in for I2C bus 1 at the
smbus2 boundary; ``MaestroEmulator`` speaks the Maestro protocol on a real pseudo-terminal.
``hw_node`` uses them when ``i2c_bus:=emulated`` / ``serial_port:=emulated``.
"""

from __future__ import annotations

import os
from typing import Any

from .control import ROBOT_HAT_ADDRESS, SH3001_ADDRESS, write_control
from .i2c_bus import EmulatedI2CBus
from .maestro import MaestroEmulator
from .robot_hat_mcu import RobotHatMcu
from .sh3001 import Sh3001Emulator

__all__ = [
    "EmulatedI2CBus",
    "MaestroEmulator",
    "RobotHatMcu",
    "Sh3001Emulator",
    "emulated_pidog_bus",
    "write_control",
]


def emulated_pidog_bus(
    log_path: str | os.PathLike[str] | None = None,
    imu_noise: bool = True,
    control_path: str | os.PathLike[str] | None = None,
) -> EmulatedI2CBus:
    """A PiDog's I2C bus 1 as far as we use it: the Robot HAT MCU at 0x14 and the SH3001 at 0x36
    (level, still, with a little sensor noise unless ``imu_noise`` is False). ``control_path``:
    a JSON file through which another process changes the emulated world (``control.py``)."""
    bus = EmulatedI2CBus(log_path, control_path=control_path)
    bus.attach(ROBOT_HAT_ADDRESS, RobotHatMcu())
    noise: dict[str, Any] = {"accel_noise": 0.02, "gyro_noise": 0.002} if imu_noise else {}
    bus.attach(SH3001_ADDRESS, Sh3001Emulator(**noise))
    return bus
