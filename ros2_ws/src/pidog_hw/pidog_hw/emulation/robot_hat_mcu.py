"""Register-level model of the Robot HAT MCU's PWM block. TEST/DEMO ONLY.

Written from the hardware description (DESIGN.md §6, SunFounder robot-hat ``pwm.py``), not from
our driver: writes are ``[register, high byte, low byte]``; channel pulse registers 0x20..0x2F,
prescaler 0x40..0x43 and period 0x44..0x47 (timer = channel // 4), STM32-style "value - 1"
prescaler/period, 72 MHz clock. It reports what the pins would output (pulse width in us,
frame rate in Hz), and records a violation for anything the MCU would misread: a wrong length,
an unknown register, a read (our driver never reads the MCU), or a channel written before its
timer was configured.
"""

from __future__ import annotations

from typing import Any

CLOCK_HZ = 72_000_000
CHANNEL_BASE, PRESCALER_BASE, PERIOD_BASE = 0x20, 0x40, 0x44
N_CHANNELS, N_TIMERS = 16, 4


class RobotHatMcu:
    def __init__(self) -> None:
        self.channel_value = [0] * N_CHANNELS
        self.prescaler: list[int | None] = [None] * N_TIMERS
        self.period: list[int | None] = [None] * N_TIMERS
        self.violations: list[str] = []
        self.writes = 0

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
        if PRESCALER_BASE <= register < PRESCALER_BASE + N_TIMERS:
            self.prescaler[register - PRESCALER_BASE] = value
            return {"timer": register - PRESCALER_BASE, "prescaler": value}
        if PERIOD_BASE <= register < PERIOD_BASE + N_TIMERS:
            self.period[register - PERIOD_BASE] = value
            return {"timer": register - PERIOD_BASE, "period": value}
        self.violations.append(f"write to register 0x{register:02X}, which is not a PWM register")
        return {"violation": self.violations[-1]}

    def i2c_read(self, length: int) -> bytes:
        self.violations.append(f"read of {length} bytes: the servo driver has no reason to read the MCU")
        return bytes(length)

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
