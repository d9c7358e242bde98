"""I2C helpers over an ``smbus2.SMBus``-shaped object: every transaction succeeds or raises.

The stock SunFounder SDK retries failed transactions and then swallows the error; here a
failed transaction raises ``I2CError`` naming the device, address and register, and is
counted in ``BusStats`` so the node can publish it. There are no retries at this level.

The bus object is anything with the smbus2 method shapes used below (``write_quick``,
``read_byte_data``, ``write_byte_data``, ``read_i2c_block_data``, ``write_i2c_block_data``):
a real ``smbus2.SMBus`` on the robot, ``pidog_hw.emulation.EmulatedI2CBus`` in tests.
"""

from __future__ import annotations

import errno as errno_codes
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import DeviceNotFoundError, I2CError

EMULATED_BUS = "emulated"
TWIN_BUS = "twin"  # the emulators fed by the MuJoCo simulation (emulation/twin.py)


@dataclass
class BusStats:
    """Transaction and error counts per device name, for /diagnostics."""

    transactions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def ok(self, device: str) -> None:
        self.transactions[device] = self.transactions.get(device, 0) + 1

    def failed(self, device: str, message: str) -> None:
        self.transactions[device] = self.transactions.get(device, 0) + 1
        self.errors[device] = self.errors.get(device, 0) + 1
        self.last_error[device] = message


def open_smbus(spec: str) -> Any:
    """Open a Linux I2C bus: ``"1"`` or ``"/dev/i2c-1"``. Raises DeviceNotFoundError clearly."""
    import smbus2  # deploy dependency; imported here so the emulated path needs no i2c-dev

    spec = str(spec).strip()
    if spec.isdigit():
        target: int | str = int(spec)
        path = f"/dev/i2c-{spec}"
    elif spec.startswith("/dev/"):
        target = path = spec
    else:
        raise ValueError(
            f"I2C bus must be a bus number like '1', a path like '/dev/i2c-1', 'emulated' or 'twin', got {spec!r}"
        )
    try:
        return smbus2.SMBus(target)
    except FileNotFoundError as exc:
        raise DeviceNotFoundError(
            f"I2C bus {path} does not exist (on a Raspberry Pi enable I2C with raspi-config)"
        ) from exc
    except PermissionError as exc:
        raise DeviceNotFoundError(
            f"no permission to open I2C bus {path} (add the user to the 'i2c' group)"
        ) from exc


def _describe(exc: OSError) -> str:
    code = exc.errno
    if code in (errno_codes.EREMOTEIO, errno_codes.ENXIO, errno_codes.EIO):
        return f"[Errno {code}] {os.strerror(code)} (no ACK: device absent, unpowered or busy)"
    if code is not None:
        return f"[Errno {code}] {os.strerror(code)}"
    return str(exc)


class I2CDevice:
    """One device on the bus. Methods raise ``I2CError``; each call is one bus transaction."""

    def __init__(self, bus: Any, address: int, name: str, stats: BusStats | None = None) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"{name}: I2C address 0x{address:02X} is outside the 7-bit range 0x03..0x77")
        self.bus = bus
        self.address = address
        self.name = name
        self.stats = stats if stats is not None else BusStats()

    def _fail(self, op: str, register: int | None, exc: OSError) -> I2CError:
        where = f" register 0x{register:02X}" if register is not None else ""
        message = f"I2C {op} to {self.name} at 0x{self.address:02X}{where} failed: {_describe(exc)}"
        self.stats.failed(self.name, message)
        return I2CError(message, self.address, register, exc.errno)

    def probe(self) -> bool:
        """True if the address ACKs a quick write (what ``i2cdetect`` does at these addresses).

        A silent address is an expected outcome of probing, so it returns False instead of
        raising; the caller decides whether that is an error.
        """
        try:
            self.bus.write_quick(self.address)
        except OSError:
            return False
        self.stats.ok(self.name)
        return True

    def write_u16_be(self, register: int, value: int) -> None:
        """Write a register followed by a 16-bit value, high byte first (Robot HAT MCU order)."""
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{self.name}: register 0x{register:02X} value {value} does not fit 16 bits")
        try:
            self.bus.write_i2c_block_data(self.address, register, [value >> 8, value & 0xFF])
        except OSError as exc:
            raise self._fail("write", register, exc) from exc
        self.stats.ok(self.name)

    def write_byte_data(self, register: int, value: int) -> None:
        try:
            self.bus.write_byte_data(self.address, register, value)
        except OSError as exc:
            raise self._fail("write", register, exc) from exc
        self.stats.ok(self.name)

    def read_byte_data(self, register: int) -> int:
        try:
            value = self.bus.read_byte_data(self.address, register)
        except OSError as exc:
            raise self._fail("read", register, exc) from exc
        self.stats.ok(self.name)
        return int(value)

    def read_byte(self) -> int:
        """One byte read with no register pointer write (the Robot HAT MCU's ADC answer)."""
        try:
            value = self.bus.read_byte(self.address)
        except OSError as exc:
            raise self._fail("read", None, exc) from exc
        self.stats.ok(self.name)
        return int(value)

    def read_block(self, register: int, length: int) -> bytes:
        """Read ``length`` bytes starting at ``register``; a short answer is an error too."""
        try:
            data = bytes(self.bus.read_i2c_block_data(self.address, register, length))
        except OSError as exc:
            raise self._fail("read", register, exc) from exc
        if len(data) != length:
            message = (
                f"I2C read from {self.name} at 0x{self.address:02X} register 0x{register:02X} "
                f"returned {len(data)} bytes, expected {length}"
            )
            self.stats.failed(self.name, message)
            raise I2CError(message, self.address, register)
        self.stats.ok(self.name)
        return data


def find_device(
    bus: Any, candidates: tuple[int, ...], name: str, bus_label: str, stats: BusStats
) -> I2CDevice:
    """The first of ``candidates`` that answers a probe; DeviceNotFoundError if none does.

    Unlike the stock SDK, there is no fall-back to a default address that did not answer.
    """
    for address in candidates:
        device = I2CDevice(bus, address, name, stats)
        if device.probe():
            return device
    tried = ", ".join(f"0x{a:02X}" for a in candidates)
    raise DeviceNotFoundError(
        f"no {name} answered on I2C bus {bus_label} at {tried} "
        "(check the HAT is seated and powered, and `i2cdetect -y 1`)"
    )
