"""Register-level model of the SH3001 IMU. TEST/DEMO ONLY.

Written from the chip facts (DESIGN.md §6, SunFounder ``sh3001.py``): 256 byte registers with
auto-incrementing reads and writes; chip id 0x61 in 0x0F; data registers 0x00..0x0B hold
ax, ay, az, gx, gy, gz as int16 little-endian, scaled by the range codes currently in the
configuration registers (so a driver that forgets to configure gets differently scaled data);
the data registers are read-only. The sample is latched when a read starts at a data register.

The physical world is described in body axes (``set_motion``) and turned into chip axes by the
mounting ``CHIP_FROM_BODY``: chip x points down, chip y backwards, chip z to the left. That is
the stock SDK's observation (x ~ -16384 at rest) plus the forward direction it implies; it is
the emulator's stand-in for the physical board, not an import of the driver's remap.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from pidog_description.spec import STANDARD_GRAVITY as G

CHIP_ID_REGISTER = 0x0F
DATA_END = 0x0C  # 0x00..0x0B: six int16 samples
READ_ONLY_END = 0x10  # data, temperature and chip id
ACC_RANGE_REGISTER = 0x25
GYRO_RANGE_REGISTERS = (0x8F, 0x9F, 0xAF)
ACC_LSB_PER_G = {0x02: 2048.0, 0x03: 4096.0, 0x04: 8192.0, 0x05: 16384.0}
GYRO_LSB_PER_DPS = {0x02: 262.4, 0x03: 131.2, 0x04: 65.6, 0x05: 32.8, 0x06: 16.4}
# Power-on values the emulator assumes (the datasheet's are not at hand): deliberately not the
# driver's configuration, so a driver that skips configuration reads wrongly scaled data.
POWER_ON = {
    0x22: 0x00,
    0x23: 0x03,
    0x25: 0x02,
    0x26: 0x00,
    0x28: 0x00,
    0x29: 0x03,
    0x2B: 0x00,
    0x8F: 0x02,
    0x9F: 0x02,
    0xAF: 0x02,
}

CHIP_FROM_BODY = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class Sh3001Emulator:
    def __init__(
        self,
        chip_id: int = 0x61,
        chip_from_body: np.ndarray = CHIP_FROM_BODY,
        accel_noise: float = 0.0,
        gyro_noise: float = 0.0,
        gyro_bias_body: tuple[float, float, float] = (0.0, 0.0, 0.0),
        seed: int = 0,
    ) -> None:
        self.registers = bytearray(256)
        for register, value in POWER_ON.items():
            self.registers[register] = value
        self.registers[CHIP_ID_REGISTER] = chip_id
        self.chip_from_body = np.asarray(chip_from_body, dtype=np.float64)
        self.accel_noise = accel_noise  # m/s^2 standard deviation
        self.gyro_noise = gyro_noise  # rad/s standard deviation
        self.gyro_bias_body = np.asarray(gyro_bias_body, dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.specific_force_body = np.array([0.0, 0.0, G])  # level and still
        self.rate_body = np.zeros(3)
        self.pointer = 0
        self.violations: list[str] = []
        self.samples = 0

    def set_motion(self, specific_force_body: np.ndarray, rate_body: np.ndarray) -> None:
        """What an ideal IMU in the body frame would measure: m/s^2 (+g up at rest) and rad/s."""
        self.specific_force_body = np.asarray(specific_force_body, dtype=np.float64)
        self.rate_body = np.asarray(rate_body, dtype=np.float64)

    def i2c_write(self, data: bytes) -> dict[str, Any] | None:
        self.pointer = data[0]
        for offset, value in enumerate(data[1:]):
            register = (data[0] + offset) & 0xFF
            if register < READ_ONLY_END:
                self.violations.append(f"write to read-only register 0x{register:02X}")
                continue
            self.registers[register] = value
        return None

    def i2c_read(self, length: int) -> bytes:
        if self.pointer < DATA_END:
            self._latch_sample()
        out = bytes(self.registers[(self.pointer + i) & 0xFF] for i in range(length))
        self.pointer = (self.pointer + length) & 0xFF
        return out

    def _latch_sample(self) -> None:
        acc_lsb = ACC_LSB_PER_G.get(self.registers[ACC_RANGE_REGISTER])
        gyro_lsb = [GYRO_LSB_PER_DPS.get(self.registers[r]) for r in GYRO_RANGE_REGISTERS]
        if acc_lsb is None or None in gyro_lsb:
            self.violations.append("data read with an invalid range configuration")
            return
        force = self.specific_force_body + self.rng.normal(0.0, self.accel_noise, 3) * (self.accel_noise > 0)
        rate = (
            self.rate_body
            + self.gyro_bias_body
            + self.rng.normal(0.0, self.gyro_noise, 3) * (self.gyro_noise > 0)
        )
        acc_counts = self.chip_from_body @ force / G * acc_lsb
        gyro_counts = self.chip_from_body @ np.rad2deg(rate) * np.asarray(gyro_lsb)
        counts = np.clip(np.rint(np.concatenate([acc_counts, gyro_counts])), -32768, 32767).astype(int)
        self.registers[0:DATA_END] = struct.pack("<6h", *counts)
        self.samples += 1

    def raw_counts(self) -> tuple[int, ...]:
        """The last latched (ax, ay, az, gx, gy, gz) counts, as the stock SDK would print them."""
        return struct.unpack("<6h", bytes(self.registers[0:DATA_END]))
