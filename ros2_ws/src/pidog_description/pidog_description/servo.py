"""Servo conversions and the servo model shared by the sim and the hardware node.

PiDog's hobby servos report no position. What the stack calls the "joint position" on the
robot is this model's estimate; the simulator reports the same estimate in the observation so
a policy never learns to rely on a signal the robot lacks.
"""

from __future__ import annotations

import numpy as np

from .robot import (
    JOINT_LOWER,
    JOINT_UPPER,
    N_JOINTS,
    SERVO_MAX_SPEED,
    SERVO_PULSE_US,
    SERVO_RANGE_DEG,
    SERVO_SIGNS,
)


def joint_rad_to_servo_deg(q: np.ndarray, offsets_deg: np.ndarray | None = None) -> np.ndarray:
    """Our joint radians -> SunFounder servo degrees (mirrored right side, plus calibration)."""
    deg = np.rad2deg(np.asarray(q, dtype=np.float64)) * SERVO_SIGNS
    if offsets_deg is not None:
        deg = deg + np.asarray(offsets_deg, dtype=np.float64)
    return deg


def servo_deg_to_joint_rad(deg: np.ndarray, offsets_deg: np.ndarray | None = None) -> np.ndarray:
    """SunFounder servo degrees -> our joint radians (inverse of ``joint_rad_to_servo_deg``)."""
    deg = np.asarray(deg, dtype=np.float64)
    if offsets_deg is not None:
        deg = deg - np.asarray(offsets_deg, dtype=np.float64)
    return np.deg2rad(deg * SERVO_SIGNS)


def servo_deg_to_pulse_us(deg: np.ndarray) -> np.ndarray:
    """Servo degrees (-90..90) -> pulse width in microseconds (500..2500), clipped to range."""
    lo, hi = SERVO_RANGE_DEG
    p_lo, p_hi = SERVO_PULSE_US
    deg = np.clip(np.asarray(deg, dtype=np.float64), lo, hi)
    return p_lo + (deg - lo) * (p_hi - p_lo) / (hi - lo)


def pulse_us_to_servo_deg(pulse_us: np.ndarray) -> np.ndarray:
    """Pulse width in microseconds -> servo degrees (inverse of ``servo_deg_to_pulse_us``)."""
    lo, hi = SERVO_RANGE_DEG
    p_lo, p_hi = SERVO_PULSE_US
    return lo + (np.asarray(pulse_us, dtype=np.float64) - p_lo) * (hi - lo) / (p_hi - p_lo)


def rate_limit(position: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    """One servo-model step: move ``position`` toward ``target`` by at most ``max_step`` (rad).

    Non-finite targets hold the current position (NaN never reaches a servo) and targets are
    clamped to the joint limits. Works on one robot (N_JOINTS,) or a batch (..., N_JOINTS): the
    hardware node, sim_node and the batched simulator all step their servos through this.
    """
    target = np.asarray(target, dtype=np.float64)
    target = np.where(np.isfinite(target), target, position)
    target = np.clip(target, JOINT_LOWER, JOINT_UPPER)
    return position + np.clip(target - position, -max_step, max_step)


class ServoModel:
    """Rate-limited, limit-clamped servo targets: the commanded pose and its estimate.

    ``step(target, dt)`` moves each joint toward ``target`` no faster than ``max_speed``
    (rad/s) and never outside the joint limits, and returns the new pose. Non-finite targets
    are replaced by the current pose (hold), so NaN can never reach a servo.
    """

    def __init__(self, initial: np.ndarray, max_speed: float | np.ndarray = SERVO_MAX_SPEED) -> None:
        self.max_speed = np.broadcast_to(np.asarray(max_speed, dtype=np.float64), (N_JOINTS,)).copy()
        self.position = np.clip(np.asarray(initial, dtype=np.float64).copy(), JOINT_LOWER, JOINT_UPPER)

    def reset(self, position: np.ndarray) -> None:
        self.position = np.clip(np.asarray(position, dtype=np.float64).copy(), JOINT_LOWER, JOINT_UPPER)

    def step(self, target: np.ndarray, dt: float) -> np.ndarray:
        self.position = rate_limit(self.position, target, self.max_speed * dt)
        return self.position
