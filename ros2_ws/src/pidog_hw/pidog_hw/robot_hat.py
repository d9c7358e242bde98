"""SunFounder Robot HAT servo driver (its MCU's PWM registers over I2C), DESIGN.md §6.

Register map (robot-hat 2.x ``pwm.py``): a channel's pulse width is register ``0x20 + ch``,
a timer's prescaler ``0x40 + timer`` and period ``0x44 + timer`` (channels 4 per timer); each
write is the register followed by a 16-bit value, high byte first. The MCU clock is 72 MHz.
Like ``robot_hat.Servo`` we set period 4095 ticks and the prescaler for 50 Hz, and write both
as the STM32-style "value - 1"; a pulse register value counts timer ticks.

Differences from the stock SDK, on purpose: the MCU address is probed at 0x14/0x15/0x16 and
start-up fails if none answers (no silent fall-back to 0x14); no I2C error is retried or
swallowed; the pulse register is computed from the timer tick actually configured.

Battery (robot-hat ``adc.py`` and ``utils.get_battery_voltage``): the pack is on ADC channel A4
through a 3x divider; a conversion is the write ``[0x10 | (7 - 4), 0, 0]`` followed by two
one-byte reads (MSB, LSB) of a 12-bit value over 0..3.3 V.

MCU reset: the MCU's protocol has no way to read the PWM registers back, so a reset shows
only as the MCU going silent (it does not answer while it boots). After a cycle in which no
channel could be written, no channel is written again until the MCU answers a probe; then
``McuResetError`` is raised (nothing written) and the node re-initialises or faults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pidog_description.robot import JOINT_NAMES, LEG_SERVO_CHANNELS, SERVO_PWM_HZ

from .calibration import Calibration
from .errors import ChannelWriteError, DeviceNotFoundError, HardwareError, I2CError, McuResetError
from .i2c import BusStats, I2CDevice, find_device
from .servo_backend import ServoBackend

MCU_ADDRESSES: tuple[int, ...] = (0x14, 0x15, 0x16)
REG_CHANNEL = 0x20
REG_PRESCALER = 0x40
REG_PERIOD = 0x44
CHANNELS_PER_TIMER = 4
CLOCK_HZ = 72_000_000
PERIOD_TICKS = 4095
REG_ADC = 0x10
BATTERY_ADC_CHANNEL = 4  # A4
ADC_MAX, ADC_FULL_SCALE_V, BATTERY_DIVIDER = 4095, 3.3, 3.0

# robot_hat.Servo: prescaler(CLOCK / FREQ / PERIOD) stores int(351.6) - 1 = 350; period(4095)
# stores 4094. The timer then ticks every 351 / 72 MHz = 4.875 us and a frame lasts
# 4095 ticks = 19.96 ms (50.09 Hz).
PRESCALER_REGISTER = int(CLOCK_HZ / SERVO_PWM_HZ / PERIOD_TICKS) - 1
PERIOD_REGISTER = PERIOD_TICKS - 1
TICK_S = (PRESCALER_REGISTER + 1) / CLOCK_HZ


def pulse_us_to_register(pulse_us: np.ndarray) -> np.ndarray:
    """Pulse widths (us) -> channel register values (timer ticks); 0 stays 0 (no pulse)."""
    return np.rint(np.asarray(pulse_us, dtype=np.float64) * 1e-6 / TICK_S).astype(np.int64)


def timers_for(channels: tuple[int, ...]) -> list[int]:
    return sorted({ch // CHANNELS_PER_TIMER for ch in channels})


class RobotHatServos(ServoBackend):
    """The 8 leg servos on the Robot HAT, all written every cycle."""

    kind = "robot_hat"

    def __init__(self, bus: Any, calibration: Calibration, bus_label: str = "1", address: int = 0) -> None:
        super().__init__(calibration)
        self.bus = bus
        self.bus_label = bus_label
        self.requested_address = address
        self.stats = BusStats()
        self.device: I2CDevice | None = None
        self.mcu_silent = False  # no channel answered in the last write cycle

    @property
    def description(self) -> str:
        where = f"0x{self.device.address:02X}" if self.device else "not found"
        return f"Robot HAT MCU {where} on I2C bus {self.bus_label}"

    def open(self) -> None:
        self.device = self._find_mcu()
        self.configure_timers()

    def configure_timers(self) -> None:
        """Write the leg timers' period and prescaler (at open, and after an MCU reset)."""
        if self.device is None:
            raise HardwareError("Robot HAT servos used before open()")
        self.mcu_silent = False
        for timer in timers_for(LEG_SERVO_CHANNELS):
            self.device.write_u16_be(REG_PERIOD + timer, PERIOD_REGISTER)
            self.device.write_u16_be(REG_PRESCALER + timer, PRESCALER_REGISTER)

    def _find_mcu(self) -> I2CDevice:
        if not self.requested_address:
            return find_device(self.bus, MCU_ADDRESSES, "Robot HAT MCU", self.bus_label, self.stats)
        device = I2CDevice(self.bus, self.requested_address, "Robot HAT MCU", self.stats)
        if not device.probe():
            raise DeviceNotFoundError(
                f"no Robot HAT MCU answered at the configured address 0x{self.requested_address:02X} "
                f"on I2C bus {self.bus_label}"
            )
        return device

    def close(self) -> None:
        self.device = None

    def _send_pulses(self, pulse_us: np.ndarray) -> None:
        if self.device is None:
            raise HardwareError("Robot HAT servos used before open()")
        if self.mcu_silent:
            # Writing channels into timers that may be back at power-on values could send any
            # pulse width: ask whether the MCU is back, and if it is, report the reset instead.
            if not self.device.probe():
                raise I2CError(
                    f"Robot HAT MCU at 0x{self.device.address:02X} still does not answer", self.device.address
                )
            raise McuResetError(
                f"Robot HAT MCU at 0x{self.device.address:02X} on I2C bus {self.bus_label} stopped answering "
                "and answers again: it reset (brownout or power loss); its PWM timers are unconfigured "
                "and the servos lost their pulses"
            )
        values = pulse_us_to_register(pulse_us)
        failed: list[int] = []
        causes: list[HardwareError] = []
        # Every channel is attempted even after a failure: one NACK must not freeze the rest.
        for joint, (channel, value) in enumerate(zip(LEG_SERVO_CHANNELS, values, strict=True)):
            try:
                self.device.write_u16_be(REG_CHANNEL + channel, int(value))
            except I2CError as exc:
                failed.append(joint)
                causes.append(exc)
        if len(failed) == len(values):
            self.mcu_silent = True
        if failed:
            names = ", ".join(f"{JOINT_NAMES[j]} (ch {LEG_SERVO_CHANNELS[j]})" for j in failed)
            raise ChannelWriteError(
                f"{len(failed)} of {len(values)} servo channels not written: {names}; first error: {causes[0]}",
                failed,
                causes,
            )

    def read_battery_voltage(self) -> float:
        """Battery pack voltage (V) from ADC A4. Raises I2CError; nothing is retried."""
        if self.device is None or self.mcu_silent:
            raise HardwareError("Robot HAT MCU not available for an ADC read")
        self.device.write_u16_be(REG_ADC | (7 - BATTERY_ADC_CHANNEL), 0)
        msb, lsb = self.device.read_byte(), self.device.read_byte()
        value = msb << 8 | lsb
        if value > ADC_MAX:
            raise I2CError(
                f"Robot HAT MCU ADC A{BATTERY_ADC_CHANNEL} returned {value}, more than 12 bits",
                self.device.address,
            )
        return value * ADC_FULL_SCALE_V / ADC_MAX * BATTERY_DIVIDER

    def status(self) -> dict[str, Any]:
        name = "Robot HAT MCU"
        return {
            **super().status(),
            "i2c_transactions": self.stats.transactions.get(name, 0),
            "i2c_errors": self.stats.errors.get(name, 0),
            "last_i2c_error": self.stats.last_error.get(name, ""),
        }
