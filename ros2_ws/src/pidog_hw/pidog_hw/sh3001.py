"""SH3001 6-axis IMU driver (I2C 0x36), DESIGN.md §6: SI units in REP-103 body axes.

Registers and configuration codes follow SunFounder's ``pidog/sh3001.py`` (chip id 0x61 in
0x0F; accelerometer ODR/range in 0x23/0x25; gyro ODR in 0x29 and per-axis range in
0x8F/0x9F/0xAF). We run both sensors at 500 Hz, the accelerometer at +-2 g (16384 LSB/g) and
the gyro at +-2000 deg/s (16.4 LSB/(deg/s)), and read the 12 data bytes 0x00..0x0B
(ax, ay, az, gx, gy, gz; int16 little-endian) in one burst.

Mounting: on PiDog the stock SDK reads x ~ -16384 at rest, so the chip's -x axis points up.
Its pitch formula uses -ay (and roll -az), which reads as nose-up positive if the chip's -y
axis points forward. Our default remap is therefore body = (-y, +z, -x) of the chip (a proper
rotation). The forward sign is inferred from the SDK, not measured on a robot: the
``imu_axes`` parameter overrides it, and docs/HARDWARE.md says how to check it by tilting.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pidog_description.spec import STANDARD_GRAVITY

from .errors import DeviceNotFoundError, HardwareError, ImuCalibrationError, WrongDeviceError
from .i2c import BusStats, I2CDevice

ADDRESS = 0x36
REG_DATA = 0x00
DATA_LENGTH = 12
REG_CHIP_ID = 0x0F
CHIP_ID = 0x61
REG_ACC_CONF0 = 0x22
REG_ACC_CONF1 = 0x23  # output data rate
REG_ACC_CONF2 = 0x25  # range
REG_ACC_CONF3 = 0x26  # low-pass filter
REG_GYRO_CONF0 = 0x28
REG_GYRO_CONF1 = 0x29  # output data rate
REG_GYRO_CONF2 = 0x2B  # low-pass filter
REG_GYRO_RANGE = (0x8F, 0x9F, 0xAF)  # x, y, z
ODR_500HZ = 0x01
ACC_RANGE_2G = 0x05
GYRO_RANGE_2000DPS = 0x06
ACC_CUTOFF_ODR_X025 = 0x20  # low-pass at 0.25 x ODR, filter enabled (as the stock SDK)

ACC_LSB_PER_G = 16384.0
GYRO_LSB_PER_DPS = 16.4
ACC_SCALE = STANDARD_GRAVITY / ACC_LSB_PER_G  # m/s^2 per count
GYRO_SCALE = np.pi / 180.0 / GYRO_LSB_PER_DPS  # rad/s per count

DEFAULT_AXES = "-y,z,-x"


def parse_axes(spec: str) -> np.ndarray:
    """``"-y,z,-x"`` (body x, y, z as signed chip axes) -> 3x3 matrix with body = M @ chip.

    Refuses anything that is not a proper rotation: a reflection would silently flip the sign
    of one rotation axis, which no orientation filter can detect.
    """
    parts = [p.strip().lower() for p in str(spec).split(",")]
    if len(parts) != 3:
        raise ValueError(f"IMU axes must name 3 chip axes like '-y,z,-x', got {spec!r}")
    matrix = np.zeros((3, 3))
    for row, part in enumerate(parts):
        sign = -1.0 if part.startswith("-") else 1.0
        axis = part.lstrip("+-")
        if axis not in ("x", "y", "z"):
            raise ValueError(
                f"IMU axes entry {part!r} in {spec!r} is not one of x, y, z with an optional sign"
            )
        matrix[row, "xyz".index(axis)] = sign
    if sorted(abs(matrix).argmax(axis=1)) != [0, 1, 2]:
        raise ValueError(f"IMU axes {spec!r} must use each chip axis once")
    if np.linalg.det(matrix) < 0:
        raise ValueError(f"IMU axes {spec!r} describe a mirror image, not a rotation; flip one sign")
    return matrix


@dataclass
class ImuSample:
    """One reading in body axes: specific force (m/s^2, +g up at rest) and rate (rad/s)."""

    accel: np.ndarray
    gyro: np.ndarray


class Sh3001:
    """The SH3001 on an smbus2-shaped bus. ``open()`` checks and configures; ``read()`` samples."""

    def __init__(
        self, bus: Any, axes: str = DEFAULT_AXES, bus_label: str = "1", stats: BusStats | None = None
    ):
        self.bus_label = bus_label
        self.stats = stats if stats is not None else BusStats()
        self.device = I2CDevice(bus, ADDRESS, "SH3001 IMU", self.stats)
        self.body_from_chip = parse_axes(axes)
        self.gyro_bias = np.zeros(3)  # rad/s, body axes
        self.bias_calibrated = False

    def open(self) -> None:
        try:
            chip_id = self.device.read_byte_data(REG_CHIP_ID)
        except HardwareError as exc:
            raise DeviceNotFoundError(
                f"SH3001 IMU did not answer at 0x{ADDRESS:02X} on I2C bus {self.bus_label}: {exc}"
            ) from exc
        if chip_id != CHIP_ID:
            raise WrongDeviceError(
                f"device at 0x{ADDRESS:02X} on I2C bus {self.bus_label} has chip id 0x{chip_id:02X} in register "
                f"0x{REG_CHIP_ID:02X}; an SH3001 reports 0x{CHIP_ID:02X}"
            )
        self._configure()

    def _configure(self) -> None:
        dev = self.device
        dev.write_byte_data(REG_ACC_CONF0, dev.read_byte_data(REG_ACC_CONF0) | 0x01)  # digital filter on
        dev.write_byte_data(REG_ACC_CONF1, ODR_500HZ)
        dev.write_byte_data(REG_ACC_CONF2, ACC_RANGE_2G)
        dev.write_byte_data(REG_ACC_CONF3, (dev.read_byte_data(REG_ACC_CONF3) & 0x17) | ACC_CUTOFF_ODR_X025)
        dev.write_byte_data(REG_GYRO_CONF0, dev.read_byte_data(REG_GYRO_CONF0) | 0x01)
        dev.write_byte_data(REG_GYRO_CONF1, ODR_500HZ)
        for register in REG_GYRO_RANGE:
            dev.write_byte_data(register, GYRO_RANGE_2000DPS)
        dev.write_byte_data(
            REG_GYRO_CONF2, dev.read_byte_data(REG_GYRO_CONF2) & 0xE3
        )  # filter on, cut-off x0.00
        # Read back what the scaling depends on: a wrong range would scale every sample wrongly.
        expected = {REG_ACC_CONF1: ODR_500HZ, REG_ACC_CONF2: ACC_RANGE_2G, REG_GYRO_CONF1: ODR_500HZ}
        expected.update({register: GYRO_RANGE_2000DPS for register in REG_GYRO_RANGE})
        for register, value in expected.items():
            got = dev.read_byte_data(register)
            if got != value:
                raise WrongDeviceError(
                    f"SH3001 register 0x{register:02X} reads 0x{got:02X} after writing 0x{value:02X}: configuration not accepted"
                )

    def read_raw(self) -> tuple[np.ndarray, np.ndarray]:
        """(accel counts, gyro counts) in chip axes from one 12-byte burst."""
        data = self.device.read_block(REG_DATA, DATA_LENGTH)
        values = np.array(struct.unpack("<6h", data), dtype=np.float64)
        return values[:3], values[3:]

    def read_uncorrected(self) -> ImuSample:
        """Body-axis SI sample without gyro bias correction."""
        acc, gyro = self.read_raw()
        return ImuSample(self.body_from_chip @ (acc * ACC_SCALE), self.body_from_chip @ (gyro * GYRO_SCALE))

    def read(self) -> ImuSample:
        sample = self.read_uncorrected()
        sample.gyro = sample.gyro - self.gyro_bias
        return sample

    def calibrate_gyro_bias(
        self,
        samples: int = 100,
        interval_s: float = 0.005,
        sleep: Callable[[float], None] = time.sleep,
        max_spread: float = 0.05,
        max_bias: float = 0.2,
    ) -> np.ndarray:
        """Average the gyro at rest and subtract it from now on.

        Refuses (ImuCalibrationError, bias unchanged) if the robot moved: any sample more than
        ``max_spread`` rad/s from the mean, gravity not ~1 g, or a bias above ``max_bias`` rad/s
        (no healthy MEMS gyro is that far off; it means the robot was turning).
        """
        if samples < 2:
            raise ValueError(f"gyro calibration needs at least 2 samples, got {samples}")
        gyros, accels = [], []
        for _ in range(samples):
            sample = self.read_uncorrected()
            gyros.append(sample.gyro)
            accels.append(sample.accel)
            sleep(interval_s)
        gyro = np.array(gyros)
        mean = gyro.mean(axis=0)
        spread = float(np.abs(gyro - mean).max())
        g_norm = np.linalg.norm(np.array(accels), axis=1)
        if spread > max_spread:
            raise ImuCalibrationError(
                f"gyro calibration refused: rate varied by {spread:.3f} rad/s (limit {max_spread}); keep the robot still"
            )
        if np.abs(g_norm - STANDARD_GRAVITY).max() > 0.1 * STANDARD_GRAVITY:
            raise ImuCalibrationError(
                f"gyro calibration refused: acceleration {g_norm.min():.2f}..{g_norm.max():.2f} m/s^2 is not ~1 g at rest"
            )
        if float(np.abs(mean).max()) > max_bias:
            raise ImuCalibrationError(
                f"gyro calibration refused: bias {np.round(mean, 3).tolist()} rad/s exceeds {max_bias}; was the robot turning?"
            )
        self.gyro_bias = mean
        self.bias_calibrated = True
        return mean

    def status(self) -> dict[str, Any]:
        name = self.device.name
        return {
            "i2c_transactions": self.stats.transactions.get(name, 0),
            "i2c_errors": self.stats.errors.get(name, 0),
            "last_i2c_error": self.stats.last_error.get(name, ""),
            "gyro_bias_rad_s": np.round(self.gyro_bias, 4).tolist(),
            "gyro_bias_calibrated": self.bias_calibrated,
        }
