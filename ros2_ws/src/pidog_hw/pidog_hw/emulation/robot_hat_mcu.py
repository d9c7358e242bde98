"""Register-level model of the Robot HAT MCU's PWM block. TEST/DEMO ONLY.

Written from the hardware description (DESIGN.md §6, SunFounder robot-hat ``pwm.py``), not from
our driver: writes are ``[register, high byte, low byte]``; channel pulse registers 0x20..0x2F,
prescaler 0x40..0x43 and period 0x44..0x47 (timer = channel // 4), STM32-style "value - 1"
prescaler/period, 72 MHz clock. It reports what the pins would output (pulse width in us,
frame rate in Hz), and records a violation for anything the MCU would misread: a wrong length,
an unknown register, a read that no ADC conversion was asked for, or a channel written before
its timer was configured.

ADC (robot-hat ``adc.py``): writing ``[0x10 | (7 - channel), 0, 0]`` selects channel A0..A7 and
the next reads return its 12-bit value (0..4095 over 0..3.3 V), MSB first (the SDK reads the two
bytes as two one-byte reads). ``battery_v`` is the pack voltage, seen on A4 through the HAT's 3x
divider (robot-hat ``utils.get_battery_voltage``).

``reset(boot_s)`` models an MCU reset (a brownout when stalled servos pull the pack down): every
register returns to its power-on value (timers unconfigured, no pulses) and the MCU does not
answer on the bus (NACK) for ``boot_s`` while it boots.
"""

from __future__ import annotations

import time
from typing import Any

CLOCK_HZ = 72_000_000
CHANNEL_BASE, PRESCALER_BASE, PERIOD_BASE = 0x20, 0x40, 0x44
ADC_BASE, N_ADC = 0x10, 8
ADC_FULL_SCALE_V, ADC_MAX = 3.3, 4095
BATTERY_CHANNEL, BATTERY_DIVIDER = 4, 3.0
N_CHANNELS, N_TIMERS = 16, 4


class RobotHatMcu:
    def __init__(self, battery_v: float = 7.8) -> None:
        self.battery_v = battery_v
        self.adc_inputs_v = [0.0] * N_ADC  # A0..A7 other than the battery input
        self.violations: list[str] = []
        self.writes = 0
        self.resets = 0
        self.booting_until = 0.0
        self._power_on()

    def _power_on(self) -> None:
        self.channel_value = [0] * N_CHANNELS
        self.prescaler: list[int | None] = [None] * N_TIMERS
        self.period: list[int | None] = [None] * N_TIMERS
        self._adc_out = b""

    def reset(self, boot_s: float = 0.05) -> None:
        """Registers back to power-on values; no answer on the bus for ``boot_s``."""
        self._power_on()
        self.resets += 1
        self.booting_until = time.monotonic() + boot_s

    def answers(self) -> bool:
        """False while the MCU boots after a reset (the bus NACKs it)."""
        return time.monotonic() >= self.booting_until

    def adc_value(self, channel: int) -> int:
        volts = self.battery_v / BATTERY_DIVIDER if channel == BATTERY_CHANNEL else self.adc_inputs_v[channel]
        return max(0, min(ADC_MAX, round(volts / ADC_FULL_SCALE_V * ADC_MAX)))

    def i2c_write(self, data: bytes) -> dict[str, Any] | None:
        if len(data) != 3:
            self.violations.append(
                f"write of {len(data)} bytes {list(data)}: the MCU expects register + 2 bytes"
            )
            return {"violation": self.violations[-1]}
        register, value = data[0], data[1] << 8 | data[2]
        self.writes += 1
        if CHANNEL_BASE <= register < CHANNEL_BASE + N_CHANNELS:
            channel = register - CHANNEL_BASE
            timer = channel // 4
            if self.prescaler[timer] is None or self.period[timer] is None:
                self.violations.append(f"channel {channel} written before timer {timer} was configured")
            self.channel_value[channel] = value
            return {"channel": channel, "value": value, "pulse_us": self.pulse_us(channel)}
        if ADC_BASE <= register < ADC_BASE + N_ADC:
            channel = 7 - (register - ADC_BASE)
            value = self.adc_value(channel)
            self._adc_out = bytes([value >> 8, value & 0xFF])
            return {"adc_channel": channel, "adc_value": value}
        if PRESCALER_BASE <= register < PRESCALER_BASE + N_TIMERS:
            self.prescaler[register - PRESCALER_BASE] = value
            return {"timer": register - PRESCALER_BASE, "prescaler": value}
        if PERIOD_BASE <= register < PERIOD_BASE + N_TIMERS:
            self.period[register - PERIOD_BASE] = value
            return {"timer": register - PERIOD_BASE, "period": value}
        self.violations.append(f"write to register 0x{register:02X}, which is not a PWM register")
        return {"violation": self.violations[-1]}

    def i2c_read(self, length: int) -> bytes:
        if length > len(self._adc_out):
            self.violations.append(
                f"read of {length} bytes with {len(self._adc_out)} ADC bytes pending: "
                "the MCU only answers reads after an ADC channel is selected"
            )
            return bytes(length)
        out, self._adc_out = self._adc_out[:length], self._adc_out[length:]
        return out

    def tick_us(self, timer: int) -> float | None:
        psc = self.prescaler[timer]
        return None if psc is None else (psc + 1) / CLOCK_HZ * 1e6

    def pulse_us(self, channel: int) -> float | None:
        """The high time the pin outputs (0.0 = no pulse); None if its timer is unconfigured."""
        tick = self.tick_us(channel // 4)
        return None if tick is None else round(self.channel_value[channel] * tick, 3)

    def frame_hz(self, timer: int) -> float | None:
        psc, arr = self.prescaler[timer], self.period[timer]
        if psc is None or arr is None:
            return None
        return CLOCK_HZ / (psc + 1) / (arr + 1)
