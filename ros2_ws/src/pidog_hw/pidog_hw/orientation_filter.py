"""Complementary orientation filter (Mahony form, proportional only) for the SH3001.

The gyro is integrated as a quaternion; the accelerometer's "up" direction pulls roll and
pitch back with ``gain`` (rad/s per unit of direction error, i.e. a time constant of about
1/gain seconds) whenever the measured specific force is close to 1 g, so the filter does not
chase the accelerations of a trotting body. Yaw is gyro-only (there is no magnetometer) and
drifts with the residual gyro bias. Output quaternion: body -> world, (w, x, y, z), REP-103,
the convention ``pidog_description.spec.gravity_from_quaternion`` expects.
"""

from __future__ import annotations

import numpy as np

from pidog_description.rotations import quat_from_roll_pitch, quat_multiply, up_in_body

from .sh3001 import STANDARD_GRAVITY


class ComplementaryFilter:
    """Fuses gyro (rad/s) and accelerometer (m/s^2) samples into an orientation quaternion."""

    def __init__(self, gain: float = 2.0, accel_gate: float = 0.15) -> None:
        if not gain >= 0:
            raise ValueError(f"filter gain must be >= 0, got {gain}")
        if not 0 < accel_gate < 1:
            raise ValueError(f"accel_gate must be a fraction of g in (0, 1), got {accel_gate}")
        self.gain = float(gain)
        self.accel_gate = float(accel_gate)
        self.q: np.ndarray | None = None

    def reset(self) -> None:
        self.q = None

    def _initialise(self, accel: np.ndarray) -> np.ndarray:
        if np.linalg.norm(accel) < 0.5 * STANDARD_GRAVITY:
            return np.array([1.0, 0.0, 0.0, 0.0])  # free fall or garbage: start level
        roll = float(np.arctan2(accel[1], accel[2]))
        pitch = float(np.arctan2(-accel[0], np.hypot(accel[1], accel[2])))
        return quat_from_roll_pitch(roll, pitch)

    def update(self, gyro: np.ndarray, accel: np.ndarray, dt: float) -> np.ndarray:
        gyro = np.asarray(gyro, dtype=np.float64)
        accel = np.asarray(accel, dtype=np.float64)
        if not (np.all(np.isfinite(gyro)) and np.all(np.isfinite(accel))):
            raise ValueError(f"IMU sample is not finite: gyro {gyro.tolist()}, accel {accel.tolist()}")
        if not 0 < dt < 1.0:
            raise ValueError(f"filter time step must be in (0, 1) s, got {dt}")
        if self.q is None:
            self.q = self._initialise(accel)
            return self.q.copy()
        omega = gyro.copy()
        norm = float(np.linalg.norm(accel))
        if abs(norm - STANDARD_GRAVITY) < self.accel_gate * STANDARD_GRAVITY:
            omega += self.gain * np.cross(accel / norm, up_in_body(self.q))
        angle = float(np.linalg.norm(omega)) * dt
        if angle > 0:
            axis = omega / np.linalg.norm(omega)
            dq = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])
            q = quat_multiply(self.q, dq)
            self.q = q / np.linalg.norm(q)
        return self.q.copy()
