"""Hardware errors. Every fault the drivers see is one of these, raised to the caller.

Nothing in ``pidog_hw`` swallows an error or retries on its own: the node decides what a fault
means (count it, publish it on /diagnostics, hold, reconnect by its explicit policy).
"""

from __future__ import annotations


class HardwareError(RuntimeError):
    """Base class: a device did not do what was asked. The message says which and why."""


class DeviceNotFoundError(HardwareError):
    """No device answered where one was expected (bus missing, address silent)."""


class WrongDeviceError(HardwareError):
    """Something answered, but it is not the chip we drive (e.g. a wrong chip id)."""


class I2CError(HardwareError):
    """An I2C transaction failed (NACK, bus error, short read)."""

    def __init__(self, message: str, address: int, register: int | None = None, errno: int | None = None):
        super().__init__(message)
        self.address = address
        self.register = register
        self.errno = errno


class ChannelWriteError(HardwareError):
    """Some servo channels could not be written this cycle; the others were.

    ``failed`` holds the joint indices (JOINT_NAMES order) whose pulse did not reach the
    device, so the caller can keep its position estimate for exactly those joints.
    """

    def __init__(self, message: str, failed: list[int], causes: list[HardwareError]):
        super().__init__(message)
        self.failed = failed
        self.causes = causes


class McuResetError(HardwareError):
    """The Robot HAT MCU stopped answering on every channel and answers again: it reset (or lost
    power), so its PWM timers are back at power-on values and the servos had no pulses. Nothing
    was written to it; the node decides whether to re-initialise or fault (``mcu_reset_action``)."""


class SerialTimeoutError(HardwareError):
    """A serial device did not answer in time, or answered short."""


class SerialProtocolError(HardwareError):
    """Bytes from a serial device do not fit the protocol (garbage, impossible values)."""


class DisconnectedError(HardwareError):
    """The serial port went away (unplugged, closed, I/O error)."""


class CalibrationError(ValueError):
    """A calibration file or value that cannot be used; the message names the problem."""


class ImuCalibrationError(HardwareError):
    """Gyro bias calibration failed, typically because the robot moved while it ran."""
