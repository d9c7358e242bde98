"""Complementary orientation filter (Mahony form, proportional only): the IMU orientation
estimate hw_node publishes, and the one the simulator can put in the policy's observation.

The gyro is integrated as a quaternion; the accelerometer's "up" direction pulls roll and
pitch back with ``gain`` (rad/s per unit of direction error, i.e. a time constant of about
1/gain seconds) whenever the measured specific force is close to 1 g, so the filter does not
chase the accelerations of a trotting body. Yaw is gyro-only (there is no magnetometer) and
drifts with the residual gyro bias. Output quaternion: body -> world, (w, x, y, z), REP-103,
the convention ``pidog_description.spec.gravity_from_quaternion`` expects.

One filter serves one IMU (samples of shape (3,), as hw_node feeds it) or a batch of them
(samples (N, 3), one row per simulated robot); the arithmetic is the same array code, so the
simulator's estimate is hw_node's, not a copy of it. It lives here, on the robot side, because
both sides run it (DESIGN.md §1).
"""

from __future__ import annotations

import numpy as np

from .rotations import quat_from_roll_pitch, quat_multiply, up_in_body
from .spec import STANDARD_GRAVITY

# 1/s: roll and pitch settle in ~0.5 s, slow enough to ride over a trot's foot impacts. hw_node's
# default and the simulator's, so a policy trained on the filter meets the same one on the robot.
DEFAULT_GAIN = 2.0


class ComplementaryFilter:
    """Fuses gyro (rad/s) and accelerometer (m/s^2) samples into orientation quaternions."""

    def __init__(self, gain: float = DEFAULT_GAIN, accel_gate: float = 0.15) -> None:
        if not gain >= 0:
            raise ValueError(f"filter gain must be >= 0, got {gain}")
        if not 0 < accel_gate < 1:
            raise ValueError(f"accel_gate must be a fraction of g in (0, 1), got {accel_gate}")
        self.gain = float(gain)
        self.accel_gate = float(accel_gate)
        self.q: np.ndarray | None = None  # (4,) or (N, 4); NaN rows start over from the next sample

    def reset(self, rows: np.ndarray | None = None) -> None:
        """Forget the estimate (all of it, or the given batch rows): the next sample starts over."""
        if rows is None or self.q is None:
            self.q = None
        else:
            self.q[rows] = np.nan

    @staticmethod
    def from_accel(accel: np.ndarray) -> np.ndarray:
        """Roll and pitch from the accelerometer alone (yaw 0); level where it reads < 0.5 g
        (free fall or garbage)."""
        roll = np.arctan2(accel[..., 1], accel[..., 2])
        pitch = np.arctan2(-accel[..., 0], np.hypot(accel[..., 1], accel[..., 2]))
        q = quat_from_roll_pitch(roll, pitch)
        weak = np.linalg.norm(accel, axis=-1) < 0.5 * STANDARD_GRAVITY
        return np.where(weak[..., None], np.array([1.0, 0.0, 0.0, 0.0]), q)

    def update(self, gyro: np.ndarray, accel: np.ndarray, dt: float) -> np.ndarray:
        """One sample (or one per row) ``dt`` seconds after the last; returns the estimate."""
        gyro = np.asarray(gyro, dtype=np.float64)
        accel = np.asarray(accel, dtype=np.float64)
        if not (np.all(np.isfinite(gyro)) and np.all(np.isfinite(accel))):
            raise ValueError(f"IMU sample is not finite: gyro {gyro.tolist()}, accel {accel.tolist()}")
        if not 0 < dt < 1.0:
            raise ValueError(f"filter time step must be in (0, 1) s, got {dt}")
        if self.q is None:
            self.q = self.from_accel(accel)
            return self.q.copy()
        if self.q.shape[:-1] != gyro.shape[:-1]:
            raise ValueError(
                f"IMU samples of shape {gyro.shape} for a filter of {self.q.shape[:-1] or 'one'} IMU(s)"
            )
        fresh = np.isnan(self.q[..., 0])
        omega = gyro.copy()
        norm = np.linalg.norm(accel, axis=-1, keepdims=True)
        near_g = np.abs(norm - STANDARD_GRAVITY) < self.accel_gate * STANDARD_GRAVITY
        correction = self.gain * np.cross(accel / np.maximum(norm, 1e-9), up_in_body(self.q))
        omega += np.where(near_g, correction, 0.0)
        rate = np.linalg.norm(omega, axis=-1, keepdims=True)
        half = rate * dt / 2
        axis = omega / np.where(rate > 0, rate, 1.0)
        dq = np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)
        q = quat_multiply(self.q, dq)
        self.q = q / np.linalg.norm(q, axis=-1, keepdims=True)
        if fresh.any():  # rows reset since the last sample start over from this one
            self.q[fresh] = self.from_accel(accel[fresh])
        return self.q.copy()
