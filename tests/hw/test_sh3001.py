"""SH3001 driver and orientation filter against the register-level IMU emulator."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description.orientation_filter import ComplementaryFilter
from pidog_description.spec import gravity_from_quaternion, roll_pitch_from_gravity
from pidog_hw.emulation import EmulatedI2CBus, Sh3001Emulator
from pidog_hw.errors import DeviceNotFoundError, I2CError, ImuCalibrationError, WrongDeviceError
from pidog_hw.sh3001 import Sh3001, parse_axes

G = 9.80665


def imu_on(bus: EmulatedI2CBus) -> tuple[Sh3001, Sh3001Emulator]:
    imu = Sh3001(bus)
    imu.open()
    return imu, bus.devices[0x36]


def test_open_configures_ranges_and_data_rate(pidog_bus: EmulatedI2CBus) -> None:
    _, chip = imu_on(pidog_bus)
    assert chip.registers[0x23] == 0x01 and chip.registers[0x29] == 0x01  # 500 Hz accel and gyro
    assert chip.registers[0x25] == 0x05  # +-2 g
    assert [chip.registers[r] for r in (0x8F, 0x9F, 0xAF)] == [0x06] * 3  # +-2000 deg/s
    assert chip.violations == []


def test_wrong_chip_id_is_refused() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x36, Sh3001Emulator(chip_id=0x60))
    with pytest.raises(WrongDeviceError, match="chip id 0x60 in register 0x0F; an SH3001 reports 0x61"):
        Sh3001(bus).open()


def test_absent_imu_is_a_clear_error() -> None:
    with pytest.raises(DeviceNotFoundError, match="SH3001 IMU did not answer at 0x36 on I2C bus 1"):
        Sh3001(EmulatedI2CBus()).open()


def test_at_rest_the_chip_reads_like_the_stock_sdk_and_we_report_rep103(pidog_bus: EmulatedI2CBus) -> None:
    imu, chip = imu_on(pidog_bus)
    sample = imu.read()
    assert chip.raw_counts()[:3] == (-16384, 0, 0)  # DESIGN.md §6: x ~ -16384 at rest
    assert np.allclose(sample.accel, [0, 0, G], atol=1e-3)  # +g on body z (up)
    assert np.allclose(sample.gyro, 0, atol=1e-9)


def test_tilt_and_rotation_come_out_in_body_axes_and_si(pidog_bus: EmulatedI2CBus) -> None:
    imu, chip = imu_on(pidog_bus)
    pitch = 0.3  # nose down: specific force tips toward -x
    force = np.array([-G * np.sin(pitch), 0.0, G * np.cos(pitch)])
    rate = np.array([0.5, -1.0, 2.0])
    chip.set_motion(force, rate)
    sample = imu.read()
    assert np.allclose(sample.accel, force, atol=G / 16384)
    assert np.allclose(sample.gyro, rate, atol=np.deg2rad(1 / 16.4))


def test_nack_on_the_burst_read_raises_and_is_counted(pidog_bus: EmulatedI2CBus) -> None:
    imu, _ = imu_on(pidog_bus)
    pidog_bus.inject_fault(address=0x36, op="read", register=0x00)
    with pytest.raises(I2CError, match="SH3001 IMU at 0x36 register 0x00 failed"):
        imu.read()
    assert imu.status()["i2c_errors"] == 1
    assert np.allclose(imu.read().accel, [0, 0, G], atol=1e-3)


def test_burst_is_one_12_byte_read(pidog_bus: EmulatedI2CBus) -> None:
    imu, _ = imu_on(pidog_bus)
    before = len(pidog_bus.transactions)
    imu.read()
    (read,) = list(pidog_bus.transactions)[before:]
    assert read["op"] == "read" and read["reg"] == 0x00 and len(read["data"]) == 12


def test_gyro_bias_calibration_removes_the_bias() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x36, Sh3001Emulator(gyro_bias_body=(0.02, -0.03, 0.01), gyro_noise=0.002, accel_noise=0.02))
    imu = Sh3001(bus)
    imu.open()
    assert abs(imu.read().gyro[1] + 0.03) < 0.01
    imu.calibrate_gyro_bias(samples=200, sleep=lambda _: None)
    residual = np.mean([imu.read().gyro for _ in range(200)], axis=0)
    assert np.abs(residual).max() < 0.002 and imu.bias_calibrated


def test_gyro_calibration_refuses_when_the_robot_moves(pidog_bus: EmulatedI2CBus) -> None:
    imu, chip = imu_on(pidog_bus)
    calls = []

    def bump(_: float) -> None:  # someone picks the robot up half-way through
        calls.append(1)
        if len(calls) == 50:
            chip.set_motion([0, 0, G], [0.0, 0.4, 0.0])

    with pytest.raises(ImuCalibrationError, match="rate varied"):
        imu.calibrate_gyro_bias(samples=100, sleep=bump)
    assert not imu.bias_calibrated and np.all(imu.gyro_bias == 0)


def test_axis_remap_must_be_a_rotation() -> None:
    assert np.array_equal(parse_axes("-y,z,-x"), [[0, -1, 0], [0, 0, 1], [-1, 0, 0]])
    with pytest.raises(ValueError, match="mirror image"):
        parse_axes("y,z,-x")
    with pytest.raises(ValueError, match="each chip axis once"):
        parse_axes("x,x,z")
    with pytest.raises(ValueError, match="not one of x, y, z"):
        parse_axes("x,y,w")


def run_filter(imu: Sh3001, filt: ComplementaryFilter, seconds: float, dt: float = 0.01) -> np.ndarray:
    q = None
    for _ in range(int(seconds / dt)):
        sample = imu.read()
        q = filt.update(sample.gyro, sample.accel, dt)
    return q


def test_filter_converges_to_a_static_tilt(pidog_bus: EmulatedI2CBus) -> None:
    imu, chip = imu_on(pidog_bus)
    filt = ComplementaryFilter(gain=2.0)
    run_filter(imu, filt, 0.1)  # start level
    roll, pitch = -0.2, 0.3
    up = np.array([-np.sin(pitch), np.sin(roll) * np.cos(pitch), np.cos(roll) * np.cos(pitch)])
    chip.set_motion(G * up, np.zeros(3))
    q = run_filter(imu, filt, 3.0)
    got = roll_pitch_from_gravity(gravity_from_quaternion(q))
    assert got == pytest.approx((roll, pitch), abs=0.01)


def test_filter_integrates_yaw_and_ignores_large_accelerations(pidog_bus: EmulatedI2CBus) -> None:
    imu, chip = imu_on(pidog_bus)
    filt = ComplementaryFilter(gain=2.0)
    run_filter(imu, filt, 0.05)
    chip.set_motion([0, 0, G], [0, 0, 1.0])
    q = run_filter(imu, filt, 1.0)
    yaw = np.arctan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2))
    assert yaw == pytest.approx(1.0, abs=0.02)
    # A 0.8 g forward shove (|a| = 1.28 g) is not "down": the tilt estimate must not follow it.
    chip.set_motion([0.8 * G, 0, G], np.zeros(3))
    q = run_filter(imu, filt, 0.5)
    assert np.allclose(roll_pitch_from_gravity(gravity_from_quaternion(q)), 0.0, atol=0.01)


def test_filter_refuses_non_finite_samples() -> None:
    with pytest.raises(ValueError, match="not finite"):
        ComplementaryFilter().update([np.nan, 0, 0], [0, 0, G], 0.01)
