"""The twin's devices in-process, driven by the real drivers (no ROS): what the servos and the
IMU see, from the hardware facts, and the physics thread's pacing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pidog_description.kinematics import STAND_POSE
from pidog_hw.calibration import Calibration
from pidog_hw.emulation.twin import TwinSh3001, twin_pidog_bus
from pidog_hw.robot_hat import RobotHatServos
from pidog_hw.sh3001 import Sh3001

TICK_RAD = np.deg2rad(351 / 72e6 * 1e6 * 180 / 2000)  # one timer tick of pulse width, in joint angle


@pytest.fixture
def twin_bus():
    bus = twin_pidog_bus(ground_truth=False)
    yield bus
    bus.close()


def test_pulses_from_the_driver_are_the_joint_targets_and_no_pulse_is_limp(twin_bus) -> None:
    mcu = twin_bus.devices[0x14]
    targets, powered = mcu.servo_state()
    assert not powered.any(), "no timer configured, no pulse: every servo is limp"
    servos = RobotHatServos(twin_bus, Calibration())
    servos.open()
    servos.write_targets(STAND_POSE)
    targets, powered = mcu.servo_state()
    assert powered.all()
    np.testing.assert_allclose(targets, STAND_POSE, atol=TICK_RAD)
    mcu.apply_control({"servo_reversed": ["rf_knee"]})
    np.testing.assert_allclose(mcu.servo_state()[0][3], -STAND_POSE[3], atol=TICK_RAD)
    mcu.apply_control({"servo_reversed": [], "servo_channels": {"lf_hip": 3, "lf_knee": 2}})
    np.testing.assert_allclose(mcu.servo_state()[0][:2], STAND_POSE[[1, 0]], atol=TICK_RAD)
    assert mcu.violations == []


def test_the_imu_reads_like_the_stock_sdk_at_rest_and_follows_the_simulation(twin_bus) -> None:
    imu = Sh3001(twin_bus)
    imu.open()
    acc, gyro = imu.read_raw()
    assert acc[0] == pytest.approx(-16384, rel=0.03), f"stock SDK reads x ~ -16384 at rest, got {acc}"
    assert np.abs(acc[1:]).max() < 0.1 * 16384 and np.abs(gyro).max() < 20
    sample = imu.read()
    _, sim_gyro, sim_accel = twin_bus.twin.sim.imu()
    np.testing.assert_allclose(sample.accel, sim_accel, atol=0.05)
    # Physics runs in its own thread, never faster than real time.
    t0, sim0 = time.monotonic(), twin_bus.twin.sim.time
    time.sleep(0.5)
    assert 0 < twin_bus.twin.sim.time - sim0 <= time.monotonic() - t0 + 0.011


def test_samples_refresh_at_the_configured_output_data_rate() -> None:
    imu = TwinSh3001()
    imu.registers[0x23] = 0x03  # accelerometer 125 Hz
    imu.registers[0x29] = 0x01  # gyro 500 Hz
    changes = {"acc": 0, "gyro": 0}
    last = (None, None)
    for step in range(200):  # 0.4 s of 2 ms physics steps, every reading different
        imu.feed(step * 0.002, np.full(3, float(step)), np.full(3, float(step)))
        now = (imu.specific_force_body[0], imu.rate_body[0])
        changes["acc"] += now[0] != last[0]
        changes["gyro"] += now[1] != last[1]
        last = now
    assert changes == {"acc": 50, "gyro": 200}
