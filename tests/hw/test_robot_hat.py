"""Robot HAT servo driver against the register-level MCU emulator, with I2C fault injection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hw_facts import LEG_CHANNELS, TICK_US, expected_pulse_us

from pidog_hw.calibration import Calibration
from pidog_hw.emulation import EmulatedI2CBus, RobotHatMcu
from pidog_hw.errors import ChannelWriteError, DeviceNotFoundError, I2CError
from pidog_hw.robot_hat import RobotHatServos

DEG = math.pi / 180


def opened(bus: EmulatedI2CBus, calibration: Calibration | None = None) -> RobotHatServos:
    servos = RobotHatServos(bus, calibration or Calibration(), bus_label="1")
    servos.open()
    return servos


def pulses(mcu: RobotHatMcu) -> np.ndarray:
    return np.array([mcu.pulse_us(ch) for ch in LEG_CHANNELS])


def test_probe_finds_the_mcu_at_whichever_address_answers() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x15, RobotHatMcu())
    servos = opened(bus)
    assert "0x15" in servos.description
    assert [t["addr"] for t in bus.transactions if t["op"] == "quick"] == [0x14, 0x15]


def test_no_mcu_is_a_clear_start_up_error_not_a_fall_back() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x36, RobotHatMcu())  # something else on the bus does not count
    with pytest.raises(
        DeviceNotFoundError, match=r"no Robot HAT MCU answered on I2C bus 1 at 0x14, 0x15, 0x16"
    ):
        opened(bus)
    assert not [t for t in bus.transactions if t["op"] == "write"], (
        "nothing may be written to a guessed address"
    )


def test_configured_address_must_answer() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x14, RobotHatMcu())
    with pytest.raises(DeviceNotFoundError, match="configured address 0x16"):
        RobotHatServos(bus, Calibration(), address=0x16).open()


def test_timers_run_the_servo_frame_at_50_hz(pidog_bus: EmulatedI2CBus) -> None:
    opened(pidog_bus)
    mcu = pidog_bus.devices[0x14]
    for timer in (0, 1, 2):  # leg channels 0-3, 7-8 and 10-11
        assert mcu.period[timer] == 4094
        assert mcu.frame_hz(timer) == pytest.approx(50.0, rel=0.005)
    assert mcu.violations == []


def test_joint_radians_become_sunfounder_pulses_on_the_right_channels(pidog_bus: EmulatedI2CBus) -> None:
    calibration, _ = Calibration().with_offset("lf_knee", 5.0)
    servos = opened(pidog_bus, calibration)
    joint_deg = [30, 0, 30, 0, 0, -45, 0, 12.5]
    servos.write_targets(np.array(joint_deg) * DEG)
    mcu = pidog_bus.devices[0x14]
    want = expected_pulse_us(joint_deg, [0, 5, 0, 0, 0, 0, 0, 0])
    # e.g. rf_hip (ch 7) +30 deg is servo -30 deg: 1166.7 us; lf_knee (ch 3) has +5 deg offset: 1555.6 us
    assert np.abs(pulses(mcu) - want).max() <= TICK_US / 2 + 1e-6, (pulses(mcu), want)
    assert mcu.violations == []


def test_all_eight_channels_are_written_every_cycle(pidog_bus: EmulatedI2CBus) -> None:
    servos = opened(pidog_bus)
    for _ in range(3):
        before = len(pidog_bus.transactions)
        servos.write_targets(np.zeros(8))
        cycle = list(pidog_bus.transactions)[before:]
        assert sorted(t["channel"] for t in cycle) == sorted(LEG_CHANNELS)
        assert all(len(t["data"]) == 2 for t in cycle)  # register + high byte + low byte


def test_nack_on_one_channel_is_raised_counted_and_the_rest_still_written(pidog_bus: EmulatedI2CBus) -> None:
    servos = opened(pidog_bus)
    servos.write_targets(np.zeros(8))
    pidog_bus.inject_fault(address=0x14, op="write", register=0x20 + 7)  # rf_hip
    q = np.full(8, 10 * DEG)
    with pytest.raises(ChannelWriteError, match=r"rf_hip \(ch 7\).*0x14 register 0x27.*Errno 121") as info:
        servos.write_targets(q)
    assert info.value.failed == [2]
    mcu = pidog_bus.devices[0x14]
    want = expected_pulse_us([10] * 8)
    got = pulses(mcu)
    assert got[2] == pytest.approx(1500.0, abs=TICK_US)  # the failed one kept its old pulse
    others = [0, 1, 3, 4, 5, 6, 7]
    assert np.abs(got[others] - want[others]).max() <= TICK_US / 2 + 1e-6
    status = servos.status()
    assert status["i2c_errors"] == 1 and "0x27" in status["last_i2c_error"]
    assert servos.counters["failed_cycles"] == 1
    servos.write_targets(q)  # no retry happened behind our back; the next cycle simply works
    assert np.abs(pulses(mcu) - want).max() <= TICK_US / 2 + 1e-6


def test_hat_vanishing_fails_every_channel(pidog_bus: EmulatedI2CBus) -> None:
    servos = opened(pidog_bus)
    pidog_bus.detach(0x14)
    with pytest.raises(ChannelWriteError, match="8 of 8 servo channels not written") as info:
        servos.write_targets(np.zeros(8))
    assert info.value.failed == list(range(8))
    assert all(isinstance(c, I2CError) for c in info.value.causes)


def test_nack_during_timer_set_up_fails_open(pidog_bus: EmulatedI2CBus) -> None:
    pidog_bus.inject_fault(address=0x14, op="write", register=0x44)
    with pytest.raises(I2CError, match="register 0x44"):
        opened(pidog_bus)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.r_[np.nan, np.zeros(7)], r"not finite for \['lf_hip'\]"),
        (np.r_[np.zeros(5), -1.7, 0, 0], "lh_knee=-1.700"),
    ],
)
def test_bad_targets_never_reach_the_bus(pidog_bus: EmulatedI2CBus, bad: np.ndarray, message: str) -> None:
    servos = opened(pidog_bus)
    before = len(pidog_bus.transactions)
    with pytest.raises(ValueError, match=message):
        servos.write_targets(bad)
    assert len(pidog_bus.transactions) == before


def test_stop_pulses_and_saturation(pidog_bus: EmulatedI2CBus) -> None:
    calibration, _ = Calibration().with_offset("lf_hip", 5.0)
    servos = opened(pidog_bus, calibration)
    q = np.zeros(8)
    q[0] = 90 * DEG  # at the joint limit; +5 deg offset asks for 95 deg from the servo
    sent = servos.write_targets(q)
    assert sent[0] == pytest.approx(2500.0) and servos.counters["saturated"] == 1
    servos.stop_pulses()
    assert (pulses(pidog_bus.devices[0x14]) == 0).all()
