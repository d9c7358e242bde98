"""The orientation filter over a batch is the same filter as over one IMU: hw_node feeds it
one sample at a time, the simulator a row per robot, and both must estimate the same thing."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description.orientation_filter import ComplementaryFilter
from pidog_description.spec import STANDARD_GRAVITY, gravity_from_quaternion, roll_pitch_from_gravity


def wobbling_imu(n: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(steps, n, 3) gyro and accel samples of bodies rocking and bouncing, some beyond the
    accelerometer gate (|a| far from 1 g) so both branches of the filter run."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None, None] * 0.01
    gyro = 0.8 * np.sin(2 * np.pi * rng.uniform(0.5, 3.0, (1, n, 3)) * t + rng.uniform(0, 6, (1, n, 3)))
    tilt = rng.uniform(-0.3, 0.3, (1, n, 2))
    up = np.concatenate([np.sin(tilt), np.ones((1, n, 1))], axis=-1)
    bounce = 1.0 + 0.4 * np.sin(2 * np.pi * 2.5 * t)  # 0.6-1.4 g: in and out of the gate
    accel = STANDARD_GRAVITY * bounce * up / np.linalg.norm(up, axis=-1, keepdims=True)
    return np.broadcast_to(gyro, (steps, n, 3)).copy(), accel


def test_a_batch_of_imus_is_estimated_exactly_as_each_imu_alone() -> None:
    gyro, accel = wobbling_imu(n=5, steps=300)
    batch = ComplementaryFilter(gain=2.0)
    alone = [ComplementaryFilter(gain=2.0) for _ in range(5)]
    for g, a in zip(gyro, accel, strict=True):
        q_batch = batch.update(g, a, 0.01)
        q_alone = np.array([f.update(g[i], a[i], 0.01) for i, f in enumerate(alone)])
        np.testing.assert_allclose(q_batch, q_alone, rtol=0, atol=1e-12)
    # The estimates moved: this compared filters that did something.
    assert np.ptp(roll_pitch_from_gravity(gravity_from_quaternion(q_batch))[0]) > 0.05


def test_resetting_some_rows_restarts_only_them_from_the_accelerometer() -> None:
    gyro, accel = wobbling_imu(n=3, steps=100)
    f = ComplementaryFilter(gain=2.0)
    for g, a in zip(gyro, accel, strict=True):
        before = f.update(g, a, 0.01)
    f.reset(np.array([1]))
    level = np.array([[0.0, 0.0, STANDARD_GRAVITY]] * 3)
    after = f.update(np.zeros((3, 3)), level, 0.01)
    np.testing.assert_allclose(after[1], [1.0, 0.0, 0.0, 0.0], atol=1e-12)  # started over, level
    assert not np.allclose(after[[0, 2]], [1.0, 0.0, 0.0, 0.0], atol=1e-3)  # the others went on
    assert np.allclose(after[[0, 2]], before[[0, 2]], atol=0.05)


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="gain"):
        ComplementaryFilter(gain=-1.0)
    with pytest.raises(ValueError, match="accel_gate"):
        ComplementaryFilter(accel_gate=1.5)
